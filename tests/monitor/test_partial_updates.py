"""A market line may be partial: what it does not restate moves with the index (or stays).

With ``x = S₁/S₀``: forwards and perpetual are scaled by ``x`` (the basis to the index is
kept), vols stay (sticky strike), the rate stays; the result is the seed market moved by
:func:`portmargin.market.shift` with ``spot = x`` at the line's time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portmargin.accounts import AccountSettings
from portmargin.instruments import expiry_from_code
from portmargin.market import MarketSnapshot, build_market, shift
from portmargin.market.snapshot import OptionQuote, UnderlyingQuote
from portmargin.models import load_model
from portmargin.monitor import MarketUpdate, Monitor
from portmargin.storage import open_store

MAR = expiry_from_code("27MAR26")
FEB = expiry_from_code("26FEB26")


def _seed() -> MarketSnapshot:
    return build_market(
        valuation_time=datetime(2026, 2, 25, 8, tzinfo=UTC),
        underlyings={"BTC": UnderlyingQuote(70000.0, 0.01, 70010.0)},
        forwards={("BTC", FEB): 70050.0, ("BTC", MAR): 70500.0},
        options={
            "BTC-27MAR26-60000-P": OptionQuote(mark_iv=0.6),
            "BTC-27MAR26-70000-P": OptionQuote(mark_iv=0.5),
            "BTC-27MAR26-80000-C": OptionQuote(mark_iv=0.55),
        },
    )


def test_an_index_only_line_moves_forwards_and_perpetual_keeps_vols() -> None:
    seed = _seed()
    store = open_store("sqlite://")
    mon = Monitor(store, load_model("deribit"), AccountSettings(), feed_name="f", market=seed)
    t1 = seed.valuation_time + timedelta(minutes=5)
    out = mon.process(MarketUpdate(1, t1, "BTC", 66500.0))
    assert out == []  # no accounts: nothing to report, but accepted
    state = mon.states["BTC"]
    x = 66500.0 / 70000.0
    assert state.forwards == {FEB: pytest.approx(70050.0 * x), MAR: pytest.approx(70500.0 * x)}
    assert state.perpetual == pytest.approx(70010.0 * x, rel=1e-15)
    assert dict(state.vols) == dict(seed.option_iv)
    assert state.rate == 0.01
    moved = shift(seed, spot={"BTC": x}, time=t1)
    assert mon.market is not None
    for name in seed.option_iv:
        assert mon.market.option_price[name] == pytest.approx(moved.option_price[name], rel=1e-12)
    assert mon.market.forward("BTC", MAR) == pytest.approx(moved.forward("BTC", MAR), rel=1e-15)
    store.close()


def test_a_line_restating_some_fields_keeps_the_others() -> None:
    seed = _seed()
    store = open_store("sqlite://")
    mon = Monitor(store, load_model("deribit"), AccountSettings(), feed_name="f", market=seed)
    t1 = seed.valuation_time + timedelta(minutes=5)
    line = MarketUpdate(
        1,
        t1,
        "BTC",
        71000.0,
        forwards={MAR: 71900.0},
        vols={"BTC-27MAR26-70000-P": 0.62},
    )
    assert mon.process(line) == []
    state = mon.states["BTC"]
    x = 71000.0 / 70000.0
    assert state.forwards[MAR] == 71900.0  # restated
    assert state.forwards[FEB] == pytest.approx(70050.0 * x, rel=1e-15)  # carried
    assert state.vols["BTC-27MAR26-70000-P"] == 0.62
    assert state.vols["BTC-27MAR26-60000-P"] == 0.6
    store.close()


def test_reload_picks_up_an_account_added_between_two_events() -> None:
    from portmargin.accounts import Account

    seed = _seed()
    store = open_store("sqlite://")
    store.save_accounts([Account("a", {"BTC-27MAR26-70000-P": -1.0}, {"BTC": 1.0})])
    mon = Monitor(store, load_model("deribit"), AccountSettings(), feed_name="f", market=seed)
    t1 = seed.valuation_time + timedelta(minutes=5)
    mon.process(MarketUpdate(1, t1, "BTC", 69000.0))
    assert mon.margined
    assert set(mon.margins) == {"a"}
    store.save_accounts([Account("b", {"BTC-27MAR26-60000-P": -1.0}, {"BTC": 1.0})])
    mon.reload()
    assert not mon.margined
    mon.process(MarketUpdate(2, t1 + timedelta(minutes=1), "BTC", 68000.0))
    assert set(mon.margins) == {"a", "b"}
    store.close()
