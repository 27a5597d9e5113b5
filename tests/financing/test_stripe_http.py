"""The transport under the ``stripe`` SDK (``KeptAliveClient``), against a small scripted
HTTP server: the connection is kept between calls, closed after any failure so that a
late answer is never read as the next one's, and a request that finds its idle
connection closed is sent again only when that cannot move money twice."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import stripe

from escompte.financing.rails import RailUnavailable, StripeRail
from escompte.financing.stripe_http import KeptAliveClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        s = self.server
        with s.lock:
            n = len(s.seen)
            s.seen.append((self.client_address[1], self.command, self.path, body.decode()))
        if n < len(s.delays):
            time.sleep(s.delays[n])
        payload = json.dumps({"id": f"tr_{n}", "object": "transfer", "amount": 1, "currency": "eur"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", f"req_{n}")  # lower case: the SDK must still find it
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        if s.one_request_per_connection:
            self.close_connection = True  # hangs up without saying so (no Connection: close)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: ClassVar[list[tuple[int, str, str, str]]]

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen = []
        self.delays: list[float] = []
        self.one_request_per_connection = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _sdk(srv: _Server, timeout: float = 5.0) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_x",
        base_addresses={"api": srv.url},
        max_network_retries=0,
        http_client=KeptAliveClient(timeout),
    )


def _transfer(sdk: stripe.StripeClient, key: str | None = "k") -> stripe.Transfer:
    options: Any = {"idempotency_key": key} if key else {}
    return sdk.v1.transfers.create(
        params={"amount": 1, "currency": "eur", "destination": "acct_1", "metadata": {"advance": "adv_1"}},
        options=options,
    )


def test_calls_share_one_connection_and_the_sdk_reads_the_answer(server: _Server) -> None:
    sdk = _sdk(server)
    first, second = _transfer(sdk, "k1"), _transfer(sdk, "k2")
    assert (first.id, second.id) == ("tr_0", "tr_1")
    assert second.last_response.request_id == "req_1"  # header names are case-insensitive
    ports = {port for port, *_ in server.seen}
    assert len(ports) == 1, "the second call reused the first one's connection"
    _, method, path, body = server.seen[0]
    assert (method, path) == ("POST", "/v1/transfers")
    assert "metadata[advance]=adv_1" in body.replace("%5B", "[").replace("%5D", "]")


def test_each_thread_has_its_own_connection(server: _Server) -> None:
    sdk = _sdk(server)
    ids: list[str] = []
    threads = [threading.Thread(target=lambda i=i: ids.append(_transfer(sdk, f"k{i}").id)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ids) == [f"tr_{n}" for n in range(4)]
    assert len({port for port, *_ in server.seen}) == 4


def test_a_connection_closed_while_idle_is_replaced_for_a_request_with_a_key(server: _Server) -> None:
    server.one_request_per_connection = True
    sdk = _sdk(server)
    assert _transfer(sdk, "k1").id == "tr_0"
    time.sleep(0.05)  # the server's hang-up reaches the client's socket
    assert _transfer(sdk, "k2").id == "tr_1"
    assert len(server.seen) == 2, "the request reached the server once"
    assert server.seen[0][0] != server.seen[1][0], "on a new connection"


def test_a_request_without_a_key_is_not_sent_twice(server: _Server) -> None:
    # the SDK gives every POST a key; the transport does not count on it
    server.one_request_per_connection = True
    client = KeptAliveClient(5.0)
    post = (
        "post",
        f"{server.url}/v1/transfers",
        {"Content-Type": "application/x-www-form-urlencoded"},
        "amount=1",
    )
    assert client.request(*post)[1] == 200
    time.sleep(0.05)
    with pytest.raises(stripe.APIConnectionError, match="Could not reach Stripe"):
        client.request(*post)
    assert len(server.seen) == 1
    body, status, _ = client.request(*post)
    assert (status, json.loads(body)["id"]) == (200, "tr_1"), "the next call opens a new connection"


def test_a_late_answer_is_never_read_as_the_next_ones(server: _Server) -> None:
    server.delays = [0.6]  # the first request is answered after the client gave up
    sdk = _sdk(server, timeout=0.2)
    with pytest.raises(stripe.APIConnectionError, match="timed out"):
        _transfer(sdk, "k1")
    assert _transfer(sdk, "k2").id == "tr_1"
    assert len(server.seen) == 2


def test_the_rail_turns_an_unreachable_stripe_into_try_again_later() -> None:
    with _Server() as srv:
        url = srv.url  # nothing listens there once closed
    rail = StripeRail("sk_test_x", url, timeout_seconds=1.0)
    with pytest.raises(RailUnavailable) as caught:
        rail.transfer(amount_cents=1, destination="acct_1", key="k", metadata={"advance": "adv_1"})
    assert caught.value.code == "provider_unreachable"
