"""``/v1/stream``: events in commit order, resume without gaps, slow and vanishing clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service_support import Svc, running

from portmargin.storage._api import events_after


def crash(s: Svc, factor: float, minute: int) -> None:
    """Push BTC and ETH to ``factor`` of their index at 08:``minute``."""
    m = s.client.get("/v1/market", headers=s.h(s.risk)).json()["underlyings"]
    ups = [
        {
            "underlying": u,
            "time": f"2026-02-25T08:{minute:02d}:00Z",
            "index": m[u]["index"] * factor,
            "perpetual": m[u]["index"] * factor,
        }
        for u in ("BTC", "ETH")
    ]
    r = s.client.post("/v1/market", headers=s.h(s.risk), json={"updates": ups})
    assert r.status_code == 200, r.text


def read_until_quiet(ws: Any, want_ids: set[int]) -> list[dict[str, Any]]:
    """Messages until every event id of ``want_ids`` has arrived."""
    got: list[dict[str, Any]] = []
    while want_ids - {m["id"] for m in got if m["type"] == "event"}:
        got.append(ws.receive_json())
    return got


def test_events_in_commit_order_and_resume(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        with s.client.websocket_connect("/v1/stream?since=0", headers=s.h(s.risk)) as ws:
            hello = ws.receive_json()
            assert hello["type"] == "hello"
            stored = [n.id for n in events_after(s.desk.store, 0)]
            got = read_until_quiet(ws, set(stored))
            seen = {m["id"] for m in got if m["type"] == "event"}
            crash(s, 0.75, 10)
            stored = [n.id for n in events_after(s.desk.store, 0)]
            got += read_until_quiet(ws, set(stored) - seen)
            ids = [m["id"] for m in got if m["type"] == "event"]
            assert ids == sorted(ids) == stored  # every stored event, once, in commit order
            margins = [m for m in got if m["type"] == "margin"]
            assert margins and all(m["figures"]["account"] == m["account"] for m in margins)
            last = ids[-1]
        # while disconnected the market moves on; a resume from `last` misses nothing
        crash(s, 1.5, 20)
        crash(s, 0.6, 30)
        missed = [n.id for n in events_after(s.desk.store, last)]
        assert missed
        with s.client.websocket_connect(
            f"/v1/stream?since={last}&margins=false", headers=s.h(s.risk)
        ) as ws:
            assert ws.receive_json()["type"] == "hello"
            got = read_until_quiet(ws, set(missed))
            assert [m["id"] for m in got] == missed
            assert all(m["type"] == "event" for m in got)


def test_trader_stream_sees_only_its_account(tmp_path: Path) -> None:
    with (
        running(tmp_path) as s,
        s.client.websocket_connect("/v1/stream?since=0", headers=s.h(s.trader)) as ws,
    ):
        assert ws.receive_json()["type"] == "hello"
        r = s.client.post(
            "/v1/accounts/acct-000/deposits",
            headers=s.h(s.trader),
            json={"currency": "BTC", "amount": 0.1},
        )
        assert r.status_code == 200
        crash(s, 0.7, 15)
        mine = [n.id for n in events_after(s.desk.store, 0, account_id="acct-000")]
        got = read_until_quiet(ws, set(mine))
        assert {m["account"] for m in got if m["type"] in ("event", "margin")} == {"acct-000"}


def test_a_vanishing_client_does_not_hurt_others(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        with s.client.websocket_connect("/v1/stream", headers=s.h(s.risk)) as keep:
            assert keep.receive_json()["type"] == "hello"
            with s.client.websocket_connect("/v1/stream", headers=s.h(s.admin)) as rude:
                assert rude.receive_json()["type"] == "hello"
                rude.close()  # gone mid-stream
            before = s.desk.view.last_event_id
            crash(s, 0.7, 12)
            after = [n.id for n in events_after(s.desk.store, before)]
            got = read_until_quiet(keep, set(after))
            assert got
        assert s.client.get("/v1/health").json()["status"] == "ok"
        assert not s.desk.hub.subscribers


def test_bad_stream_requests(tmp_path: Path) -> None:
    import pytest
    from starlette.websockets import WebSocketDisconnect

    with running(tmp_path) as s:
        for url, headers, code in (
            ("/v1/stream", {}, 4401),
            ("/v1/stream?since=-3", s.h(s.risk), 4422),
            ("/v1/stream?since=abc", s.h(s.risk), 4422),
        ):
            with (
                pytest.raises(WebSocketDisconnect) as exc,
                s.client.websocket_connect(url, headers=headers) as ws,
            ):
                ws.receive_json()
            assert exc.value.code == code
