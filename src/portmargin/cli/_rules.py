"""``portmargin rules`` and ``portmargin compare``: rules-based margin beside portfolio margin."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from portmargin.cli._common import (
    OutputFormat,
    console,
    fmt_amount,
    get_market,
    get_portfolio,
    print_json,
)
from portmargin.compare import DEFAULT_MIN_EQUITY_USD, Comparison, compare
from portmargin.market import MarketSnapshot
from portmargin.methods import RulesMethod
from portmargin.rules import RulesResult, load_rule_set
from portmargin.units import iso_z

__all__ = ["register", "render_comparison", "rules_json"]


def rules_json(r: RulesResult, market: MarketSnapshot) -> dict[str, object]:
    """``portmargin rules --format json``: the margin contract's top-level fields + strategies."""
    doc = r.to_dict()
    doc["model"] = r.rule_set
    doc["valuation_time"] = iso_z(market.valuation_time)
    doc["market"] = market.source
    return doc


def _render_rules(r: RulesResult, title: str) -> None:
    ccy = r.currency
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in (
        "rule set",
        "ccy",
        "initial (net)",
        "maint. (net)",
        "initial (gross)",
        "greedy initial",
        "equity",
        "initial excess",
    ):
        t.add_column(col, justify="left" if col in ("rule set", "ccy") else "right")
    t.add_row(
        r.rule_set,
        ccy,
        fmt_amount(r.initial_margin, ccy),
        fmt_amount(r.maintenance_margin, ccy),
        fmt_amount(r.gross_initial_margin, ccy),
        fmt_amount(r.greedy_initial_margin, ccy),
        fmt_amount(r.equity, ccy),
        fmt_amount(r.initial_excess, ccy),
    )
    console.print(t)
    s = Table(title="optimal decomposition", title_justify="left", header_style="bold")
    for col in ("strategy", "legs", "initial (net)", "maint. (net)", "ccy"):
        s.add_column(col, justify="right" if "net" in col else "left")
    for g in r.strategies:
        legs = ", ".join(f"{q:+g} {n}" for n, q in g.legs)
        s.add_row(
            g.kind,
            legs,
            fmt_amount(g.initial_margin, g.currency),
            fmt_amount(g.maintenance_margin, g.currency),
            g.currency,
        )
    console.print(s)


def render_comparison(c: Comparison, title: str) -> None:
    """Print the three regimes side by side with the capital freed at each step."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in (
        "regime",
        "method",
        "initial (USD)",
        "maint. (USD)",
        "freed vs previous",
        "freed %",
    ):
        t.add_column(col, justify="left" if col in ("regime", "method") else "right")
    prev: float | None = None
    for fig in (c.standard, c.strategy, c.portfolio):
        im = fig.initial_margin_usd
        freed = "" if prev is None else f"{prev - im:,.0f}"
        pct = "" if prev is None or prev <= 0 else f"{(prev - im) / prev:.1%}"
        t.add_row(
            fig.regime, fig.method, f"{im:,.0f}", f"{fig.maintenance_margin_usd:,.0f}", freed, pct
        )
        prev = im
    console.print(t)
    console.print(f"  efficiency gain (1 − portfolio/strategy): [bold]{c.efficiency_gain:.1%}[/]")
    if not c.qualified:
        why = (
            "the book is not approved for portfolio margin"
            if not c.approved
            else f"equity after haircuts {c.equity_after_haircuts_usd:,.0f} USD is below the "
            f"portfolio-margin gate ({c.min_equity_usd:,.0f} USD)"
        )
        console.print(f"  [yellow]{why}: this account is margined under strategy rules[/]")


def register(app: typer.Typer) -> None:
    """Attach ``rules`` and ``compare`` to ``app``."""

    @app.command("rules")
    def rules_cmd(
        portfolio: Path = typer.Argument(..., help="Portfolio file (.json, .yaml or .csv)."),
        market: Path | None = typer.Option(
            None, "--market", help="Market file; default: demo market."
        ),
        rules: str = typer.Option(
            "strategy", "--rules", help="deribit-standard, strategy, cboe or a TOML path."
        ),
        fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    ) -> None:
        """Rules-based margin with the optimal strategy decomposition."""
        snap = get_market(market)
        book = get_portfolio(portfolio)
        result = RulesMethod(load_rule_set(rules)).rules(book, snap)
        if fmt is OutputFormat.json:
            print_json(rules_json(result, snap))
        else:
            _render_rules(result, f"{book.name}: rules-based margin on {snap.source}")

    @app.command("compare")
    def compare_cmd(
        portfolio: Path = typer.Argument(..., help="Portfolio file (.json, .yaml or .csv)."),
        market: Path | None = typer.Option(
            None, "--market", help="Market file; default: demo market."
        ),
        model: str = typer.Option("deribit", "--model", help="Portfolio-margin model."),
        min_equity: float = typer.Option(
            DEFAULT_MIN_EQUITY_USD,
            "--min-equity",
            help="Portfolio-margin qualification gate (USD equity).",
        ),
        fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
        plot: Path | None = typer.Option(None, "--plot", help="Write a chart (.png or .html)."),
    ) -> None:
        """Standard per-leg vs strategy-optimal vs portfolio margin, side by side."""
        snap = get_market(market)
        book = get_portfolio(portfolio)
        c = compare(book, snap, model=model, min_equity_usd=min_equity)
        if plot is not None:
            from portmargin.plots import comparison_chart

            comparison_chart(c, plot, title=book.name)
        if fmt is OutputFormat.json:
            print_json(c.to_dict())
        else:
            render_comparison(c, f"{book.name}: three regimes on {snap.source}")
            if plot is not None:
                console.print(f"  chart written to {plot}")
