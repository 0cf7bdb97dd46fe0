"""Deribit roll and delta shock: cases the mutation run showed untested.

The formulas (Deribit ``private/pme/simulate`` ``model_params``,
https://docs.deribit.com/api-reference/account-management/private-simulate ; our reading as
written in ``docs/models.md``)::

    roll        = Σ_e |Δ_e| · max(min_annualised_move, annualised_move_risk · T_e) · S / usd_rate
                  (spot excluded, perpetual at T = 0)
    delta_shock = |Δ| · min(m_inc · max(|Δ| − threshold_USD / S, 0), max_delta_shock) · S / usd_rate

Parameters are those of ``deribit.toml`` (USD pool: a = 10 %, floor 1 %; BTC: m_inc 0.00005,
threshold 20,000,000 USD, cap 10 %).
"""

from __future__ import annotations

import numpy as np

import portmargin as pm
from portmargin._types import FloatArray
from portmargin.models import ChargeContext, load_model
from portmargin.models.config import ChargeParams, load_model_params
from portmargin.models.deribit_charges import delta_shock, roll_shock

MARKET = pm.demo_market()
S_BTC = 70_000.0  # demo index (README)


def _charge(kind: str) -> ChargeParams:
    (cp,) = [c for c in load_model_params("deribit").charges if c.kind == kind]
    return cp


def _context(names: list[str], q: FloatArray, params: ChargeParams, *, pool: str) -> ChargeContext:
    insts = [MARKET.instrument(n) for n in names]
    arr = pm.risk_array(
        pm.instrument_table(insts, MARKET), load_model("deribit").scenario_set("BTC")
    )
    return ChargeContext(
        pool=pool,
        usd_rate=1.0 if pool == "USD" else S_BTC,
        risk=arr,
        rows=np.arange(len(names), dtype=np.int64),
        quantities=q,
        scenario_pnl=np.zeros((q.shape[0], len(arr.scenarios))),
        market=MARKET,
        params=params,
    )


def test_roll_shock_leaves_spot_out() -> None:
    # USD pool: +2 BTC_USDC spot, −1.5 perpetual (T = 0). Spot is excluded, so only the
    # perpetual rolls: roll = |−1.5| · max(0.01, 0.10 · 0) · 70,000 = 1,050 USD.
    # Account 2 holds spot alone: 0.
    q = np.array([[2.0, -1.5], [3.0, 0.0]])
    out = roll_shock(_context(["BTC_USDC", "BTC-PERPETUAL"], q, _charge("roll_shock"), pool="USD"))
    np.testing.assert_allclose(out, [1.5 * 0.01 * S_BTC, 0.0], rtol=1e-12, atol=0)


def test_delta_shock_is_zero_below_the_threshold() -> None:
    # BTC pool, 1 BTC of perpetual: |Δ| = 1 < 20,000,000 / 70,000 = 285.7 coins, so
    # max(|Δ| − threshold/S, 0) = 0 and the shock is exactly 0 (m_inc 0.00005 > 0).
    out = delta_shock(
        _context(["BTC-PERPETUAL"], np.array([[1.0], [-3.0]]), _charge("delta_shock"), pool="BTC")
    )
    np.testing.assert_array_equal(out, [0.0, 0.0])
