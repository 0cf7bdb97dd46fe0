"""The access-control matrix: every endpoint, every role, own and another account's id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_support import running
from starlette.websockets import WebSocketDisconnect

BOOK = {"cash": {"BTC": 1}, "positions": [{"instrument": "BTC-27MAR26-70000-P", "quantity": -1}]}
TRADE = {"client_order_id": "x-1", "instrument": "BTC-PERPETUAL", "quantity": 0.001}
XFER = {"currency": "BTC", "amount": 0.001}


def calls(account: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, body) of every endpoint that names an account."""
    return [
        ("GET", f"/v1/accounts/{account}", None),
        ("GET", f"/v1/accounts/{account}/events", None),
        ("POST", f"/v1/accounts/{account}/trades", TRADE),
        ("POST", f"/v1/accounts/{account}/deposits", XFER),
        ("POST", f"/v1/accounts/{account}/withdrawals", XFER),
        ("PUT", f"/v1/accounts/{account}", {"balances": {"BTC": 1}, "positions": []}),
        (
            "POST",
            "/v1/whatif",
            {"account": account, "trades": [{"instrument": "BTC-PERPETUAL", "quantity": 1}]},
        ),
    ]


def test_trader_never_reaches_another_account(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        for method, path, body in calls("acct-001"):
            r = s.client.request(method, path, headers=s.h(s.trader), json=body)
            assert r.status_code in (403, 404), (method, path, r.status_code, r.text)
            assert "figures" not in r.json() and "balances" not in r.json()
        # a trader's list shows only its own account
        rows = s.client.get("/v1/accounts", headers=s.h(s.trader)).json()["accounts"]
        assert [a["id"] for a in rows] == ["acct-000"]
        # an id that does not exist answers the same as another's: 404
        a = s.client.get("/v1/accounts/acct-001", headers=s.h(s.trader))
        b = s.client.get("/v1/accounts/nope", headers=s.h(s.trader))
        assert a.status_code == b.status_code == 404
        # the stream refuses another account
        with (
            pytest.raises(WebSocketDisconnect) as exc,
            s.client.websocket_connect("/v1/stream?account=acct-001", headers=s.h(s.trader)) as ws,
        ):
            ws.receive_json()
        assert exc.value.code == 4404


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "allowed"),
    [
        ("trader", "GET", "/v1/accounts/acct-000", None, True),
        ("trader", "POST", "/v1/accounts/acct-000/deposits", XFER, True),
        ("trader", "PUT", "/v1/accounts/acct-000", {"balances": {}, "positions": []}, False),
        ("trader", "POST", "/v1/market", {"updates": []}, False),
        ("trader", "GET", "/v1/keys", None, False),
        ("trader", "POST", "/v1/keys", {"role": "admin"}, False),
        ("trader", "POST", "/v1/margin", {"portfolio": BOOK}, True),
        ("trader", "GET", "/v1/market", None, True),
        ("risk", "GET", "/v1/accounts/acct-001", None, True),
        ("risk", "GET", "/v1/accounts/acct-001/events", None, True),
        ("risk", "POST", "/v1/accounts/acct-001/trades", TRADE, False),
        ("risk", "POST", "/v1/accounts/acct-001/deposits", XFER, False),
        ("risk", "PUT", "/v1/accounts/acct-x", {"balances": {}, "positions": []}, False),
        ("risk", "GET", "/v1/keys", None, False),
        ("admin", "GET", "/v1/keys", None, True),
        ("admin", "POST", "/v1/accounts/acct-001/deposits", XFER, True),
        ("admin", "PUT", "/v1/accounts/acct-x", {"balances": {"BTC": 1}, "positions": []}, True),
    ],
)
def test_role_matrix(
    tmp_path: Path, role: str, method: str, path: str, body: dict[str, Any] | None, allowed: bool
) -> None:
    with running(tmp_path) as s:
        key = {"trader": s.trader, "risk": s.risk, "admin": s.admin}[role]
        r = s.client.request(method, path, headers=s.h(key), json=body)
        if allowed:
            assert r.status_code < 400 or r.status_code == 422, r.text
        else:
            assert r.status_code in (403, 404), r.text


def test_dashboard_cookie_needs_csrf_header(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        s.client.cookies.set("pm_key", s.risk)
        assert s.client.get("/v1/market").status_code == 200
        body = {"portfolio": BOOK}
        assert s.client.post("/v1/margin", json=body).status_code == 403
        ok = s.client.post("/v1/margin", json=body, headers={"X-Requested-With": "portmargin"})
        assert ok.status_code == 200
