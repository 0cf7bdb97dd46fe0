"""The three margin regimes side by side, and the portfolio-margin qualification gate.

For one book on one market:

``standard``
    The venue's standard margin, leg by leg with no offsets (rule set ``deribit-standard``).
``strategy``
    Strategy-based margin with the exact optimal pairing of legs into recognised strategies
    (rule set ``strategy``, Cboe/FINRA style with crypto parameters).
``portfolio``
    The scenario-based portfolio margin of a model (``deribit`` by default).

All three are requirements net of the positions' mark-to-market, so they compare like with
like (``excess = equity − requirement``); each is converted to USD at the index price of its
margin currency. ``efficiency_gain = 1 − portfolio / strategy`` (initial margin, USD).

Each regime is a margin method (:func:`portmargin.methods.load_method`), so the three are
margined by the same protocol and converted to USD the same way
(:func:`portmargin.units.usd_totals`).

Qualification is the accounts' one gate (:func:`portmargin.accounts.qualifies`): portfolio
margin applies when the book is approved for it and its equity after haircuts is at least
``min_equity_usd`` (default :data:`~portmargin.accounts.DEFAULT_MIN_PM_EQUITY_USD`);
otherwise the account is margined under the strategy rules, and the comparison says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portmargin._tabular import Tabular
from portmargin.accounts import (
    DEFAULT_MIN_PM_EQUITY_USD,
    AccountSettings,
    haircut_usd,
    qualifies,
)
from portmargin.market import MarketSnapshot
from portmargin.methods import Method, load_method
from portmargin.models import MarginResult
from portmargin.portfolio import Portfolio
from portmargin.rules import RulesResult
from portmargin.units import usd_totals

__all__ = ["DEFAULT_MIN_EQUITY_USD", "Comparison", "RegimeFigures", "compare"]

DEFAULT_MIN_EQUITY_USD = DEFAULT_MIN_PM_EQUITY_USD


@dataclass(frozen=True, slots=True)
class RegimeFigures:
    """One regime's requirement in USD (and in its own currency)."""

    regime: str
    method: str
    currency: str
    initial_margin: float
    maintenance_margin: float
    initial_margin_usd: float
    maintenance_margin_usd: float
    equity_usd: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "method": self.method,
            "currency": self.currency,
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
            "initial_margin_usd": self.initial_margin_usd,
            "maintenance_margin_usd": self.maintenance_margin_usd,
            "equity_usd": self.equity_usd,
        }


@dataclass(frozen=True, slots=True)
class Comparison(Tabular):
    """Standard per-leg, strategy-optimal and portfolio margin of one book."""

    standard: RegimeFigures
    strategy: RegimeFigures
    portfolio: RegimeFigures
    qualified: bool
    min_equity_usd: float
    standard_margin: MarginResult
    strategy_margin: MarginResult
    portfolio_result: MarginResult
    equity_after_haircuts_usd: float = 0.0
    approved: bool = True

    @property
    def rules_result(self) -> RulesResult:
        """The strategy rule set's own result (its decomposition)."""
        detail: RulesResult = self.strategy_margin.detail
        return detail

    @property
    def standard_result(self) -> RulesResult:
        """The standard rule set's own result."""
        detail: RulesResult = self.standard_margin.detail
        return detail

    @property
    def efficiency_gain(self) -> float:
        """``1 − portfolio IM / strategy IM`` in USD (0 when the strategy IM is 0)."""
        s = self.strategy.initial_margin_usd
        return 0.0 if s <= 0 else 1.0 - self.portfolio.initial_margin_usd / s

    @property
    def applied(self) -> RegimeFigures:
        """The regime the account is actually margined under (the gate decides)."""
        return self.portfolio if self.qualified else self.strategy

    def to_dict(self) -> dict[str, Any]:
        """JSON of ``portmargin compare --format json``."""
        std, strat, pm = self.standard, self.strategy, self.portfolio
        return {
            "standard": std.to_dict(),
            "strategy": {
                **strat.to_dict(),
                "strategies": [s.to_dict() for s in self.rules_result.strategies],
            },
            "portfolio": {**pm.to_dict(), "qualified": self.qualified},
            "efficiency_gain": self.efficiency_gain,
            "freed": {
                "standard_to_strategy_usd": std.initial_margin_usd - strat.initial_margin_usd,
                "strategy_to_portfolio_usd": strat.initial_margin_usd - pm.initial_margin_usd,
                "standard_to_portfolio_usd": std.initial_margin_usd - pm.initial_margin_usd,
            },
            "qualification": {
                "min_equity_usd": self.min_equity_usd,
                "equity_after_haircuts_usd": self.equity_after_haircuts_usd,
                "approved": self.approved,
                "qualified": self.qualified,
                "applied_regime": self.applied.regime,
            },
        }


def regime(name: str, result: MarginResult) -> RegimeFigures:
    """One regime's figures from a method's result (USD by :func:`usd_totals`)."""
    im, mm, eq = usd_totals(result.by_currency)
    return RegimeFigures(
        name,
        result.model,
        result.currency,
        result.initial_margin,
        result.maintenance_margin,
        im,
        mm,
        eq,
    )


def compare(
    book: Portfolio,
    market: MarketSnapshot,
    *,
    model: Method | str = "deribit",
    min_equity_usd: float = DEFAULT_MIN_EQUITY_USD,
    settings: AccountSettings | None = None,
    approved: bool = True,
) -> Comparison:
    """Margin ``book`` under the three regimes (see the module docstring).

    ``settings`` supplies the collateral haircuts of the gate (default
    :class:`~portmargin.accounts.AccountSettings`); ``approved`` is the book's approval for
    portfolio margin.
    """
    pm_method = load_method(model) if isinstance(model, str) else model
    standard = load_method("deribit-standard").margin(book, market)
    strategy = load_method("strategy").margin(book, market)
    pm = pm_method.margin(book, market)
    portfolio = regime("portfolio", pm)
    hc = haircut_usd(book.cash, market, settings or AccountSettings())
    equity = portfolio.equity_usd - hc
    return Comparison(
        regime("standard", standard),
        regime("strategy", strategy),
        portfolio,
        qualifies(equity, min_equity_usd, approved=approved),
        min_equity_usd,
        standard,
        strategy,
        pm,
        equity,
        approved,
    )
