"""Market data: snapshots, volatility surfaces and the built-in demo market."""

from portmargin.market.demo import DEMO_VALUATION_TIME, demo_market
from portmargin.market.snapshot import (
    MarketSnapshot,
    OptionQuote,
    UnderlyingQuote,
    build_market,
    year_fraction,
)
from portmargin.market.surface import VolSurface

__all__ = [
    "DEMO_VALUATION_TIME",
    "MarketSnapshot",
    "OptionQuote",
    "UnderlyingQuote",
    "VolSurface",
    "build_market",
    "demo_market",
    "year_fraction",
]
