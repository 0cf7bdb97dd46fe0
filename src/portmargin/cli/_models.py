"""``portmargin models``: every shipped margin model on one portfolio, side by side.

Derive PMRM_2 (:mod:`portmargin.derive`) is not included: it margins a Derive sub-account
(one underlying, with oracle confidences, per-expiry rate feeds and PMRM_2 parameters), not
a :class:`~portmargin.portfolio.Portfolio` on a market snapshot. Use
``portmargin margin --derive-case FILE`` for Derive case files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from portmargin.cli._common import OutputFormat, console, fmt_amount, get_market, print_json
from portmargin.io import load_portfolio
from portmargin.market import MarketSnapshot
from portmargin.models import MarginResult, available_models, load_model
from portmargin.portfolio import Portfolio

__all__ = ["compare_models", "register"]


def compare_models(book: Portfolio, market: MarketSnapshot) -> list[MarginResult]:
    """Margin ``book`` under every shipped model, in :func:`available_models` order."""
    return [load_model(name).margin(book, market) for name in available_models()]


def _usd(value: float, result: MarginResult, market: MarketSnapshot) -> float:
    ccy = result.currency
    return value * (market.index_price(ccy) if ccy in market.underlyings else 1.0)


def _row(result: MarginResult, market: MarketSnapshot) -> dict[str, Any]:
    w = result.worst_scenario
    return {
        "model": result.model,
        "model_version": result.model_version,
        "currency": result.currency,
        "initial_margin": result.initial_margin,
        "maintenance_margin": result.maintenance_margin,
        "equity": result.equity,
        "initial_excess": result.initial_excess,
        "maintenance_excess": result.maintenance_excess,
        "initial_margin_usd": _usd(result.initial_margin, result, market),
        "maintenance_margin_usd": _usd(result.maintenance_margin, result, market),
        "components": dict(result.components),
        "worst_scenario": None if w is None else w.to_dict(),
    }


def register(app: typer.Typer) -> None:
    """Attach ``models`` to ``app``."""

    @app.command("models")
    def models_cmd(
        portfolio: Path = typer.Argument(..., help="Portfolio file (.json, .yaml or .csv)."),
        market: Path | None = typer.Option(
            None, "--market", help="Market file (JSON or Deribit CSV); default: demo market."
        ),
        fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    ) -> None:
        """Margin one portfolio under every shipped model, side by side (Derive excluded)."""
        snap = get_market(market)
        book = load_portfolio(portfolio)
        results = compare_models(book, snap)
        rows = [_row(r, snap) for r in results]
        if fmt is OutputFormat.json:
            print_json({"portfolio": book.name, "market": snap.source, "models": rows})
            return
        t = Table(title=f"{book.name} on {snap.source}", title_justify="left", header_style="bold")
        for col in ("model", "ccy", "initial", "maintenance", "equity", "IM USD", "binding"):
            t.add_column(col, justify="left" if col in ("model", "ccy", "binding") else "right")
        for r, row in zip(results, rows, strict=True):
            w = r.worst_scenario
            t.add_row(
                f"{r.model} {r.model_version}",
                r.currency,
                fmt_amount(r.initial_margin, r.currency),
                fmt_amount(r.maintenance_margin, r.currency),
                fmt_amount(r.equity, r.currency),
                f"{row['initial_margin_usd']:,.2f}",
                "-" if w is None else f"{w.underlying} {w.price_move:+.1%} vol {w.vol_shock:+.0%}",
            )
        console.print(t)
        names = sorted({k for r in results for k in r.components})
        c = Table(title="components", title_justify="left", header_style="bold")
        c.add_column("component")
        for r in results:
            c.add_column(f"{r.model} ({r.currency})", justify="right")
        for name in names:
            c.add_row(
                name,
                *(
                    fmt_amount(r.components[name], r.currency) if name in r.components else "-"
                    for r in results
                ),
            )
        console.print(c)
        console.print("  [dim]Derive PMRM_2 is not listed: use margin --derive-case FILE.[/]")
