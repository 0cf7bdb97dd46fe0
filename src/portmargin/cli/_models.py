"""``portmargin models``: every margin method on one portfolio, side by side.

It iterates :func:`portmargin.methods.available_methods`: the scenario models, the rule sets
and Derive PMRM_2, each margining the same book on the same market and returning the one
result family. A method that cannot margin the book (Derive refuses dated futures, say)
is listed with its reason instead of figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from portmargin.cli._common import (
    FormatOpt,
    MarketOpt,
    OutputFormat,
    PortfolioArg,
    console,
    fmt_amount,
    get_market,
    get_portfolio,
    print_json,
    resolve_book,
)
from portmargin.errors import PortmarginError

if TYPE_CHECKING:
    from portmargin.market import MarketSnapshot
    from portmargin.models import MarginResult
    from portmargin.portfolio import Portfolio

__all__ = ["compare_models", "register"]


def compare_models(
    book: Portfolio, market: MarketSnapshot
) -> list[tuple[str, str, MarginResult | str]]:
    """``(method, family, result or the one-line reason it could not margin the book)``."""
    from portmargin.methods import available_methods, load_method

    out: list[tuple[str, str, MarginResult | str]] = []
    for info in available_methods():
        try:
            out.append((info.name, info.family, load_method(info.name).margin(book, market)))
        except PortmarginError as exc:
            out.append((info.name, info.family, str(exc)))
    return out


def _row(family: str, result: MarginResult) -> dict[str, Any]:
    from portmargin.units import usd_totals

    w = result.worst_scenario
    im_usd, mm_usd, _ = usd_totals(result.by_currency)
    return {
        "model": result.model,
        "family": family,
        "model_version": result.model_version,
        "currency": result.currency,
        "initial_margin": result.initial_margin,
        "maintenance_margin": result.maintenance_margin,
        "equity": result.equity,
        "initial_excess": result.initial_excess,
        "maintenance_excess": result.maintenance_excess,
        "initial_margin_usd": im_usd,
        "maintenance_margin_usd": mm_usd,
        "components": dict(result.components),
        "worst_scenario": None if w is None else w.to_dict(),
    }


def register(app: typer.Typer) -> None:
    """Attach ``models`` to ``app``."""

    @app.command("models")
    def models_cmd(
        portfolio: PortfolioArg,
        market: MarketOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Margin one portfolio under every method, side by side (models, rules, Derive)."""
        from portmargin.models import MarginResult
        from portmargin.units import usd_totals

        snap = get_market(market)
        book = get_portfolio(portfolio)
        resolve_book(book, snap, where=str(portfolio))
        entries = compare_models(book, snap)
        done = [(name, fam, r) for name, fam, r in entries if isinstance(r, MarginResult)]
        refused = [(name, fam, r) for name, fam, r in entries if isinstance(r, str)]
        if fmt is OutputFormat.json:
            rows = [_row(fam, r) for _, fam, r in done]
            print_json(
                {
                    "portfolio": book.name,
                    "market": snap.source,
                    "models": [row for row in rows if row["family"] == "portfolio"],
                    "methods": rows,
                    "refused": {name: reason for name, _, reason in refused},
                }
            )
            return
        t = Table(title=f"{book.name} on {snap.source}", title_justify="left", header_style="bold")
        for col in ("method", "family", "ccy", "initial", "maintenance", "equity", "IM USD"):
            t.add_column(col, justify="right" if col not in ("method", "family", "ccy") else "left")
        t.add_column("binding scenario")
        for _, fam, r in done:
            w = r.worst_scenario
            t.add_row(
                f"{r.model} {r.model_version}",
                fam,
                r.currency,
                fmt_amount(r.initial_margin, r.currency),
                fmt_amount(r.maintenance_margin, r.currency),
                fmt_amount(r.equity, r.currency),
                f"{usd_totals(r.by_currency)[0]:,.2f}",
                "-" if w is None else f"{w.underlying} {w.price_move:+.1%} vol {w.vol_shock:+.0%}",
            )
        console.print(t)
        results = [r for _, fam, r in done if fam == "portfolio"]
        names = sorted({k for r in results for k in r.components})
        c = Table(title="components (scenario models)", title_justify="left", header_style="bold")
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
        for name, _, reason in refused:
            label = "Derive PMRM_2" if name == "derive" else name
            console.print(f"  [dim]{label} is not listed: {escape(reason)}[/]")
