"""The one-call API: ``portmargin.margin(portfolio, market, method)``."""

from __future__ import annotations

from portmargin.market import MarketSnapshot
from portmargin.methods import Method, load_method
from portmargin.models import MarginResult
from portmargin.portfolio import Portfolio

__all__ = ["margin"]


def margin(
    portfolio: Portfolio, market: MarketSnapshot, model: Method | str = "deribit"
) -> MarginResult:
    """Margin ``portfolio`` on ``market`` under a method (an object or a loadable name).

    Any method of :func:`portmargin.methods.available_methods` (``deribit``, ``span``,
    ``strategy``, ``derive``, ...) or a model / rule-set TOML path.

    Examples
    --------
    >>> import portmargin as pm
    >>> book = pm.Portfolio.of({"BTC-27MAR26-70000-P": -1, "BTC-27MAR26-69000-P": 1})
    >>> result = pm.margin(book, pm.demo_market(), "deribit")
    >>> result.currency, result.initial_margin > 0
    ('BTC', True)
    """
    method = load_method(model) if isinstance(model, str) else model
    return method.margin(portfolio, market)
