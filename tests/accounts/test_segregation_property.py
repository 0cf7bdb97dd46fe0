"""Property: in segregated mode no pool is rescued by another (the account-decisions issue).

Deribit's S:PM margins each settlement currency on its own
(https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin ): the BTC
pool's figures and status cannot depend on how much ETH or USDC the account holds, and the
account's status is never better than its worst pool's.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import portmargin as pm
from portmargin.accounts import Account, AccountSettings, evaluate_account, what_if

MARKET = pm.demo_market()
MODEL = pm.load_model("deribit")
SETTINGS = AccountSettings(min_pm_equity_usd=0.0)
BTC_OPTIONS = [n for n in MARKET.option_names("BTC") if "27MAR26" in n][::7]


@given(
    legs=st.lists(
        st.tuples(st.sampled_from(BTC_OPTIONS), st.floats(-5, 5).filter(lambda q: abs(q) > 0.01)),
        min_size=1,
        max_size=4,
    ),
    btc=st.floats(0.0, 3.0),
    eth=st.floats(0.0, 1e4),
    usdc=st.floats(0.0, 1e7),
)
def test_a_pool_is_never_rescued_by_another(
    legs: list[tuple[str, float]], btc: float, eth: float, usdc: float
) -> None:
    positions: dict[str, float] = {}
    for name, q in legs:
        positions[name] = positions.get(name, 0.0) + q
    # the method fixed: the gate reads the whole account's equity by design (venues grant
    # portfolio margin to an account); the property is about the pools under one method
    pm_only = {"method": "portfolio"}
    alone = evaluate_account(
        Account("a", positions, {"BTC": btc}), MARKET, MODEL, SETTINGS, **pm_only
    )
    rich_account = Account("a", positions, {"BTC": btc, "ETH": eth, "USDC": usdc})
    rich = evaluate_account(rich_account, MARKET, MODEL, SETTINGS, **pm_only)
    btc_alone = next(p for p in alone.pools if p.currency == "BTC")
    btc_rich = next(p for p in rich.pools if p.currency == "BTC")
    assert btc_rich.status is btc_alone.status
    assert btc_rich.initial_margin == btc_alone.initial_margin
    assert btc_rich.equity == btc_alone.equity
    assert rich.status.severity >= btc_rich.status.severity  # the account is its worst pool
    # a trade that raises the BTC pool's IM and leaves it short is refused, whatever the
    # other pools hold
    name = legs[0][0]
    check = what_if(rich_account, {name: -1.0}, MARKET, MODEL, SETTINGS)
    after = next(p for p in check.after.pools if p.currency == "BTC")
    before = next(p for p in check.before.pools if p.currency == "BTC")
    if after.equity < after.initial_margin and after.initial_margin > before.initial_margin:
        assert not check.accepted, check.reason
