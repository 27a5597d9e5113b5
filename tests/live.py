"""Our API served by uvicorn on a real port of 127.0.0.1, in a thread of the test
process: for tests that need real connections, real thread hops and real commits."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from sqlalchemy import Engine

from escompte.api.app import create_app
from escompte.clock import FrozenClock
from escompte.settings import Settings


class Server:
    """``engine`` None: the app makes its own from ``settings``, as ``escompte serve``
    does. ``wrap``: an ASGI wrapper around the app (to change how it runs)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None,
        clock: FrozenClock,
        wrap: Callable[[Any], Any] | None = None,
    ) -> None:
        self.app = create_app(settings, engine=engine, clock=clock, configure_logs=False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.sock = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        served = wrap(self.app) if wrap else self.app
        self.server = uvicorn.Server(
            uvicorn.Config(served, log_level="warning", access_log=False, lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "API server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
