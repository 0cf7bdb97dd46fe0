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

Qualification: portfolio margin is granted to accounts whose equity (USD) is at least
``min_equity_usd`` (default 100,000 USD, the order of magnitude US brokers and crypto prime
brokers require); an account below the gate is margined under the strategy rules, and the
comparison says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portmargin.market import MarketSnapshot
from portmargin.models import MarginModel, MarginResult, load_model
from portmargin.portfolio import Portfolio
from portmargin.rules import RulesResult, load_rule_set, rules_margin

__all__ = ["DEFAULT_MIN_EQUITY_USD", "Comparison", "RegimeFigures", "compare", "rules_for"]

DEFAULT_MIN_EQUITY_USD = 100_000.0


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
class Comparison:
    """Standard per-leg, strategy-optimal and portfolio margin of one book."""

    standard: RegimeFigures
    strategy: RegimeFigures
    portfolio: RegimeFigures
    qualified: bool
    min_equity_usd: float
    rules_result: RulesResult
    standard_result: RulesResult
    portfolio_result: MarginResult

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
                "qualified": self.qualified,
                "applied_regime": self.applied.regime,
            },
        }


def _usd(market: MarketSnapshot, currency: str) -> float:
    return market.index_price(currency) if currency in market.underlyings else 1.0


def rules_for(book: Portfolio, market: MarketSnapshot, rule_set: str) -> RulesResult:
    """Rules-based margin of a :class:`Portfolio` under a named rule set (or TOML path)."""
    positions = [(market.instrument(n), q) for n, q in book.net_positions().items()]
    return rules_margin(positions, dict(book.cash), market, load_rule_set(rule_set))


def _from_rules(regime: str, r: RulesResult, market: MarketSnapshot) -> RegimeFigures:
    rate = _usd(market, r.currency)
    return RegimeFigures(
        regime,
        r.rule_set,
        r.currency,
        r.initial_margin,
        r.maintenance_margin,
        r.initial_margin * rate,
        r.maintenance_margin * rate,
        r.equity * rate,
    )


def compare(
    book: Portfolio,
    market: MarketSnapshot,
    *,
    model: MarginModel | str = "deribit",
    min_equity_usd: float = DEFAULT_MIN_EQUITY_USD,
) -> Comparison:
    """Margin ``book`` under the three regimes (see the module docstring)."""
    mdl = load_model(model) if isinstance(model, str) else model
    standard = rules_for(book, market, "deribit-standard")
    strategy = rules_for(book, market, "strategy")
    pm = mdl.margin(book, market)
    rate = _usd(market, pm.currency)
    portfolio = RegimeFigures(
        "portfolio",
        pm.model,
        pm.currency,
        pm.initial_margin,
        pm.maintenance_margin,
        pm.initial_margin * rate,
        pm.maintenance_margin * rate,
        pm.equity * rate,
    )
    qualified = portfolio.equity_usd >= min_equity_usd
    return Comparison(
        _from_rules("standard", standard, market),
        _from_rules("strategy", strategy, market),
        portfolio,
        qualified,
        min_equity_usd,
        strategy,
        standard,
        pm,
    )
