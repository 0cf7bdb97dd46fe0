"""The one-call API: ``portmargin.margin(portfolio, market, model)``."""

from __future__ import annotations

from portmargin.market import MarketSnapshot
from portmargin.models import MarginModel, MarginResult, load_model
from portmargin.portfolio import Portfolio

__all__ = ["margin"]


def margin(
    portfolio: Portfolio, market: MarketSnapshot, model: MarginModel | str = "deribit"
) -> MarginResult:
    """Margin ``portfolio`` on ``market`` under ``model`` (a model or a shipped model's name).

    Examples
    --------
    >>> import portmargin as pm
    >>> book = pm.Portfolio.of({"BTC-27MAR26-70000-P": -1, "BTC-27MAR26-69000-P": 1})
    >>> result = pm.margin(book, pm.demo_market(), "deribit")
    >>> result.currency, result.initial_margin > 0
    ('BTC', True)
    """
    mdl = load_model(model) if isinstance(model, str) else model
    return mdl.margin(portfolio, market)
