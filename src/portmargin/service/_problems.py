"""Errors as RFC 9457 problem documents (``application/problem+json``).

Every error response is one JSON object: ``type`` (``about:blank``: the status says it
all), ``title`` (the status phrase), ``status``, ``detail`` (one line for a person),
``instance`` (the request path) and, where one field is at fault, ``field`` (its dotted path
in the request, e.g. ``portfolio.positions.3.quantity``) and ``errors`` (every field at
fault). No stack trace ever reaches a client; an unexpected error is logged on the server
and answered with a 500 problem that says only that.
https://www.rfc-editor.org/rfc/rfc9457
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from portmargin.errors import PortmarginError, StorageError

__all__ = ["PROBLEM_TYPE", "Problem", "install_problem_handlers", "problem_response"]

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger("portmargin.service")


class Problem(Exception):  # noqa: N818 - RFC 9457 calls it a problem
    """An error answered as a problem document (raised by the service's own code)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    field: str | None = None,
    errors: Sequence[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The problem document of ``status`` for ``request``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": " ".join(detail.split()),
        "instance": request.url.path,
    }
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _loc(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(parts) or "body"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    malformed = None
    for e in exc.errors():
        if e.get("type") == "json_invalid":
            malformed = str(e.get("ctx", {}).get("error", "invalid JSON"))
            continue
        errors.append({"field": _loc(e.get("loc", ())), "message": str(e.get("msg", ""))})
    if malformed is not None:
        return problem_response(request, 400, f"the request body is not valid JSON: {malformed}")
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem_response(
        request,
        422,
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=errors,
    )


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        request, exc.status, exc.detail, field=exc.field, headers=exc.headers, extra=exc.extra
    )


async def _portmargin(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StorageError):
        log.warning("database fault: %s", exc)
        return problem_response(
            request,
            503,
            f"the database is unavailable; nothing was applied; retry later ({exc})",
            headers={"Retry-After": "2"},
        )
    return problem_response(request, 422, str(exc))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = str(exc.detail) or HTTPStatus(exc.status_code).phrase
    headers = None if exc.headers is None else dict(exc.headers)
    return problem_response(request, exc.status_code, detail, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "internal error; it was logged on the server")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(PortmarginError, _portmargin)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
