"""What every command shares: the options (declared once), consoles, loading at the boundary.

The shared options are typed ``Annotated`` aliases; a command declares ``market: MarketOpt =
None`` and gets the same flag, help text and checks as every other command. Nothing here
imports NumPy, SciPy, the storage layer or plotting at module level: ``portmargin --help``
loads only typer and rich, and each command imports what it needs in its body.

Loading goes through :func:`get_market` and :func:`get_portfolio`, the CLI's boundary: file
problems become one-line :class:`~portmargin.errors.InputError` naming the file, the
market's warnings go to stderr (one line each; stdout stays clean for JSON), and
:func:`resolve_book` names the instrument and both files when the market cannot value a
position.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from portmargin.errors import InputError, PortmarginError

if TYPE_CHECKING:
    from portmargin.market import MarketSnapshot
    from portmargin.portfolio import Portfolio

__all__ = [
    "DEFAULT_DB_URL",
    "CrossOpt",
    "DbOpt",
    "ExplainOpt",
    "FormatOpt",
    "MarketOpt",
    "MethodOpt",
    "MinEquityOpt",
    "ModelOpt",
    "OutputFormat",
    "ParamsOpt",
    "PmApprovedOpt",
    "PortfolioArg",
    "StrictQuotesOpt",
    "console",
    "err_console",
    "fmt_amount",
    "fmt_money",
    "get_market",
    "get_portfolio",
    "print_json",
    "refuse_interpolated",
    "resolve_book",
    "warn",
]

WIDTH_PIPED = 100
"""Columns of a table sent to a pipe or a file (a terminal uses its own width)."""

console = Console(highlight=False, width=None if sys.stdout.isatty() else WIDTH_PIPED)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

DEFAULT_DB_URL = "sqlite:///portmargin.db"
"""The default ``--db`` (``portmargin.storage.DEFAULT_DB_URL``; a test keeps them equal)."""


class OutputFormat(StrEnum):
    """Output format of a command."""

    table = "table"
    json = "json"


def _min_equity(value: float) -> float:
    if not (math.isfinite(value) and value >= 0.0):
        raise InputError(f"--min-equity {value!r}: must be a finite number of USD >= 0")
    return value


# -- the shared options ------------------------------------------------------------------
PortfolioArg = Annotated[
    Path,
    typer.Argument(
        help="Portfolio file: .json, .yaml or .csv, or a saved Deribit private/get_positions "
        "response (.json).",
        show_default=False,
    ),
]
MarketOpt = Annotated[
    Path | None,
    typer.Option(
        "--market",
        help="Market file (JSON or Deribit option-chain CSV); default: the built-in demo market.",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="Portfolio-margin model: deribit, span, span16, tims, or a model TOML path.",
    ),
]
MethodOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="Method: a model (deribit, span, span16, tims), a rule set (deribit-standard, "
        "strategy, cboe), derive, or a model / rule-set TOML path.",
    ),
]
ParamsOpt = Annotated[
    Path | None,
    typer.Option(
        "--params", help="TOML file merged over the model's parameters.", show_default=False
    ),
]
CrossOpt = Annotated[
    bool, typer.Option("--cross", help="One USD pool with coin collateral (cross margin).")
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
ExplainOpt = Annotated[
    bool,
    typer.Option(
        "--explain", help="Show each pool's components, the I/M multiplier step and positions."
    ),
]
StrictQuotesOpt = Annotated[
    bool,
    typer.Option(
        "--strict-quotes",
        help="Refuse a position whose mark is not quoted in the market (interpolated).",
    ),
]
MinEquityOpt = Annotated[
    float,
    typer.Option(
        "--min-equity",
        help="Portfolio-margin gate: minimum equity after haircuts, USD.",
        callback=_min_equity,
    ),
]
PmApprovedOpt = Annotated[
    bool,
    typer.Option(
        "--pm-approved/--no-pm-approved",
        help="Whether the venue approved the account for portfolio margin (the gate's flag).",
    ),
]
DbOpt = Annotated[
    str, typer.Option("--db", help="Database URL (sqlite:///FILE or postgresql://...).")
]


# -- loading at the boundary ---------------------------------------------------------------
def warn(message: str) -> None:
    """One warning line on stderr (never on stdout, which may carry JSON)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True, soft_wrap=True)


def get_market(path: Path | None) -> MarketSnapshot:
    """The market file at ``path`` (or the demo market); its warnings go to stderr.

    Raises
    ------
    InputError
        For a file that cannot be read or parsed (the loader's one line).
    """
    from portmargin.io import load_market
    from portmargin.market import demo_market

    snap = demo_market() if path is None else load_market(path)
    for line in snap.warnings:
        warn(f"{snap.source}: {line}")
    return snap


def get_portfolio(path: Path) -> Portfolio:
    """A portfolio file (JSON, YAML, CSV) or a saved Deribit ``private/get_positions`` response.

    Raises
    ------
    InputError
        One line naming the file and the reason.
    """
    from portmargin.exchange import is_deribit_positions, portfolio_from_deribit
    from portmargin.io import load_portfolio

    if path.suffix.lower() == ".json":
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""  # the loader reports it with its own wording
        if text:
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            if is_deribit_positions(doc):
                return portfolio_from_deribit(doc, name=path.stem, source=str(path))
    return load_portfolio(path)


def resolve_book(book: Portfolio, market: MarketSnapshot, *, where: str) -> dict[str, str]:
    """Check that ``market`` can value every position; return instrument → quote source.

    The keys are the market's canonical names (as in a result's ``positions``), the values
    :class:`~portmargin.market.QuoteSource` values (``quoted``, ``interpolated``, ...).

    Raises
    ------
    InputError
        ``where: INSTRUMENT: reason (market SOURCE)`` for an unknown instrument or an
        underlying the market has no data for.
    """
    out: dict[str, str] = {}
    for name in book.net_positions():
        try:
            inst = market.instrument(name)
            out[inst.name] = market.quote_source(inst).value
        except PortmarginError as exc:
            from portmargin.io.names import did_you_mean

            hint = did_you_mean(name, market)
            raise InputError(f"{where}: {name}: {exc}{hint} (market: {market.source})") from None
    return out


def refuse_interpolated(quotes: Mapping[str, str], market: MarketSnapshot) -> None:
    """``--strict-quotes``: refuse the first position whose mark is interpolated.

    Raises
    ------
    InputError
        Naming the instrument and the market.
    """
    for name, source in quotes.items():
        if source == "interpolated":
            raise InputError(
                f"--strict-quotes: {name} has no quote in {market.source} (its mark would be "
                "interpolated from the other quotes)"
            )


def print_json(data: Any) -> None:
    """Print a JSON document to stdout (plain, machine-readable)."""
    print(json.dumps(data, indent=2, sort_keys=False, allow_nan=False))


def fmt_amount(value: float, currency: str) -> str:
    """Money with sensible precision: coins to 6 dp, USD-like to 2 dp, thousands separated."""
    if currency in ("BTC", "ETH"):
        return f"{value:,.6f}"
    return f"{value:,.2f}"


def fmt_money(value: float, currency: str) -> str:
    """``fmt_amount`` followed by the currency: ``0.012345 BTC``, ``1,234.50 USD``."""
    return f"{fmt_amount(value, currency)} {currency}"
