"""Request id, access log and Prometheus metrics, as one pure ASGI middleware."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from escompte.ids import new_id

REQUESTS = Counter("escompte_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "escompte_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
log = structlog.get_logger("escompte.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _INCOMING_ID.match(incoming) else new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                raw: list[Any] = list(message.get("headers", []))
                raw.append((b"x-request-id", request_id.encode()))
                message["headers"] = raw
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], route_path, str(status)).inc()
            LATENCY.labels(scope["method"], route_path).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route_path,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
