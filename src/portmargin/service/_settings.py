"""Settings of ``portmargin serve`` (pydantic-settings: options or ``PORTMARGIN_*`` variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_ACCOUNTS", "ServiceSettings"]

DEFAULT_ACCOUNTS = Path(__file__).resolve().parents[3] / "examples" / "accounts.json"
"""The repository's example accounts, loaded into an empty database (a checkout's default)."""


class ServiceSettings(BaseSettings):
    """Everything the service is built from; :func:`portmargin.service.create_app` takes one.

    Each field can be set from the environment as ``PORTMARGIN_<FIELD>`` (e.g.
    ``PORTMARGIN_DB_URL``); ``portmargin serve`` sets them from its options.
    """

    model_config = SettingsConfigDict(env_prefix="PORTMARGIN_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    db_url: str = "sqlite:///portmargin.db"
    market_file: Path | None = None
    feed: str | None = None
    """``replay``, ``simulated``, ``jsonl:FILE``, ``deribit`` or None (a static market)."""
    accounts_file: Path | None = None
    """Accounts loaded into an empty database (default: the repository's example accounts)."""
    model: str = "deribit"
    speed: float = Field(default=0.0, ge=0.0)
    """Feed seconds per wall second for replayed feeds (0: as fast as possible)."""
    replay_steps: int = Field(default=24, ge=1, le=100_000)
    data_dir: Path | None = None
    """The crash-day data folder of ``--feed replay|simulated``."""
    seed: int = 0
    deribit_url: str = "wss://www.deribit.com/ws/api/v2"
    stale_after_seconds: float = Field(default=10.0, gt=0.0)
    """Market data older than this (wall clock) is stale: flagged, and never margined on."""
    max_body_bytes: int = Field(default=1_000_000, ge=1_000)
    max_legs: int = Field(default=500, ge=1)
    rate_per_second: float = Field(default=50.0, gt=0.0)
    """Default per-key request rate (a key may carry its own); the burst is twice it."""
    stream_queue: int = Field(default=10_000, ge=10)
    """Events buffered per stream client; a client further behind is disconnected and resumes."""
    key_cache_seconds: float = Field(default=5.0, ge=0.0)
    """How long a verified key is trusted without reading the database (revocation delay)."""
