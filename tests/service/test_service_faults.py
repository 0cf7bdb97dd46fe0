"""Database faults, restarts and the live Deribit feed against a local WebSocket server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from service_support import running

from portmargin.errors import StorageError
from portmargin.storage import Store
from portmargin.storage._api import events_after


def test_database_away_and_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running(tmp_path) as s:
        before = s.client.get("/v1/accounts/acct-000", headers=s.h(s.trader)).json()
        real = Store.commit_step

        def down(self: Store, **kw: Any) -> bool:
            raise StorageError("cannot connect to database (server closed the connection)")

        monkeypatch.setattr(Store, "commit_step", down)
        order = {"client_order_id": "db-1", "instrument": "BTC-PERPETUAL", "quantity": 0.01}
        r = s.client.post("/v1/accounts/acct-000/trades", headers=s.h(s.trader), json=order)
        assert r.status_code == 503 and "nothing was applied" in r.json()["detail"]
        assert "Retry-After" in r.headers
        assert s.client.get("/v1/health").json()["database"] == "unavailable"
        # other clients are still served, and nothing was half-applied
        now = s.client.get("/v1/accounts/acct-000", headers=s.h(s.trader)).json()
        assert now["positions"] == before["positions"] and now["balances"] == before["balances"]
        assert (
            s.client.post(
                "/v1/margin", headers=s.h(s.risk), json={"portfolio": {"positions": []}}
            ).status_code
            == 200
        )
        monkeypatch.setattr(Store, "commit_step", real)
        r = s.client.post("/v1/accounts/acct-000/trades", headers=s.h(s.trader), json=order)
        assert r.status_code == 200 and r.json()["applied"] and not r.json()["replayed"], r.text
        assert s.client.get("/v1/health").json()["database"] == "ok"


def test_restart_resumes_state_and_orders(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        order = {"client_order_id": "r-1", "instrument": "BTC-PERPETUAL", "quantity": 0.02}
        first = s.client.post(
            "/v1/accounts/acct-000/trades", headers=s.h(s.trader), json=order
        ).json()
        up = {
            "underlying": "BTC",
            "time": "2026-02-25T09:00:00Z",
            "index": 60000.0,
            "perpetual": 60000.0,
        }
        assert (
            s.client.post("/v1/market", headers=s.h(s.risk), json={"updates": [up]}).status_code
            == 200
        )
        want = {a: s.desk.view.margins[a].to_dict() for a in s.desk.view.margins}
        n_events = len(events_after(s.desk.store, 0))
        keys = (s.admin, s.trader)
    # a new process on the same database: same market state, same figures, no new events
    from service_support import settings
    from starlette.testclient import TestClient

    from portmargin.service import create_app

    app = create_app(settings(tmp_path))
    with TestClient(app) as c:
        desk = app.state.desk
        end = time.monotonic() + 20
        while desk.feed_status in ("starting", "replaying") and time.monotonic() < end:
            time.sleep(0.02)
        m = c.get("/v1/market", headers={"Authorization": f"Bearer {keys[0]}"}).json()
        assert m["underlyings"]["BTC"]["index"] == 60000.0
        assert m["valuation_time"] == "2026-02-25T09:00:00Z"
        assert desk.feed_status == "static", (desk.feed_status, desk.feed_error)
        got = {a: desk.view.margins[a].to_dict() for a in desk.view.margins}
        assert got.keys() == want.keys()
        for a in want:
            assert got[a]["initial_margin"] == pytest.approx(
                want[a]["initial_margin"], rel=1e-3
            )  # see docs/service.md: time of the untouched underlying
            assert got[a]["equity"] == pytest.approx(
                want[a]["equity"], rel=1e-3
            )  # see docs/service.md: time of the untouched underlying
        assert (
            len([e for e in events_after(desk.store, 0) if e.event.kind != "healthy"])
            >= n_events - 0
        )
        again = c.post(
            "/v1/accounts/acct-000/trades",
            headers={"Authorization": f"Bearer {keys[1]}"},
            json=order,
        )
        assert again.json()["replayed"] and again.json()["seq"] == first["seq"]


# -- Deribit ------------------------------------------------------------------------------------
def _note(channel: str, data: Any) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


class FakeDeribit:
    """A local server speaking Deribit's documented JSON-RPC: subscribe, heartbeat, channels."""

    def __init__(self) -> None:
        self.subscribed: list[list[str]] = []
        self.drop_after = 0
        self.silent = False
        self.port = 0
        self.started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Any = None
        self.btc = 70000.0

    async def handler(self, ws: Any) -> None:
        sent = 0
        async for raw in ws:
            doc = json.loads(raw)
            if doc.get("method") == "public/subscribe":
                self.subscribed.append(doc["params"]["channels"])
                await ws.send(
                    json.dumps(
                        {"jsonrpc": "2.0", "id": doc["id"], "result": doc["params"]["channels"]}
                    )
                )
                await ws.send(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "method": "heartbeat",
                            "params": {"type": "test_request"},
                        }
                    )
                )
                while not self.silent:
                    ts = int(time.time() * 1000)
                    await ws.send(
                        _note(
                            "deribit_price_index.btc_usd",
                            {"timestamp": ts, "price": self.btc, "index_name": "btc_usd"},
                        )
                    )
                    await ws.send(
                        _note(
                            "deribit_price_index.eth_usd",
                            {"timestamp": ts, "price": 3500.0, "index_name": "eth_usd"},
                        )
                    )
                    await ws.send(
                        _note(
                            "markprice.options.btc_usd",
                            [
                                {
                                    "timestamp": ts,
                                    "instrument_name": "BTC-27MAR26-70000-P",
                                    "mark_price": 0.06,
                                    "iv": 0.55,
                                }
                            ],
                        )
                    )
                    await ws.send(
                        _note(
                            "ticker.BTC-PERPETUAL.100ms",
                            {
                                "timestamp": ts,
                                "instrument_name": "BTC-PERPETUAL",
                                "mark_price": self.btc + 10,
                                "index_price": self.btc,
                            },
                        )
                    )
                    sent += 1
                    if self.drop_after and sent >= self.drop_after:
                        self.drop_after = 0
                        await ws.close()
                        return
                    await asyncio.sleep(0.05)
            else:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": doc.get("id"), "result": "ok"}))

    def run(self) -> None:
        import websockets

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            async with websockets.serve(self.handler, "127.0.0.1", 0) as server:
                self.server = server
                self.port = next(iter(server.sockets)).getsockname()[1]
                self.started.set()
                await asyncio.Future()

        with contextlib.suppress(RuntimeError):
            asyncio.run(main())


def test_deribit_feed_subscribes_reconnects_and_flags_stale(tmp_path: Path) -> None:
    fake = FakeDeribit()
    fake.drop_after = 10
    threading.Thread(target=fake.run, daemon=True).start()
    assert fake.started.wait(10)
    url = f"ws://127.0.0.1:{fake.port}"
    with running(tmp_path, feed="deribit", deribit_url=url, stale_after_seconds=0.6) as s:
        live = s.desk.source.live
        assert live is not None
        live.min_interval = 0.05
        end = time.monotonic() + 20
        while (s.desk.view.market is None or len(fake.subscribed) < 2) and time.monotonic() < end:
            time.sleep(0.05)
        # subscribed to the documented channels, twice: the server dropped the first connection
        assert len(fake.subscribed) >= 2 and fake.subscribed[0] == fake.subscribed[1]
        chans = fake.subscribed[0]
        assert {
            "deribit_price_index.btc_usd",
            "markprice.options.btc_usd",
            "ticker.BTC-PERPETUAL.100ms",
        } <= set(chans)
        m = s.client.get("/v1/market", headers=s.h(s.risk)).json()
        assert m["underlyings"]["BTC"]["index"] == 70000.0 and m["feed"]["kind"] == "deribit"
        assert m["feed"]["live"]["connections"] >= 2
        fake.btc = 50000.0
        end = time.monotonic() + 10
        while s.desk.view.states["BTC"].index != 50000.0 and time.monotonic() < end:
            time.sleep(0.05)
        assert s.desk.view.states["BTC"].index == 50000.0
        # the exchange goes quiet: the data turns stale, is flagged, and nothing margins on it
        fake.silent = True
        time.sleep(1.2)
        m = s.client.get("/v1/market", headers=s.h(s.risk)).json()
        assert m["underlyings"]["BTC"]["stale"] and m["feed"]["live"]["stale"]
        r = s.client.post(
            "/v1/accounts/acct-000/trades",
            headers=s.h(s.trader),
            json={"client_order_id": "st-1", "instrument": "BTC-PERPETUAL", "quantity": 0.01},
        )
        assert r.status_code == 503 and "stale" in r.json()["detail"]
        r = s.client.post("/v1/margin", headers=s.h(s.risk), json={"portfolio": {"positions": []}})
        assert r.status_code == 503
    if fake.loop is not None:
        fake.loop.call_soon_threadsafe(fake.loop.stop)
