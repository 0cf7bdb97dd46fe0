r"""Pre-trade checks: the incremental margin of a proposed trade, without changing the account.

A trade is filled at the mark: the premium ``q·M·mark`` (settlement currency; 0 for futures
and perpetuals, whose value is settled as P&L) leaves the balance of the instrument's
settlement currency, so equity is unchanged at the mark and only the requirement moves::

    ΔIM = IM(account + trade) − IM(account)                     (USD, informational)

The decision is the one pre-trade rule (:func:`portmargin.accounts.pre_trade`), pool by pool:
accepted if it reduces risk in every pool, or if no pool is below maintenance before and
every pool keeps equity at or above initial margin after. Both sides are margined on one
session over the account's instruments and the traded ones (the same pipeline as
``portmargin margin`` and ``portmargin batch``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portmargin._tabular import Tabular
from portmargin.accounts._account import (
    Account,
    AccountMargin,
    AccountSettings,
    account_margin,
    batch_pools,
    canonical_positions,
    instrument_known,
)
from portmargin.accounts._policy import pre_trade
from portmargin.errors import InputError
from portmargin.io.limits import check_instrument, check_quantity
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel
from portmargin.models.session import MarginSession
from portmargin.risk import instrument_table

__all__ = ["SessionCache", "WhatIf", "parse_trade", "trade_cash", "what_if"]


@dataclass(frozen=True, slots=True)
class WhatIf(Tabular):
    """Before/after figures of a proposed trade, whether it would be accepted, and why."""

    trades: Mapping[str, float]
    before: AccountMargin
    after: AccountMargin
    accepted: bool
    reason: str
    risk_reducing: bool = False

    @property
    def incremental_im_usd(self) -> float:
        """IM after − IM before (USD)."""
        return self.after.initial_margin_usd - self.before.initial_margin_usd

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (the ``portmargin whatif --format json`` contract)."""
        return {
            "trades": dict(self.trades),
            "accepted": self.accepted,
            "risk_reducing": self.risk_reducing,
            "reason": self.reason,
            "incremental_initial_margin": self.incremental_im_usd,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def parse_trade(text: str) -> tuple[str, float]:
    """``"BTC-27MAR26-70000-C:-2"`` → ``("BTC-27MAR26-70000-C", -2.0)``.

    Raises
    ------
    InputError
        If the text is not ``INSTRUMENT:QTY`` with a finite, non-zero quantity.
    """
    name, sep, qty_text = text.rpartition(":")
    if not sep or not name.strip():
        raise InputError(f"trade {text!r}: expected INSTRUMENT:QTY, e.g. BTC-27MAR26-70000-C:-1")
    try:
        qty = float(qty_text)
    except ValueError:
        raise InputError(f"trade {text!r}: quantity {qty_text!r} is not a number") from None
    if not math.isfinite(qty) or qty == 0.0:
        raise InputError(f"trade {text!r}: quantity must be finite and non-zero")
    check_quantity(qty, f"trade {text!r}: quantity")
    return check_instrument(name.strip(), f"trade {text!r}: instrument"), qty


def trade_cash(trades: Mapping[str, float], market: MarketSnapshot) -> dict[str, float]:
    """Balance changes of filling ``trades`` at the mark (premium paid or received).

    Raises
    ------
    InputError
        For an instrument the market does not list.
    """
    cash: dict[str, float] = {}
    for name, qty in trades.items():
        if not instrument_known(name, market):
            raise InputError(f"trade {name}: unknown instrument (not listed in the market)")
        inst = market.instrument(name)
        mark = float(instrument_table([inst], market).mark_settle[0])
        ccy = inst.settlement_currency
        cash[ccy] = cash.get(ccy, 0.0) - qty * mark
    return cash


class SessionCache:
    """The session of one model on the current market state, grown with the instruments asked.

    A service answering many what-ifs on one market builds the risk arrays of an instrument
    once per market state instead of once per request: :meth:`get` returns the cached
    session when it is on ``market`` (the same snapshot object) and holds every name, and
    otherwise builds one over the names asked (and, on the same market, those it held).
    Sessions hold their instruments in name order, as :func:`what_if` builds its own, so an
    account's columns are summed in the same order and its figures are those of a fresh
    session bit for bit (the other instruments of a session do not enter an account's
    figures: a batch of one is the batch). Thread-safe.
    """

    def __init__(self, model: MarginModel) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._session: MarginSession | None = None

    def get(self, market: MarketSnapshot, names: Sequence[str]) -> MarginSession:
        """A session of :attr:`model` on ``market`` holding ``names`` (canonical names)."""
        with self._lock:
            have = self._session
            if have is not None and have.market is market:
                if all(n in have.index for n in names):
                    return have
                names = (*have.instruments, *names)
            session = self.model.session(market, tuple(sorted(set(names))))
            self._session = session
            return session


def what_if(
    account: Account,
    trades: Mapping[str, float],
    market: MarketSnapshot,
    model: MarginModel,
    settings: AccountSettings | None = None,
    *,
    sessions: SessionCache | None = None,
) -> WhatIf:
    """Margin ``account`` before and after ``trades`` (the account itself is not changed).

    The margin method decided for the account before the trade (the qualification gate)
    is kept after it: a trade is judged under the method the account is margined under.

    Parameters
    ----------
    account
        The account as it is.
    trades
        Instrument → signed quantity in contracts, filled at the mark.
    market, model, settings
        As for :func:`~portmargin.accounts.evaluate_account`.
    sessions
        A :class:`SessionCache` of ``model`` to draw the session from (a service's many
        what-ifs on one market); ``None`` builds one for this call.

    Raises
    ------
    InputError
        For an unknown instrument (the message names it).
    """
    s = settings or AccountSettings()
    canonical: dict[str, float] = {}
    for name, qty in trades.items():
        if not instrument_known(name, market):
            raise InputError(f"trade {name}: unknown instrument (not listed in the market)")
        key = market.instrument(name).name
        canonical[key] = canonical.get(key, 0.0) + qty
    after_acct = account.with_trades(canonical, trade_cash(canonical, market))
    held = canonical_positions(account, market)
    held_after = canonical_positions(after_acct, market)
    names = tuple(sorted({*held, *held_after}))  # canonical order: cached or fresh, one sum order
    if sessions is not None and sessions.model is model:
        session = sessions.get(market, names)
    else:
        session = model.session(market, names)
    rows = session.margin_positions(held, account.balances)
    before = account_margin(account, market, s, batch_pools(rows, 0), cross=model.cross)
    rows = session.margin_positions(held_after, after_acct.balances)
    after = account_margin(
        after_acct, market, s, batch_pools(rows, 0), cross=model.cross, method=before.method
    )
    decision = pre_trade(before.pools, after.pools)
    return WhatIf(
        canonical, before, after, decision.accepted, decision.reason, decision.risk_reducing
    )
