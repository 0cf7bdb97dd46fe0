"""Accounts: figures equal the engine's, haircuts, status thresholds, gate, batch path."""

from __future__ import annotations

import math

import numpy as np
import pytest

import portmargin as pm
from portmargin.accounts import (
    Account,
    AccountSettings,
    AccountStatus,
    BatchMargin,
    accounts_from_dict,
    classify,
    evaluate_account,
    margin_usd,
)
from portmargin.errors import InputError, ParameterError
from portmargin.rules import load_rule_set, rules_margin

REL = 1e-12


@pytest.fixture(scope="module")
def market() -> pm.MarketSnapshot:
    return pm.demo_market()


@pytest.fixture(scope="module")
def model() -> pm.MarginModel:
    return pm.load_model("deribit")


def _book() -> Account:
    return Account(
        "a1",
        {"BTC-27MAR26-70000-P": -2.0, "BTC-27MAR26-60000-P": 1.0, "ETH-27MAR26-3500-C": -5.0},
        {"BTC": 1.0, "ETH": 4.0, "USDC": 30_000.0, "USDT": 1_000.0},  # above the 100k gate
    )


def test_figures_equal_the_engine_in_usd(market: pm.MarketSnapshot, model: pm.MarginModel) -> None:
    acct = _book()
    m = evaluate_account(acct, market, model)
    r = model.margin(acct.portfolio(), market)
    im, mm, eq = margin_usd(r)
    assert m.method == "portfolio"
    assert m.initial_margin_usd == pytest.approx(im, rel=REL)
    assert m.maintenance_margin_usd == pytest.approx(mm, rel=REL)
    assert m.margin_equity_usd == pytest.approx(eq, rel=REL)
    # Multi-pool results are in USD already: the engine's own total must agree.
    assert r.currency == "USD"
    assert m.initial_margin_usd == pytest.approx(r.initial_margin, rel=1e-12)
    assert m.margin_equity_usd == pytest.approx(r.equity, rel=1e-12)


def test_haircut_is_per_currency_on_positive_balances(market: pm.MarketSnapshot) -> None:
    s = AccountSettings(haircuts={"BTC": 0.1, "USDT": 0.5, "ETH": 0.0})
    acct = Account("h", {}, {"BTC": 2.0, "USDT": 100.0, "ETH": -1.0, "USDC": 7.0})
    m = evaluate_account(acct, market, pm.load_model("deribit"), s)
    expected = 2.0 * market.index_price("BTC") * 0.1 + 100.0 * 0.5
    assert m.haircut_usd == pytest.approx(expected, rel=REL)
    assert m.equity_usd == pytest.approx(m.margin_equity_usd - expected, rel=REL)


@pytest.mark.parametrize(
    ("equity", "im", "mm", "status"),
    [
        (100.0, 50.0, 40.0, AccountStatus.HEALTHY),
        (50.0, 50.0, 40.0, AccountStatus.HEALTHY),
        (49.9, 50.0, 40.0, AccountStatus.MARGIN_CALL),
        (39.9, 50.0, 40.0, AccountStatus.LIQUIDATION),
        (-1.0, 0.0, 0.0, AccountStatus.LIQUIDATION),
    ],
)
def test_status_thresholds(equity: float, im: float, mm: float, status: AccountStatus) -> None:
    assert classify(equity, im, mm, AccountSettings()) is status


def test_status_levels_are_settings() -> None:
    s = AccountSettings(margin_call_level=1.5, liquidation_level=1.2)
    assert classify(70.0, 50.0, 40.0, s) is AccountStatus.MARGIN_CALL
    assert classify(47.0, 50.0, 40.0, s) is AccountStatus.LIQUIDATION


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ParameterError, match=r"haircuts\.BTC"):
        AccountSettings(haircuts={"BTC": 1.5})
    with pytest.raises(ParameterError, match="margin_call_level"):
        AccountSettings(margin_call_level=0.0)


def test_unsupported_balance_currency_is_rejected() -> None:
    with pytest.raises(InputError, match=r"balances\.DOGE"):
        Account("x", {}, {"DOGE": 1.0})


def test_ineligible_account_is_margined_under_rules(
    market: pm.MarketSnapshot, model: pm.MarginModel
) -> None:
    acct = Account("small", {"BTC-27MAR26-70000-P": -0.1}, {"BTC": 0.05})
    m = evaluate_account(acct, market, model)
    assert not m.eligible
    assert m.method == "rules"
    res = rules_margin(
        [(market.instrument("BTC-27MAR26-70000-P"), -0.1)],
        {"BTC": 0.05},
        market,
        load_rule_set("strategy"),
    )
    rate = market.index_price("BTC")
    assert res.currency == "BTC"
    assert m.initial_margin_usd == pytest.approx(res.initial_margin * rate, rel=REL)
    assert m.maintenance_margin_usd == pytest.approx(res.maintenance_margin * rate, rel=REL)


def test_margin_ratio_is_mm_over_equity(market: pm.MarketSnapshot, model: pm.MarginModel) -> None:
    m = evaluate_account(_book(), market, model)
    assert m.margin_ratio == pytest.approx(m.maintenance_margin_usd / m.equity_usd)
    broke = Account("b", {"BTC-27MAR26-70000-P": -50.0}, {"BTC": 0.01})
    assert math.isinf(evaluate_account(broke, market, model).margin_ratio)


def test_batch_equals_single_account_path(market: pm.MarketSnapshot, model: pm.MarginModel) -> None:
    rng = np.random.default_rng(7)
    names = [n for n in market.option_names() if "27MAR26" in n or "24APR26" in n][:60]
    names += ["BTC-PERPETUAL", "ETH-27MAR26", "BTC-26JUN26"]
    accounts = []
    for k in range(40):
        picks = rng.choice(len(names), size=int(rng.integers(1, 6)), replace=False)
        pos = {names[i]: float(rng.integers(-10, 11) or 1) for i in picks}
        bal = {"BTC": float(rng.uniform(0, 3)), "USDC": float(rng.uniform(0, 50_000))}
        accounts.append(Account(f"a{k}", pos, bal))
    batch = BatchMargin(model, AccountSettings()).evaluate(accounts, market)
    for a, b in zip(accounts, batch, strict=True):
        s = evaluate_account(a, market, model)
        assert b.method == s.method
        assert b.initial_margin_usd == pytest.approx(s.initial_margin_usd, rel=1e-9, abs=1e-9)
        assert b.maintenance_margin_usd == pytest.approx(
            s.maintenance_margin_usd, rel=1e-9, abs=1e-9
        )
        assert b.equity_usd == pytest.approx(s.equity_usd, rel=1e-9, abs=1e-9)
        assert b.status is s.status


def test_accounts_file_validation() -> None:
    accts, settings = accounts_from_dict(
        {
            "settings": {"min_pm_equity_usd": 5, "haircuts": {"BTC": 0.1}},
            "accounts": [
                {
                    "id": "a",
                    "balances": {"BTC": 1},
                    "positions": [{"instrument": "X", "quantity": 1}],
                }
            ],
        }
    )
    assert settings.min_pm_equity_usd == 5
    assert accts[0].positions == {"X": 1.0}
    with pytest.raises(InputError, match="duplicate"):
        accounts_from_dict({"accounts": [{"id": "a"}, {"id": "a"}]})
    with pytest.raises(InputError, match=r"accounts\.0\.positions\.0\.quantity"):
        accounts_from_dict(
            {"accounts": [{"id": "a", "positions": [{"instrument": "X", "quantity": "z"}]}]}
        )


def test_a_withdrawal_beyond_the_excess_is_refused_and_a_deposit_accepted() -> None:
    from portmargin.accounts import pre_trade

    market, model = pm.demo_market(), pm.load_model("deribit")
    acct = Account("w", {"BTC-27MAR26-70000-P": -1.0}, {"BTC": 0.3})
    before = evaluate_account(acct, market, model, AccountSettings(min_pm_equity_usd=0))
    (pool,) = before.pools
    too_much = acct.with_trades({}, {"BTC": -(pool.initial_excess + 0.01)})
    after = evaluate_account(too_much, market, model, AccountSettings(min_pm_equity_usd=0))
    decision = pre_trade(before.pools, after.pools)
    assert not decision.accepted
    assert not decision.risk_reducing
    assert "insufficient margin in pool BTC" in decision.reason
    richer = evaluate_account(
        acct.with_trades({}, {"BTC": 1.0}), market, model, AccountSettings(min_pm_equity_usd=0)
    )
    assert pre_trade(before.pools, richer.pools).risk_reducing


def test_what_if_on_a_cached_session_equals_a_fresh_one(
    market: pm.MarketSnapshot, model: pm.MarginModel
) -> None:
    from datetime import timedelta

    from portmargin.accounts import what_if
    from portmargin.accounts._whatif import SessionCache
    from portmargin.market import shift

    cache = SessionCache(model)
    cases = [
        (_book(), {"BTC-27MAR26-65000-P": -1.0}),
        (_book(), {"ETH-24APR26-3000-P": 2.0}),  # grows the cached session
        (Account("a2", {"ETH-27MAR26-3500-C": 1.0}, {"ETH": 1.0}), {"BTC-PERPETUAL": 1000.0}),
    ]
    for mkt in (market, shift(market, time=timedelta(hours=1))):
        for account, trade in cases:
            fresh = what_if(account, trade, mkt, model)
            cached = what_if(account, trade, mkt, model, sessions=cache)
            assert cached.accepted == fresh.accepted and cached.reason == fresh.reason
            for a, b in ((cached.before, fresh.before), (cached.after, fresh.after)):
                assert a.to_dict() == b.to_dict()
        assert cache.get(mkt, ()).market is mkt  # a new market state gets its own session
