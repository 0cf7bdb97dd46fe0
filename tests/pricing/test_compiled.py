"""The compiled kernels equal their NumPy/SciPy references (small inputs: compile stays cheap)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
import scipy.sparse as sp

import portmargin as pm
from portmargin.instruments import Instrument, ProductSpec, Settlement
from portmargin.market import OptionQuote, UnderlyingQuote, build_market, shift
from portmargin.pricing import _compiled
from portmargin.pricing._compiled import csr_dense_product, kernel, use_kernel
from portmargin.risk import InstrumentTable, RiskArray, instrument_table, risk_array
from portmargin.scenarios import ScenarioSet, VolShock, VolShockMode

pytestmark = pytest.mark.skipif(not _compiled.AVAILABLE, reason="numba is not installed")

MARKET = pm.demo_market()


def _both(table: InstrumentTable, scen: ScenarioSet) -> tuple[RiskArray, RiskArray]:
    with use_kernel("numba"):
        fast = risk_array(table, scen)
    with use_kernel("numpy"):
        ref = risk_array(table, scen)
    return fast, ref


def _assert_equal(fast: RiskArray, ref: RiskArray) -> None:
    tab = ref.table
    # 1e-12 of each row's notional M·F (USD), or of M (coin): the P&L of a contract is a
    # difference of values of that size, so this is 1e-12 relative to what is computed.
    usd = 1e-12 * np.maximum(tab.multiplier * tab.F, 1.0)[:, None]
    coin = np.where(tab.inverse, 1e-12 * tab.multiplier, usd[:, 0])[:, None]
    assert fast.pnl_usd.shape == ref.pnl_usd.shape
    assert np.all(np.abs(fast.pnl_usd - ref.pnl_usd) <= usd)
    assert np.all(np.abs(fast.pnl_settle - ref.pnl_settle) <= coin)
    assert not fast.pnl_usd.flags.writeable and not fast.pnl_settle.flags.writeable


def _universe(market: pm.MarketSnapshot) -> list[Instrument]:
    names = [*market.option_names(), *market.futures]
    names += [f"{u}-PERPETUAL" for u in market.underlyings]
    return [market.instrument(n) for n in names]


@pytest.mark.parametrize("model_name", ["deribit", "span16", "span", "tims"])
def test_risk_arrays_equal_reference_on_demo_market(model_name: str) -> None:
    model = pm.load_model(model_name)
    for und, group in _group(_universe(MARKET)).items():
        fast, ref = _both(instrument_table(group, MARKET), model.scenario_set(und))
        _assert_equal(fast, ref)


def _group(insts: list[Instrument]) -> dict[str, list[Instrument]]:
    out: dict[str, list[Instrument]] = {}
    for x in insts:
        out.setdefault(x.underlying, []).append(x)
    return out


@pytest.mark.parametrize("mode", [VolShockMode.RELATIVE, VolShockMode.ABSOLUTE])
@pytest.mark.parametrize("pnl_base", ["model", "mark"])
def test_risk_arrays_equal_reference_with_tiers_lookahead_and_settled_rows(
    mode: VolShockMode, pnl_base: str
) -> None:
    # Two days on: the front expiries have settled (prices given), the rest roll.
    insts = [x for x in _universe(MARKET) if x.underlying == "BTC"]
    expiries = {x.expiry for x in insts if x.expiry is not None}
    later = MARKET.valuation_time + timedelta(days=40)
    settle = {("BTC", e): 71_000.0 for e in expiries if e <= later}
    market = shift(MARKET, time=timedelta(days=40), settlements=settle)
    table = instrument_table(insts, market)
    assert table.settled.any() and (~table.settled).any()
    shock = VolShock(
        up=0.3 if mode is VolShockMode.RELATIVE else 0.1,
        down=0.2 if mode is VolShockMode.RELATIVE else 0.05,
        mode=mode,
        short_term_power=0.3,
        long_term_power=0.1,
        min_vol_up=0.35,
        min_vol=0.05,
    )
    scen = ScenarioSet.build(
        [-0.3, -0.1, 0.0, 0.1, 0.3, 0.5],
        [1.0, -1.0, 0.0, 1.0, -1.0, 0.5],
        shock,
        lookahead_years=2.0 / 365.0,
        pnl_base=pnl_base,  # type: ignore[arg-type]
        tiers=[(0.0, 1.5), (30.0, 1.0), (120.0, 0.8)],
    )
    fast, ref = _both(table, scen)
    _assert_equal(fast, ref)
    assert np.all(fast.pnl_usd[table.settled] == 0.0)


def test_risk_arrays_equal_reference_with_spot_carry() -> None:
    # An underlying without futures or forwards: options roll their shocked spot.
    market = build_market(
        valuation_time=MARKET.valuation_time,
        underlyings={"XYZ": UnderlyingQuote(spot=95.0, rate=0.1)},
        products={"XYZ": ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)},
        options={
            "XYZ-20MAR26-80-P": OptionQuote(mark_iv=0.4),
            "XYZ-20MAR26-100-C": OptionQuote(mark_iv=0.35),
            "XYZ-19JUN26-90-C": OptionQuote(mark_iv=0.3),
        },
    )
    insts = [market.instrument(n) for n in market.option_names()]
    table = instrument_table(insts, market)
    assert np.all(table.carry > 0)
    scen = pm.load_model("span").scenario_set("XYZ")
    _assert_equal(*_both(table, scen))


def test_instrument_table_matches_the_market_instrument_by_instrument() -> None:
    insts = [x for x in _universe(MARKET) if x.underlying == "ETH"]
    later = MARKET.valuation_time + timedelta(days=40)
    expiries = {x.expiry for x in insts if x.expiry is not None and x.expiry <= later}
    market = shift(
        MARKET, time=timedelta(days=40), settlements={("ETH", e): 3_600.0 for e in expiries}
    )
    table = instrument_table(insts, market)
    for i, x in enumerate(insts):
        assert table.quote_source[i] == market.quote_source(x).value
        assert bool(table.settled[i]) == market.is_expired(x)
        if x.expiry is not None and not market.is_expired(x):
            assert table.T[i] == market.year_fraction(x.expiry)
    # the static columns are cached by name, and still right for equal instruments
    again = instrument_table([market.instrument(x.name) for x in insts], market)
    for name in ("F", "K", "T", "sigma", "value_usd", "mark_settle", "delta_coin"):
        np.testing.assert_array_equal(getattr(again, name), getattr(table, name))


def test_csr_product_is_scipy_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    dense = np.where(rng.random((300, 80)) < 0.1, np.round(rng.normal(0, 3, (300, 80)), 1), 0.0)
    q = sp.csr_array(dense)
    w = rng.normal(size=(80, 35)) * 1e4
    ref = np.asarray(q @ w)
    got = csr_dense_product(q.indptr.astype(np.int64), q.indices.astype(np.int64), q.data, w)
    assert np.array_equal(got, ref)


def test_kernel_selection() -> None:
    with use_kernel("numpy"):
        assert kernel() == "numpy"
        with use_kernel("numba"):
            assert kernel() == "numba"
        assert kernel() == "numpy"
    with pytest.raises(ValueError, match="kernel"), use_kernel("fortran"):  # type: ignore[arg-type]
        pass


def test_environment_forces_the_reference() -> None:
    code = "from portmargin.pricing._compiled import kernel; print(kernel())"
    env = {**os.environ, "PORTMARGIN_KERNEL": "numpy"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "numpy"


def test_unwritable_cache_falls_back_to_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # numba raises at decoration when cache=True finds no writable cache directory; the
    # kernels are then compiled in memory (each process) instead of failing to import.
    import numba

    from portmargin.pricing import _jit

    real = numba.njit
    calls: list[bool] = []

    def njit(**kw: object) -> object:
        calls.append(bool(kw.get("cache")))
        if kw.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(**kw)  # type: ignore[call-overload]

    monkeypatch.setattr(numba, "njit", njit)

    @_jit._jit()
    def twice(x: float) -> float:
        return 2.0 * x

    assert calls == [True, False]
    assert twice(2.0) == 4.0


def test_serial_and_parallel_kernels_agree_bit_for_bit() -> None:
    # Small inputs run on the calling thread, large ones on numba's threads: the same rows.
    from portmargin.pricing._compiled import risk_pnl

    insts = [x for x in _universe(MARKET) if x.underlying == "BTC"]
    table = instrument_table(insts, MARKET)
    scen = pm.load_model("deribit").scenario_set("BTC")
    par = risk_pnl(table, scen, table.value_usd, parallel=True)
    ser = risk_pnl(table, scen, table.value_usd, parallel=False)
    assert np.array_equal(par[0], ser[0]) and np.array_equal(par[1], ser[1])
    rng = np.random.default_rng(5)
    dense = np.where(rng.random((200, 60)) < 0.1, rng.normal(0, 3, (200, 60)), 0.0)
    q = sp.csr_array(dense)
    w = rng.normal(size=(60, 35))
    args = (q.indptr.astype(np.int64), q.indices.astype(np.int64), q.data, w)
    ref = np.asarray(q @ w)
    for parallel in (True, False):
        assert np.array_equal(csr_dense_product(*args, parallel=parallel), ref)
