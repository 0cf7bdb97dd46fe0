"""The batch engine equals ``MarginModel.margin`` account by account (1e-9 relative)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from batch_books import random_books, to_portfolio

import portmargin as pm
from portmargin.batch import BatchResult, MarginSession
from portmargin.market import MarketSnapshot
from portmargin.models import session as batch_session

RTOL = 1e-9
MODELS = [("deribit", False), ("deribit", True), ("span16", None)]


@pytest.fixture(scope="module")
def chain(shared_data: Path) -> MarketSnapshot:
    folder = shared_data / "deribit_options_2026-02-04_05"
    return pm.load_market(folder / "deribit_options_snapshot_20260205T212937Z.csv")


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= RTOL * max(abs(a), abs(b), scale)


def _check(
    market: MarketSnapshot,
    model: pm.MarginModel,
    result: BatchResult,
    accounts: list[str],
    positions: dict[str, dict[str, float]],
    cash: dict[str, dict[str, float]],
    sample: list[int],
) -> None:
    for i in sample:
        single = model.margin(to_portfolio(accounts[i], positions, cash), market)
        got = {result.pools[p] for p in np.flatnonzero(result.present[i])}
        assert got == {pr.currency for pr in single.by_currency}, accounts[i]
        for pr in single.by_currency:
            p = result.pools.index(pr.currency)
            scale = 1e-9 * max(abs(pr.initial_margin), abs(pr.equity), 1e-12)
            assert _close(result.initial_margin[i, p], pr.initial_margin, scale), accounts[i]
            assert _close(result.maintenance_margin[i, p], pr.maintenance_margin, scale)
            assert _close(result.equity[i, p], pr.equity, scale), accounts[i]
            unds = list(pr.underlyings)
            if unds and result.binding_pair[i, p] >= 0:
                top = max(unds, key=lambda u: u.requirement)
                _pool, und = result.pairs[result.binding_pair[i, p]]
                if not np.isclose(top.requirement, 0.0):
                    assert und == top.underlying, accounts[i]
                    assert result.binding_scenario[i, p] == top.worst_scenario.index


@pytest.mark.parametrize(("name", "cross"), MODELS)
def test_batch_equals_single_on_real_chain(
    chain: MarketSnapshot, name: str, cross: bool | None
) -> None:
    model = pm.load_model(name, cross=cross)
    positions, cash = random_books(chain, 120, seed=7)
    session = MarginSession(chain, model)
    book = session.book_from_positions(positions, cash)
    result = session.margin(book, chunk=50)  # several chunks
    accounts = list(book.accounts)
    sample = list(np.random.default_rng(1).choice(len(accounts), size=40, replace=False))
    _check(chain, model, result, accounts, positions, cash, sample)


@pytest.mark.parametrize(("name", "cross"), MODELS)
def test_batch_equals_single_on_demo_seed_books(name: str, cross: bool | None) -> None:
    from portmargin.examples import seed_portfolios

    market = pm.demo_market()
    model = pm.load_model(name, cross=cross)
    books = [b for _, b in seed_portfolios()]
    positions = {b.name: b.net_positions() for b in books}
    cash = {b.name: dict(b.cash) for b in books}
    session = MarginSession(market, model)
    result = session.margin(session.book_from_positions(positions, cash))
    _check(market, model, result, list(positions), positions, cash, list(range(len(books))))


def test_whatif_fast_path_equals_batch(chain: MarketSnapshot) -> None:
    model = pm.load_model("deribit")
    positions, cash = random_books(chain, 5, seed=3, max_legs=50)
    session = MarginSession(chain, model)
    full = session.margin(session.book_from_positions(positions, cash))
    for i, acc in enumerate(positions):
        one = session.margin_positions(positions[acc], cash.get(acc))
        np.testing.assert_allclose(one.initial_margin[0], full.initial_margin[i], rtol=1e-12)
        np.testing.assert_allclose(
            one.maintenance_margin[0], full.maintenance_margin[i], rtol=1e-12
        )
        np.testing.assert_allclose(one.equity[0], full.equity[i], rtol=1e-12)
        np.testing.assert_array_equal(one.present[0], full.present[i])
        np.testing.assert_array_equal(one.binding_pair[0], full.binding_pair[i])


@pytest.mark.parametrize(("name", "cross"), MODELS)
def test_whatif_on_many_leg_accounts_equals_single(
    chain: MarketSnapshot, name: str, cross: bool | None
) -> None:
    # the what-if path gathers only an account's own columns and skips pairs it lacks
    model = pm.load_model(name, cross=cross)
    positions, cash = random_books(chain, 8, seed=5, min_legs=40, max_legs=50)
    session = MarginSession(chain, model)
    accounts = list(positions)
    result = BatchResult.concat(
        [session.margin_positions(positions[a], cash.get(a)) for a in accounts]
    )
    _check(chain, model, result, accounts, positions, cash, list(range(len(accounts))))


@pytest.mark.parametrize(("name", "cross"), MODELS)
def test_masked_pool_evaluation_equals_pair_pattern_groups(
    chain: MarketSnapshot, name: str, cross: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accounts are grouped by the pairs they hold; above MAX_PAIR_PATTERNS groups a pool's
    # accounts are evaluated together with the pairs they lack masked out. Both must agree.
    model = pm.load_model(name, cross=cross)
    positions, cash = random_books(chain, 80, seed=9)
    for a in range(10):  # single-underlying accounts, so there are several patterns
        positions[f"eth{a}"] = dict.fromkeys(chain.option_names("ETH")[a : a + 3], -1.0)
    session = MarginSession(chain, model)
    book = session.book_from_positions(positions, cash)
    grouped = session.margin(book, chunk=40)
    monkeypatch.setattr(batch_session, "MAX_PAIR_PATTERNS", 0)
    masked = session.margin(book, chunk=40)
    for field in ("initial_margin", "maintenance_margin", "equity", "binding_pnl"):
        np.testing.assert_allclose(getattr(grouped, field), getattr(masked, field), rtol=1e-12)
    for field in ("present", "binding_pair", "binding_scenario"):
        np.testing.assert_array_equal(getattr(grouped, field), getattr(masked, field))


def test_zero_cash_balance_opens_its_pool_like_single() -> None:
    market = pm.demo_market()
    model = pm.load_model("deribit")
    session = MarginSession(market, model)
    positions = {"a": {"BTC-27MAR26-70000-P": -1.0}}
    cash = {"a": {"ETH": 0.0}}
    result = session.margin(session.book_from_positions(positions, cash))
    single = model.margin(to_portfolio("a", positions, cash), market)
    assert [result.pools[p] for p in np.flatnonzero(result.present[0])] == [
        pr.currency for pr in single.by_currency
    ]
