"""Shared CLI helpers: consoles, market/portfolio loading options, number formatting."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console

from portmargin.io import load_market, load_portfolio
from portmargin.market import MarketSnapshot, demo_market
from portmargin.portfolio import Portfolio

__all__ = [
    "OutputFormat",
    "console",
    "err_console",
    "fmt_amount",
    "get_market",
    "get_portfolio",
    "print_json",
]

# A pipe or file gets wide tables rather than rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False)


class OutputFormat(StrEnum):
    """Output format of a command."""

    table = "table"
    json = "json"


def get_market(path: Path | None) -> MarketSnapshot:
    """The market file at ``path``, or the built-in demo market."""
    return demo_market() if path is None else load_market(path)


def get_portfolio(path: Path) -> Portfolio:
    """Load a portfolio file (JSON, YAML or CSV)."""
    return load_portfolio(path)


def print_json(data: Any) -> None:
    """Print a JSON document to stdout (plain, machine-readable)."""
    print(json.dumps(data, indent=2, sort_keys=False, allow_nan=False))


def fmt_amount(value: float, currency: str) -> str:
    """Money with sensible precision: coins to 6 dp, USD-like to 2 dp, thousands separated."""
    if currency in ("BTC", "ETH"):
        return f"{value:,.6f}"
    return f"{value:,.2f}"
