"""API keys, roles and per-key rate limits.

A client sends ``Authorization: Bearer <key>``. The dashboard's browser sends the same key
in an HttpOnly, ``SameSite=Strict`` cookie set by its login form; a request authenticated by
the cookie that changes state must also carry ``X-Requested-With: portmargin`` (a header a
cross-site page cannot add without a CORS pre-flight, which the service never grants), and a
WebSocket authenticated by the cookie must come from the service's own origin.

Roles:

========  ===================================================================================
admin     everything: keys, accounts, every account's data and changes, market data
risk      reads every account, pushes market data, runs the calculators
trader    reads and changes only its own account (``--account``); other accounts are 404
========  ===================================================================================

Rate limits are token buckets per key (``rate`` requests per second, bursts of twice that),
kept in the app's state; a request over the limit gets a 429 problem with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from portmargin.service._problems import Problem
from portmargin.storage._api import ApiKey, verify_key

__all__ = [
    "COOKIE",
    "Admin",
    "Caller",
    "KeyCache",
    "Principal",
    "RateLimiter",
    "RiskReader",
    "authenticate",
]

COOKIE = "pm_key"
CSRF_HEADER = "x-requested-with"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its key's id, role and (trader) account."""

    key_id: str
    role: str
    account: str | None
    rate: float

    def sees(self, account: str) -> bool:
        """True if this caller may read ``account``."""
        return self.role != "trader" or account == self.account

    def require_account(self, account: str) -> None:
        """404 for a trader asking about another account (its existence is not revealed)."""
        if not self.sees(account):
            raise Problem(404, f"account {account!r} not found")

    def require(self, *roles: str) -> None:
        """403 unless the caller has one of ``roles``."""
        if self.role not in roles:
            raise Problem(403, f"a {self.role} key may not do this (needs {' or '.join(roles)})")


class KeyCache:
    """Verified keys for a few seconds, so a request costs no database read."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._keys: dict[str, tuple[float, ApiKey]] = {}

    def get(self, token: str) -> ApiKey | None:
        """The cached key of ``token`` if still fresh."""
        hit = self._keys.get(hashlib.sha256(token.encode()).hexdigest())
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, token: str, key: ApiKey) -> None:
        """Remember a verified key (the cache holds at most 10,000)."""
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[hashlib.sha256(token.encode()).hexdigest()] = (time.monotonic(), key)

    def clear(self) -> None:
        """Forget every key (after a revocation)."""
        self._keys.clear()


class RateLimiter:
    """Token buckets per key id (see the module docstring)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str, rate: float) -> float:
        """Take one token; returns 0, or the seconds to wait when the bucket is empty."""
        now = time.monotonic()
        burst = max(2.0 * rate, 1.0)
        tokens, last = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[key_id] = (tokens - 1.0, now)
        return 0.0


def _token(conn: HTTPConnection) -> tuple[str | None, bool]:
    """The presented key and whether it came from the dashboard's cookie."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Problem(
                401,
                "the Authorization header must be 'Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return value.strip(), False
    cookie = conn.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def authenticate(conn: HTTPConnection, *, method: str | None = None) -> Principal:
    """The caller of ``conn`` (HTTP or WebSocket), rate-limited.

    Raises
    ------
    Problem
        401 without a valid key, 403 for a cookie request without the CSRF header or from
        another origin, 429 over the key's rate.
    """
    state = conn.app.state
    token, from_cookie = _token(conn)
    if token is None:
        raise Problem(
            401,
            "an API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = state.keys.get(token)
    if key is None:
        key = verify_key(state.desk.store, token)
        if key is None:
            raise Problem(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        state.keys.put(token, key)
    if from_cookie:
        if (
            method is not None
            and method in _UNSAFE
            and conn.headers.get(CSRF_HEADER) != "portmargin"
        ):
            raise Problem(403, "a dashboard request that changes state needs X-Requested-With")
        origin = conn.headers.get("origin")
        if method is None and origin is not None:
            host = conn.headers.get("host", "")
            if origin.split("://", 1)[-1] != host:
                raise Problem(403, "WebSocket from another origin")
    rate = key.rate_per_second or state.settings.rate_per_second
    wait = state.limiter.take(key.key_id, rate)
    if wait > 0:
        raise Problem(
            429,
            f"rate limit of {rate:g} requests per second exceeded; retry in {wait:.2f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return Principal(key.key_id, key.role, key.account_id, rate)


async def _caller(request: Request) -> Principal:
    return authenticate(request, method=request.method)


def _risk(caller: Annotated[Principal, Depends(_caller)]) -> Principal:
    caller.require("admin", "risk")
    return caller


def _admin(caller: Annotated[Principal, Depends(_caller)]) -> Principal:
    caller.require("admin")
    return caller


Caller = Annotated[Principal, Depends(_caller)]
"""Any valid key."""
RiskReader = Annotated[Principal, Depends(_risk)]
"""An admin or risk key."""
Admin = Annotated[Principal, Depends(_admin)]
"""An admin key."""
