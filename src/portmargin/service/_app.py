"""The ASGI application: :func:`create_app` builds it from :class:`ServiceSettings`.

Nothing is global: the desk (monitor, database, feed), the calculators, the key cache and
the rate limiter live on ``app.state`` and are made when the app starts (its lifespan), so
two apps in one process (tests) share nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portmargin import __version__
from portmargin.service import _dashboard, _routes, _stream
from portmargin.service._auth import KeyCache, RateLimiter
from portmargin.service._calc import Calculators
from portmargin.service._desk import Desk
from portmargin.service._problems import PROBLEM_TYPE, install_problem_handlers
from portmargin.service._settings import ServiceSettings

__all__ = ["BodyLimit", "create_app"]

log = logging.getLogger("portmargin.service")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 problem (before parsing them)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, send)
            return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    refused = True
                    raise _TooLargeError
            return msg

        started = False

        async def tracking(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracking)
        except _TooLargeError:
            if not started:
                await self._refuse(scope, send)
        except Exception:
            if not refused:
                raise
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        import json

        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"the request body exceeds {self.limit} bytes",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The margin service (REST API under ``/v1``, ``/v1/stream``, the dashboard)."""
    cfg = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        desk, close = Desk.open(cfg)
        app.state.desk = desk
        try:
            await desk.start()
            yield
        finally:
            await desk.stop()
            close()

    app = FastAPI(
        title="portmargin",
        version=__version__,
        summary="Portfolio margin for crypto derivatives: calculators, accounts, live monitor.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = cfg
    app.state.calc = Calculators(max_legs=cfg.max_legs)
    app.state.keys = KeyCache(cfg.key_cache_seconds)
    app.state.limiter = RateLimiter()
    install_problem_handlers(app)
    app.include_router(_routes.router)
    app.include_router(_stream.router)
    app.include_router(_dashboard.router)
    _dashboard.mount_static(app)
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    return app


def _unused(*_: Any) -> None:  # pragma: no cover - keeps the import of Any honest
    return None
