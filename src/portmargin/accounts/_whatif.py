r"""Pre-trade checks: the incremental margin of a proposed trade, without changing the account.

A trade is filled at the mark: the premium ``q·M·mark`` (settlement currency; 0 for futures
and perpetuals, whose value is settled as P&L) leaves the balance of the instrument's
settlement currency, so equity is unchanged at the mark and only the requirement moves::

    ΔIM = IM(account + trade) − IM(account)                     (USD)
    accepted  ⇔  excess after ≥ 0   or   ΔIM ≤ 0 (a risk-reducing trade is always accepted)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portmargin.accounts._account import (
    Account,
    AccountMargin,
    AccountSettings,
    evaluate_account,
    instrument_known,
)
from portmargin.errors import InputError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel
from portmargin.risk import instrument_table

__all__ = ["WhatIf", "parse_trade", "trade_cash", "what_if"]


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Before/after figures of a proposed trade and whether it would be accepted."""

    trades: Mapping[str, float]
    before: AccountMargin
    after: AccountMargin
    accepted: bool
    reason: str

    @property
    def incremental_im_usd(self) -> float:
        """IM after − IM before (USD)."""
        return self.after.initial_margin_usd - self.before.initial_margin_usd

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "trades": dict(self.trades),
            "accepted": self.accepted,
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
    return name.strip(), qty


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


def what_if(
    account: Account,
    trades: Mapping[str, float],
    market: MarketSnapshot,
    model: MarginModel,
    settings: AccountSettings | None = None,
) -> WhatIf:
    """Margin ``account`` before and after ``trades`` (the account itself is not changed).

    Parameters
    ----------
    account
        The account as it is.
    trades
        Instrument → signed quantity in contracts, filled at the mark.
    market, model, settings
        As for :func:`~portmargin.accounts.evaluate_account`.

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
    before = evaluate_account(account, market, model, s)
    after_acct = account.with_trades(canonical, trade_cash(canonical, market))
    after = evaluate_account(after_acct, market, model, s)
    delta = after.initial_margin_usd - before.initial_margin_usd
    if after.excess_usd >= 0:
        accepted, reason = True, "excess after the trade is non-negative"
    elif delta <= 0:
        accepted, reason = True, "risk-reducing: the trade does not raise initial margin"
    else:
        accepted = False
        reason = (
            f"insufficient margin: IM would be {after.initial_margin_usd:,.2f} USD with equity "
            f"{after.equity_usd:,.2f} USD (short {-after.excess_usd:,.2f} USD)"
        )
    return WhatIf(canonical, before, after, accepted, reason)
