"""Helpers of the service tests: an app on a temporary database with a few example accounts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.testclient import TestClient

from portmargin.service import ServiceSettings, create_app
from portmargin.service._desk import Desk
from portmargin.storage._api import create_key

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ACCOUNTS = REPO / "examples" / "accounts.json"


def accounts_file(tmp: Path, n: int = 12) -> Path:
    """The first ``n`` example accounts, as a file."""
    doc = json.loads(EXAMPLE_ACCOUNTS.read_text())
    doc["accounts"] = doc["accounts"][:n]
    out = tmp / "accounts.json"
    out.write_text(json.dumps(doc))
    return out


def settings(tmp: Path, **kw: Any) -> ServiceSettings:
    """Settings on a temporary SQLite database and 12 example accounts (demo market)."""
    base: dict[str, Any] = {
        "db_url": f"sqlite:///{tmp / 'pm.db'}",
        "accounts_file": accounts_file(tmp),
        "rate_per_second": 10_000.0,
    }
    base.update(kw)
    return ServiceSettings(**base)


@dataclass
class Svc:
    """A running app: its client, desk and one key per role (trader of ``acct-000``)."""

    client: TestClient
    desk: Desk
    admin: str
    risk: str
    trader: str

    def h(self, key: str) -> dict[str, str]:
        """The Authorization header of ``key``."""
        return {"Authorization": f"Bearer {key}"}

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until the feed has been consumed (static / replay finished)."""
        end = time.monotonic() + timeout
        while self.desk.feed_status in ("starting", "replaying") and time.monotonic() < end:
            time.sleep(0.02)
        assert self.desk.view.market is not None or self.desk.source.live is not None


@contextmanager
def running(tmp: Path, **kw: Any) -> Iterator[Svc]:
    """The app on ``tmp`` with a client and keys; the feed consumed."""
    app = create_app(settings(tmp, **kw))
    with TestClient(app, raise_server_exceptions=False) as client:
        desk: Desk = app.state.desk
        keys = [
            create_key(desk.store, role=r, account_id=a)[1]
            for r, a in (("admin", None), ("risk", None), ("trader", "acct-000"))
        ]
        svc = Svc(client, desk, *keys)
        if desk.source.live is None:
            svc.wait_ready()
        yield svc


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(tmp: Path, **kw: Any) -> Iterator[tuple[str, Desk, dict[str, str]]]:
    """The app under uvicorn on 127.0.0.1 (a thread): base URL, desk and keys by role."""
    port = free_port()
    app = create_app(settings(tmp, port=port, **kw))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started and time.monotonic() < end:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    desk: Desk = app.state.desk
    keys = {
        r: create_key(desk.store, role=r, account_id=a)[1]
        for r, a in (("admin", None), ("risk", None), ("trader", "acct-000"))
    }
    end = time.monotonic() + 20
    while desk.feed_status in ("starting", "replaying") and time.monotonic() < end:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", desk, keys
    finally:
        server.should_exit = True
        thread.join(timeout=20)
