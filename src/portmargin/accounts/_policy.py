r"""The account rules, each written once: status, qualification, pre-trade acceptance.

Every entry point (``portmargin whatif``, ``compare``, ``batch``, the monitor, the Python
API) decides with these three functions; nothing else in the package decides a status, a
margin method or whether a trade is accepted.

**Status** of one margin pool (amounts in the pool currency, levels from the settings)::

    liquidation    equity < liquidation_level · MM      (or equity < 0 with no requirement)
    margin call    equity < margin_call_level · IM
    healthy        otherwise

An account's status is its worst pool's: in segregated mode every pool stands on its own,
and a surplus in one pool never rescues another (Deribit S:PM,
https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin ).

**Qualification** for portfolio margin (venues grant it on application, FINRA Rule 4210(g)
adds a minimum equity, https://www.finra.org/rules-guidance/rulebooks/finra-rules/4210 )::

    qualifies  ⇔  approved  and  equity after haircuts (USD) ≥ min_pm_equity_usd

**Pre-trade acceptance** of a change (a trade, a deposit, a withdrawal), from the account's
figures before and after it::

    risk-reducing  ⇔  for every pool p:  IM_p after ≤ IM_p before
                                     and worst scenario loss_p after ≤ loss_p before
                                     and equity_p before haircuts after ≥ before
    accepted       ⇔  risk-reducing,
                      or (no pool is below maintenance before
                          and every pool has equity ≥ IM after)

A trade filled at the mark leaves equity unchanged and a deposit raises it, so both can
reduce risk; a withdrawal lowers it and is accepted only when every pool keeps equity at or
above IM. An account below maintenance in any pool accepts only risk-reducing changes. Small
tolerances (1e-9 relative) absorb rounding, so a trade that changes nothing is
risk-reducing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np

from portmargin._types import IntArray

__all__ = [
    "DEFAULT_MIN_PM_EQUITY_USD",
    "STATUSES",
    "AccountStatus",
    "Decision",
    "PoolLike",
    "StatusLevels",
    "classify",
    "classify_many",
    "pre_trade",
    "qualifies",
    "worst_status",
]

DEFAULT_MIN_PM_EQUITY_USD = 100_000.0
"""The one default of the qualification gate: equity after haircuts, USD.

FINRA Rule 4210(g)(6)(B): a portfolio-margin account keeps at least 100,000 USD of equity
(https://www.finra.org/rules-guidance/rulebooks/finra-rules/4210). Crypto venues set their
own threshold (``AccountSettings.min_pm_equity_usd``, the accounts file's settings).
"""

_TOL = 1e-9


class AccountStatus(Enum):
    """Margin status of a pool or an account (ordered: healthy < margin call < liquidation)."""

    HEALTHY = "healthy"
    MARGIN_CALL = "margin_call"
    LIQUIDATION = "liquidation"

    @property
    def severity(self) -> int:
        """0 healthy, 1 margin call, 2 liquidation."""
        return _SEVERITY[self]


_SEVERITY = {AccountStatus.HEALTHY: 0, AccountStatus.MARGIN_CALL: 1, AccountStatus.LIQUIDATION: 2}


class StatusLevels(Protocol):
    """The two thresholds of :func:`classify` (an :class:`AccountSettings` has them)."""

    @property
    def margin_call_level(self) -> float:
        """Margin call below this multiple of IM."""
        ...

    @property
    def liquidation_level(self) -> float:
        """Liquidation below this multiple of MM."""
        ...


STATUSES = (AccountStatus.HEALTHY, AccountStatus.MARGIN_CALL, AccountStatus.LIQUIDATION)
"""Statuses by severity code (0, 1, 2), the codes :func:`classify_many` returns."""


def classify_many(equity: Any, im: Any, mm: Any, levels: StatusLevels) -> IntArray:
    """The status rule over arrays: severity codes (0 healthy, 1 margin call, 2 liquidation).

    The one implementation of the rule in the module docstring; :func:`classify` is this
    function on one pool.
    """
    eq, i, m = (np.asarray(x, dtype=np.float64) for x in (equity, im, mm))
    liq = (eq < levels.liquidation_level * m) | ((eq < 0) & (m <= 0))
    call = eq < levels.margin_call_level * i
    out: IntArray = np.where(liq, 2, np.where(call, 1, 0)).astype(np.int64)
    return out


def classify(equity: float, im: float, mm: float, levels: StatusLevels) -> AccountStatus:
    """Status of one pool from its equity, IM and MM (see the module docstring)."""
    return STATUSES[int(classify_many(equity, im, mm, levels))]


def worst_status(statuses: Sequence[AccountStatus]) -> AccountStatus:
    """The most severe of ``statuses`` (healthy when there are none)."""
    return max(statuses, key=lambda s: s.severity, default=AccountStatus.HEALTHY)


def qualifies(equity_usd: float, min_equity_usd: float, *, approved: bool) -> bool:
    """The qualification gate: approved, and equity after haircuts ≥ the minimum (USD)."""
    return approved and equity_usd >= min_equity_usd


class PoolLike(Protocol):
    """The figures of one pool that :func:`pre_trade` reads (pool currency)."""

    @property
    def currency(self) -> str:
        """The pool's currency."""
        ...

    @property
    def initial_margin(self) -> float:
        """IM of the pool."""
        ...

    @property
    def maintenance_margin(self) -> float:
        """MM of the pool."""
        ...

    @property
    def equity(self) -> float:
        """Equity of the pool (after haircuts)."""
        ...

    @property
    def worst_loss(self) -> float:
        """The pool's worst aggregated scenario loss (≥ 0)."""
        ...

    @property
    def haircut(self) -> float:
        """The collateral haircut taken from the pool's equity (≥ 0)."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """A pre-trade decision: accepted or not, whether it reduces risk, and why (one line)."""

    accepted: bool
    risk_reducing: bool
    reason: str


def _le(a: float, b: float) -> bool:
    return a <= b + _TOL * max(1.0, abs(a), abs(b))


def pre_trade(
    before: Sequence[PoolLike], after: Sequence[PoolLike], *, fmt: str = "{:,.6g}"
) -> Decision:
    """Accept or refuse a change from the pools' figures before and after it.

    A pool missing on one side counts as zero there (a trade can open or close a pool).
    The reason names the pool that decides. See the module docstring for the rule.
    """
    zero = _Zero()
    b = {p.currency: p for p in before}
    a = {p.currency: p for p in after}
    names = sorted({*b, *a})
    pairs = [(c, b.get(c, zero), a.get(c, zero)) for c in names]
    raised = [c for c, x, y in pairs if not _le(y.initial_margin, x.initial_margin)]
    deeper = [c for c, x, y in pairs if not _le(y.worst_loss, x.worst_loss)]
    # equity before haircuts: a trade at the mark leaves it unchanged, a withdrawal lowers it
    poorer = [c for c, x, y in pairs if not _le(x.equity + x.haircut, y.equity + y.haircut)]
    reducing = not raised and not deeper and not poorer
    below_mm = [
        c
        for c, p in b.items()
        if p.equity < p.maintenance_margin or (p.equity < 0 and p.maintenance_margin <= 0)
    ]
    short = [c for c in names if a.get(c, zero).equity < a.get(c, zero).initial_margin]
    if reducing:
        return Decision(
            True,
            True,
            "risk-reducing: initial margin does not rise, no worst scenario loss deepens and "
            f"no equity leaves any pool ({', '.join(names) or 'none'})",
        )
    if raised:
        why = f"raises initial margin in {', '.join(raised)}"
    elif deeper:
        why = f"deepens the worst scenario loss in {', '.join(deeper)}"
    else:
        why = f"takes equity out of {', '.join(poorer)}"
    if below_mm:
        return Decision(
            False,
            False,
            f"refused: pool {below_mm[0]} is below maintenance margin, only risk-reducing "
            f"trades are accepted, and this one {why}",
        )
    if short:
        c = short[0]
        p = a[c]
        return Decision(
            False,
            False,
            f"insufficient margin in pool {c}: IM would be {fmt.format(p.initial_margin)} {c} "
            f"with equity {fmt.format(p.equity)} {c} "
            f"(short {fmt.format(p.initial_margin - p.equity)} {c})",
        )
    return Decision(True, False, f"every pool keeps equity at or above initial margin ({why})")


@dataclass(frozen=True, slots=True)
class _Zero:
    currency: str = ""
    initial_margin: float = 0.0
    maintenance_margin: float = 0.0
    equity: float = 0.0
    worst_loss: float = 0.0
    haircut: float = 0.0
