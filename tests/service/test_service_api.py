"""The REST API against the app (httpx via Starlette's test client): contracts and bad input."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from service_support import running

import portmargin as pm
from portmargin.cli._margin import margin_json
from portmargin.cli._whatif import whatif_json
from portmargin.service._schemas import MarginDocument

BOOK: dict[str, Any] = {
    "cash": {"BTC": 0.2},
    "positions": [
        {"instrument": "BTC-27MAR26-70000-P", "quantity": -1},
        {"instrument": "BTC-27MAR26-65000-P", "quantity": 1},
    ],
}


def test_margin_is_the_cli_json_contract(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        r = s.client.post(
            "/v1/margin", headers=s.h(s.trader), json={"portfolio": BOOK, "market": None}
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        market = pm.demo_market()
        book = pm.Portfolio.of(
            {p["instrument"]: p["quantity"] for p in BOOK["positions"]}, cash=BOOK["cash"]
        )
        want = margin_json(pm.load_model("deribit").margin(book, market), {})
        assert doc["initial_margin"] == pytest.approx(want["initial_margin"], rel=1e-9)
        assert set(doc) == set(want)
        assert doc["components"] == pytest.approx(want["components"], rel=1e-9)
        MarginDocument.model_validate(doc)
        # an inline market gives the same figures as the service's demo market
        inline = {
            "valuation_time": "2026-02-25T08:00:00Z",
            "underlyings": {"BTC": {"spot": 70000.0}},
            "options": {
                "BTC-27MAR26-70000-P": {"mark_iv": 0.6},
                "BTC-27MAR26-65000-P": {"mark_iv": 0.65},
            },
        }
        r2 = s.client.post(
            "/v1/margin", headers=s.h(s.risk), json={"portfolio": BOOK, "market": inline}
        )
        assert r2.status_code == 200, r2.text
        assert r2.json()["market"] == "market"


def test_params_overrides_and_models(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        r = s.client.post(
            "/v1/margin",
            headers=s.h(s.risk),
            json={"portfolio": BOOK, "model": "deribit", "params": {"im_multiplier": 2.0}},
        )
        assert r.status_code == 200, r.text
        assert "overrides(" in r.json()["model_version"]
        base = s.client.post("/v1/margin", headers=s.h(s.risk), json={"portfolio": BOOK}).json()
        assert r.json()["initial_margin"] > base["initial_margin"]
        for bad in ("/etc/passwd", "../x.toml", "no-such-model"):
            r = s.client.post(
                "/v1/margin", headers=s.h(s.risk), json={"portfolio": BOOK, "model": bad}
            )
            assert r.status_code == 422 and r.json()["field"] == "model", r.text


def test_rules_compare_whatif(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        r = s.client.post("/v1/rules", headers=s.h(s.risk), json={"portfolio": BOOK})
        assert r.status_code == 200 and r.json()["strategies"], r.text
        r = s.client.post("/v1/compare", headers=s.h(s.risk), json={"portfolio": BOOK})
        assert r.status_code == 200 and set(r.json()) >= {"standard", "strategy", "portfolio"}
        trade = [{"instrument": "BTC-27MAR26-60000-P", "quantity": -1}]
        r = s.client.post(
            "/v1/whatif", headers=s.h(s.risk), json={"portfolio": BOOK, "trades": trade}
        )
        assert r.status_code == 200, r.text
        from portmargin.accounts import Account, AccountSettings, what_if

        book = pm.Portfolio.of(
            {p["instrument"]: p["quantity"] for p in BOOK["positions"]}, cash=BOOK["cash"]
        )
        res = what_if(
            Account.from_portfolio(book),
            {"BTC-27MAR26-60000-P": -1.0},
            pm.demo_market(),
            pm.load_model("deribit"),
            AccountSettings(),
        )
        want = whatif_json(res, 100_000.0)
        assert r.json()["incremental_initial_margin"] == pytest.approx(
            want["incremental_initial_margin"], rel=1e-9
        )
        assert r.json()["accepted"] == want["accepted"]
        # against a stored account
        r = s.client.post(
            "/v1/whatif", headers=s.h(s.trader), json={"account": "acct-000", "trades": trade}
        )
        assert r.status_code == 200, r.text
        assert r.json()["before"]["account"] == "acct-000"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ('{"portfolio": ', 400, None),
        (
            '{"portfolio": {"positions": [{"instrument": "BTC-27MAR26-70000-P", "quantity": NaN}]}}',
            422,
            "portfolio.positions.0.quantity",
        ),
        (
            '{"portfolio": {"positions": [{"instrument": "BTC-27MAR26-70000-P", "quantity": 1e300}]}}',
            422,
            "portfolio.positions.0.quantity",
        ),
        (
            '{"portfolio": {"positions": [{"instrument": "BTC-1JAN20-1-C", "quantity": 1}]}}',
            422,
            "portfolio.positions",
        ),
        (
            '{"portfolio": {"positions": [{"instrument": "NOPE", "quantity": 1}]}}',
            422,
            "portfolio.positions",
        ),
        ('{"portfolio": {}, "extra": 1}', 422, "extra"),
        ("[]", 422, "body"),
    ],
)
def test_bad_input_is_a_problem(tmp_path: Path, body: str, status: int, field: str | None) -> None:
    with running(tmp_path) as s:
        r = s.client.post(
            "/v1/margin", headers={**s.h(s.risk), "Content-Type": "application/json"}, content=body
        )
        assert r.status_code == status, r.text
        doc = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert doc["status"] == status and doc["detail"] and doc["type"] == "about:blank"
        assert "Traceback" not in r.text
        if field is not None:
            assert doc["field"] == field, doc


def test_oversized_books_and_bodies(tmp_path: Path) -> None:
    with running(tmp_path, max_legs=5, max_body_bytes=20_000) as s:
        legs = [{"instrument": "BTC-27MAR26-70000-P", "quantity": 1}] * 6
        r = s.client.post(
            "/v1/margin", headers=s.h(s.risk), json={"portfolio": {"positions": legs}}
        )
        assert r.status_code == 422 and r.json()["field"] == "portfolio.positions"
        big = json.dumps({"portfolio": {"positions": legs * 1000}})
        r = s.client.post(
            "/v1/margin", headers={**s.h(s.risk), "Content-Type": "application/json"}, content=big
        )
        assert r.status_code == 413 and r.json()["status"] == 413
        # the service keeps serving
        assert s.client.get("/v1/market", headers=s.h(s.risk)).status_code == 200


def test_keys_are_required_and_checked(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        assert s.client.get("/v1/market").status_code == 401
        assert (
            s.client.get("/v1/market", headers={"Authorization": "Bearer pm_nope_nope"}).status_code
            == 401
        )
        bad = s.risk[:-3] + "xyz"
        assert s.client.get("/v1/market", headers=s.h(bad)).status_code == 401
        assert s.client.get("/v1/market", headers={"Authorization": "Basic abc"}).status_code == 401
        r = s.client.post("/v1/keys", headers=s.h(s.admin), json={"role": "risk"})
        assert r.status_code == 201
        token, kid = r.json()["token"], r.json()["key_id"]
        assert s.client.get("/v1/market", headers=s.h(token)).status_code == 200
        listed = s.client.get("/v1/keys", headers=s.h(s.admin)).json()
        assert all("token" not in k and "secret" not in json.dumps(k) for k in listed)
        assert s.client.delete(f"/v1/keys/{kid}", headers=s.h(s.admin)).status_code == 204
        assert s.client.get("/v1/market", headers=s.h(token)).status_code == 401


def test_rate_limit(tmp_path: Path) -> None:
    with running(tmp_path, rate_per_second=2.0) as s:
        codes = [s.client.get("/v1/market", headers=s.h(s.risk)).status_code for _ in range(8)]
        assert 429 in codes
        r = s.client.get("/v1/market", headers=s.h(s.risk))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        # another key has its own bucket
        assert s.client.get("/v1/market", headers=s.h(s.admin)).status_code == 200


def test_accounts_list_and_view(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        r = s.client.get("/v1/accounts", headers=s.h(s.risk))
        doc = r.json()
        assert doc["total"] == 12 and sum(doc["counts"].values()) == 12
        ratios = [a["margin_ratio"] for a in doc["accounts"]]
        finite = [x for x in ratios if x is not None]
        assert finite == sorted(finite, reverse=True)
        r = s.client.get("/v1/accounts/acct-001", headers=s.h(s.risk))
        one = r.json()
        assert one["figures"]["pools"] and one["components"]
        assert one["status"] == one["figures"]["status"]
        calls = s.client.get("/v1/accounts?status=margin_call", headers=s.h(s.risk)).json()
        assert all(a["status"] == "margin_call" for a in calls["accounts"])


def test_trades_are_pre_trade_checked_and_idempotent(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        before = s.client.get("/v1/accounts/acct-000", headers=s.h(s.trader)).json()
        order = {"client_order_id": "ord-1", "instrument": "BTC-PERPETUAL", "quantity": 0.01}
        r1 = s.client.post("/v1/accounts/acct-000/trades", headers=s.h(s.trader), json=order)
        assert r1.status_code == 200 and r1.json()["applied"], r1.text
        r2 = s.client.post("/v1/accounts/acct-000/trades", headers=s.h(s.trader), json=order)
        assert (
            r2.status_code == 200 and r2.json()["replayed"] and r2.json()["seq"] == r1.json()["seq"]
        )
        after = s.client.get("/v1/accounts/acct-000", headers=s.h(s.trader)).json()
        q0 = {p["instrument"]: p["quantity"] for p in before["positions"]}
        q1 = {p["instrument"]: p["quantity"] for p in after["positions"]}
        assert q1["BTC-PERPETUAL"] == pytest.approx(q0["BTC-PERPETUAL"] + 0.01)
        # same id, another order
        r3 = s.client.post(
            "/v1/accounts/acct-000/trades", headers=s.h(s.trader), json={**order, "quantity": 1}
        )
        assert r3.status_code == 409 and r3.json()["field"] == "client_order_id"
        # a huge trade is refused by the pre-trade rule; nothing applied
        huge = {"client_order_id": "ord-2", "instrument": "BTC-PERPETUAL", "quantity": 1e6}
        r4 = s.client.post("/v1/accounts/acct-000/trades", headers=s.h(s.trader), json=huge)
        assert r4.status_code == 422 and not r4.json()["applied"] and r4.json()["reason"]
        again = s.client.get("/v1/accounts/acct-000", headers=s.h(s.trader)).json()
        assert again["positions"] == after["positions"] and again["balances"] == after["balances"]
        unknown = {"client_order_id": "ord-3", "instrument": "BTC-1JAN30-1-C", "quantity": 1}
        r5 = s.client.post("/v1/accounts/acct-000/trades", headers=s.h(s.trader), json=unknown)
        assert r5.status_code == 422
        nan = '{"client_order_id": "o", "instrument": "BTC-PERPETUAL", "quantity": NaN}'
        r6 = s.client.post(
            "/v1/accounts/acct-000/trades",
            headers={**s.h(s.trader), "Content-Type": "application/json"},
            content=nan,
        )
        assert r6.status_code == 422 and r6.json()["field"] == "quantity"


def test_deposits_and_withdrawals(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        acct = s.client.get("/v1/accounts/acct-000", headers=s.h(s.trader)).json()
        btc = acct["balances"]["BTC"]
        r = s.client.post(
            "/v1/accounts/acct-000/deposits",
            headers=s.h(s.trader),
            json={"currency": "BTC", "amount": 0.5},
        )
        assert r.status_code == 200 and r.json()["applied"]
        pool = next(p for p in r.json()["figures"]["pools"] if p["currency"] == "BTC")
        excess_btc = pool["excess"]
        # a withdrawn coin also leaves the haircut (2 % on BTC): the excess allows E / (1 − h)
        too_much = min(btc + 0.5, excess_btc / (1 - 0.02) + 0.01) if excess_btc > 0 else 0.01
        r = s.client.post(
            "/v1/accounts/acct-000/withdrawals",
            headers=s.h(s.trader),
            json={"currency": "BTC", "amount": too_much + 1e-6},
        )
        assert r.status_code == 422, r.text
        ok = max(excess_btc / 2, 1e-6)
        r = s.client.post(
            "/v1/accounts/acct-000/withdrawals",
            headers=s.h(s.trader),
            json={"currency": "BTC", "amount": ok},
        )
        assert r.status_code == 200 and r.json()["applied"], r.text
        final = s.client.get("/v1/accounts/acct-000", headers=s.h(s.trader)).json()
        assert final["balances"]["BTC"] == pytest.approx(btc + 0.5 - ok)
        ev = s.client.get("/v1/accounts/acct-000/events", headers=s.h(s.trader)).json()
        kinds = [e["kind"] for e in ev["events"]]
        assert "deposit" in kinds and "withdrawal" in kinds


def test_put_account_and_market_push(tmp_path: Path) -> None:
    with running(tmp_path) as s:
        body = {
            "balances": {"BTC": 0.2},
            "positions": [{"instrument": "BTC-27MAR26-70000-P", "quantity": -1}],
        }
        assert s.client.put("/v1/accounts/new-1", headers=s.h(s.risk), json=body).status_code == 403
        r = s.client.put("/v1/accounts/new-1", headers=s.h(s.admin), json=body)
        assert r.status_code == 201, r.text
        assert r.json()["figures"] is not None
        assert (
            s.client.put("/v1/accounts/new-1", headers=s.h(s.admin), json=body).status_code == 200
        )
        other = {**body, "balances": {"BTC": 5}}
        assert (
            s.client.put("/v1/accounts/new-1", headers=s.h(s.admin), json=other).status_code == 409
        )
        bad = {**body, "positions": [{"instrument": "NOPE", "quantity": 1}]}
        assert s.client.put("/v1/accounts/new-2", headers=s.h(s.admin), json=bad).status_code == 422
        # a crash: BTC down 30 % pushes the short put into margin call or liquidation
        m = s.client.get("/v1/market", headers=s.h(s.risk)).json()
        btc = m["underlyings"]["BTC"]
        upd = {
            "underlying": "BTC",
            "time": "2026-02-25T09:00:00Z",
            "index": btc["index"] * 0.7,
            "perpetual": btc["index"] * 0.7,
        }
        assert (
            s.client.post("/v1/market", headers=s.h(s.trader), json={"updates": [upd]}).status_code
            == 403
        )
        r = s.client.post("/v1/market", headers=s.h(s.risk), json={"updates": [upd]})
        assert r.status_code == 200 and r.json()[0]["applied"], r.text
        acct = s.client.get("/v1/accounts/new-1", headers=s.h(s.risk)).json()
        assert acct["status"] in ("margin_call", "liquidation")
        evs = s.client.get("/v1/accounts/new-1/events", headers=s.h(s.risk)).json()["events"]
        assert (
            evs[-1]["kind"] == acct["status"]
            and evs[-1]["payload"]["market_time"] == "2026-02-25T09:00:00Z"
        )
        stale = {**upd, "time": "2026-02-25T08:30:00Z"}
        r = s.client.post("/v1/market", headers=s.h(s.risk), json={"updates": [stale]})
        assert (
            r.status_code == 200 and not r.json()[0]["applied"] and "stale" in r.json()[0]["reason"]
        )
        assert (
            s.client.get("/v1/market", headers=s.h(s.risk)).json()["valuation_time"]
            == "2026-02-25T09:00:00Z"
        )


def test_unexpected_errors_hide_the_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from portmargin.service._calc import Calculators

    def boom(*_: object, **__: object) -> None:
        raise ZeroDivisionError("secret internals")

    with running(tmp_path) as s:
        monkeypatch.setattr(Calculators, "margin", boom)
        r = s.client.post("/v1/margin", headers=s.h(s.risk), json={"portfolio": BOOK})
        assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
        assert s.client.get("/v1/health").json()["status"] == "ok"


def test_backtest_is_the_cli_json_contract(tmp_path: Path) -> None:
    from portmargin.backtest.methods import resolve_methods
    from portmargin.backtest.runner import run_backtest
    from portmargin.backtest.strategies import strategy
    from portmargin.var.history import load_history

    body = {
        "strategy": "short-strangle",
        "models": ["deribit", "span16"],
        "start": "2026-01-20",
        "end": "2026-02-10",
    }
    with running(tmp_path) as s:
        r = s.client.post("/v1/backtest", headers=s.h(s.trader), json=body)
        assert r.status_code == 200, r.text
        hist = load_history(None)
        want = run_backtest(
            strategy("short-strangle"),
            ("BTC",),
            resolve_methods(["deribit", "span16"], hist),
            history=hist,
            start=date(2026, 1, 20),
            end=date(2026, 2, 10),
        ).to_dict()
        assert r.json() == json.loads(json.dumps(want))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # the whole history (about 1,800 days) x 3 models: more than 4,000 evaluations
        ({"start": None, "end": None, "models": ["deribit", "span16", "tims"]}, "step"),
        # about 800 days x 2 VaR models, each counting 3: more than 4,000
        ({"start": "2024-01-01", "end": None, "models": ["var", "var-hs"]}, "step"),
        ({"models": ["deribit", "no-such-model"]}, "models.1"),
        ({"models": ["../etc/x.toml"]}, "models.0"),
        ({"strategy": "no-such-strategy"}, "strategy"),
        ({"start": "2026-02-10", "end": "2026-01-20"}, "start"),
        ({"start": "2001-01-01"}, "start"),
        ({"horizon": 0}, "horizon"),
        ({"underlyings": ["SOL"]}, "underlyings.0"),
    ],
)
def test_backtest_bad_requests_name_the_field(
    tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {
        "strategy": "short-put",
        "models": ["deribit", "span16"],
        "start": "2026-01-20",
        "end": "2026-02-10",
        **change,
    }
    with running(tmp_path) as s:
        r = s.client.post("/v1/backtest", headers=s.h(s.risk), json=body)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field, r.text
        assert "Traceback" not in r.text
