"""File formats at the edge: market files, portfolio files and model parameter files."""

from portmargin.io.market_files import load_market
from portmargin.io.portfolio_files import load_portfolio

__all__ = ["load_market", "load_portfolio"]
