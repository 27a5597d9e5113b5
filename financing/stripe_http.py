"""The HTTP transport under the ``stripe`` SDK: the standard library's ``http.client``,
one kept-alive connection per thread and host.

The SDK lets its user choose the HTTP library (``stripe.HTTPClient``). Its ``HTTPXClient``
spends about 1 ms of CPU per call in httpx's and httpcore's layers (request and response
models, cookies, event hooks, the h11 state machine), which made Stripe's two calls the
largest part of an acceptance (docs/decisions.md, ADR-020). Its ``UrllibClient`` has no
timeout and opens a connection per call; its ``RequestsClient`` costs more than httpx.
This one sends the SDK's request as it is and hands back the answer as it is: the SDK
still builds the request, signs nothing it did not sign, parses, raises its errors.

- A connection belongs to one thread (API request threads, the worker's jobs), so no
  lock is taken and no answer can be read by another request.
- Any failure closes the connection: a request that timed out may be answered late, and
  that answer must never be read as the next request's.
- A connection kept idle may have been closed by the server. A request that finds it so
  (the server hung up before any answer) is sent once more on a new connection, but only
  when sending it twice cannot move money twice: a GET, or a request with an
  ``Idempotency-Key`` (every request that moves money carries one).
- A failure is the SDK's ``APIConnectionError``, as with its own clients: the rail turns
  it into ``RailUnavailable`` (try again later with the same key).
- TLS is verified with the system's certificates (``ssl.create_default_context``). No
  proxy: Escompte reaches the API address it is given.
"""

from __future__ import annotations

import http.client
import io
import ssl
import threading
from collections.abc import Mapping
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import stripe

# the server hung up before answering: on a connection kept idle, it closed it meanwhile
_HUNG_UP = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class KeptAliveClient(stripe.HTTPClient):
    name = "http.client"

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(verify_ssl_certs=True)
        self._timeout = timeout_seconds
        self._tls = ssl.create_default_context()
        self._local = threading.local()

    def _connections(self) -> dict[tuple[str, str], http.client.HTTPConnection]:
        connections: dict[tuple[str, str], http.client.HTTPConnection] | None = getattr(
            self._local, "connections", None
        )
        if connections is None:
            connections = self._local.connections = {}
        return connections

    def _open(self, scheme: str, host: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(host, timeout=self._timeout, context=self._tls)
        if scheme == "http":
            return http.client.HTTPConnection(host, timeout=self._timeout)
        self._failed(ValueError(f"the API address's scheme is {scheme!r}, not http or https"))

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        content, status, response_headers = self._exchange(method, url, headers or {}, post_data)
        return content.decode("utf-8"), status, response_headers

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[io.BytesIO, int, Mapping[str, str]]:
        # read whole: the connection serves the next request only once the answer is read
        content, status, response_headers = self._exchange(method, url, headers or {}, post_data)
        return io.BytesIO(content), status, response_headers

    def _exchange(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> tuple[bytes, int, Mapping[str, str]]:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = post_data.encode() if isinstance(post_data, str) else post_data
        method = method.upper()
        resendable = method == "GET" or any(name.lower() == "idempotency-key" for name in headers)
        connections = self._connections()
        where = (parts.scheme, parts.netloc)
        while True:
            connection = connections.get(where)
            kept = connection is not None
            if connection is None:
                connection = connections[where] = self._open(*where)
            try:
                connection.request(method, target, body=body, headers=dict(headers))
                response = connection.getresponse()
                content = response.read()
            except _HUNG_UP as exc:
                self._drop(where)
                if kept and resendable:
                    continue  # closed while idle: once more, on a new connection
                self._failed(exc)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(where)  # a late answer must not be read as the next one's
                self._failed(exc)
            if response.will_close:
                self._drop(where)
            # the headers as http.client parsed them: looked up whatever their case
            return content, response.status, cast(Mapping[str, str], response.headers)

    def _drop(self, where: tuple[str, str]) -> None:
        connection = self._connections().pop(where, None)
        if connection is not None:
            connection.close()

    @staticmethod
    def _failed(exc: BaseException) -> NoReturn:
        raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]  # the SDK's own error
            f"Could not reach Stripe ({type(exc).__name__}: {exc})", should_retry=True
        ) from exc

    def close(self) -> None:
        """Close this thread's connections (another thread's are closed when it ends)."""
        connections = self._connections()
        for connection in connections.values():
            connection.close()
        connections.clear()
