"""Market data: snapshots, volatility surfaces, perturbations and the built-in demo market."""

from portmargin.market import limits
from portmargin.market.demo import DEMO_VALUATION_TIME, demo_market
from portmargin.market.shift import shift
from portmargin.market.snapshot import (
    MarketSnapshot,
    OptionQuote,
    QuoteSource,
    UnderlyingQuote,
    build_market,
    year_fraction,
)
from portmargin.market.surface import VolSurface

__all__ = [
    "DEMO_VALUATION_TIME",
    "MarketSnapshot",
    "OptionQuote",
    "QuoteSource",
    "UnderlyingQuote",
    "VolSurface",
    "build_market",
    "demo_market",
    "limits",
    "shift",
    "year_fraction",
]
