"""``portmargin rules`` and ``portmargin compare``: rules-based margin beside portfolio margin."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from portmargin.cli._common import (
    CrossOpt,
    FormatOpt,
    MarketOpt,
    MinEquityOpt,
    ModelOpt,
    OutputFormat,
    ParamsOpt,
    PmApprovedOpt,
    PortfolioArg,
    StrictQuotesOpt,
    console,
    fmt_amount,
    get_market,
    get_portfolio,
    print_json,
    refuse_interpolated,
    resolve_book,
)
from portmargin.errors import InputError

if TYPE_CHECKING:
    from portmargin.compare import Comparison
    from portmargin.market import MarketSnapshot
    from portmargin.rules import RulesResult

__all__ = ["compare_json", "register", "render_comparison", "rules_json"]

_DEFAULT_MIN_EQUITY = 100_000.0  # portmargin.compare.DEFAULT_MIN_EQUITY_USD (a test pins it)


def rules_json(r: RulesResult, market: MarketSnapshot) -> dict[str, object]:
    """``portmargin rules --format json``: the margin contract's top-level fields + strategies."""
    from portmargin.units import iso_z

    doc = r.to_dict()
    doc["model"] = r.rule_set
    doc["valuation_time"] = iso_z(market.valuation_time)
    doc["market"] = market.source
    return doc


def compare_json(c: Comparison) -> dict[str, Any]:
    """``portmargin compare --format json``: the comparison, its gate's equity test spelled out."""
    doc = c.to_dict()
    doc["qualification"]["equity_test"] = c.equity_after_haircuts_usd >= c.min_equity_usd
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
    if r.optimality_gap > 0:
        console.print(
            f"  [yellow]pairing search stopped at its time limit[/]: within "
            f"{r.optimality_gap:.2%} of the optimum (never below it); --time-limit 0 is exact"
        )


def render_comparison(c: Comparison, title: str) -> None:
    """Print the three regimes side by side with the capital freed at each step."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in (
        "regime",
        "method",
        "initial (USD)",
        "maint. (USD)",
        "freed vs previous (USD)",
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
    approved = "approved" if c.approved else "[yellow]not approved[/]"
    test = ">=" if c.equity_after_haircuts_usd >= c.min_equity_usd else "[yellow]<[/]"
    regime = "portfolio margin" if c.qualified else "strategy rules"
    console.print(
        f"  gate: {approved}; equity after haircuts {c.equity_after_haircuts_usd:,.2f} USD "
        f"{test} {c.min_equity_usd:,.2f} USD -> {regime}"
    )


def register(app: typer.Typer) -> None:
    """Attach ``rules`` and ``compare`` to ``app``."""

    @app.command("rules")
    def rules_cmd(
        portfolio: PortfolioArg,
        market: MarketOpt = None,
        rules: Annotated[
            str,
            typer.Option(
                "--rules", help="deribit-standard, strategy, cboe or a rule-set TOML path."
            ),
        ] = "strategy",
        time_limit: Annotated[
            float,
            typer.Option(
                "--time-limit",
                help="Seconds of pairing search; past it the best decomposition found is "
                "reported with its optimality gap. 0: exact (large books can take minutes).",
            ),
        ] = 2.0,
        strict_quotes: StrictQuotesOpt = False,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Rules-based margin with the optimal strategy decomposition."""
        from portmargin.methods import RulesMethod
        from portmargin.rules import load_rule_set

        if not (math.isfinite(time_limit) and time_limit >= 0):
            raise InputError(f"--time-limit {time_limit!r}: must be >= 0 seconds (0: exact)")
        snap = get_market(market)
        book = get_portfolio(portfolio)
        quotes = resolve_book(book, snap, where=str(portfolio))
        if strict_quotes:
            refuse_interpolated(quotes, snap)
        limit = time_limit if time_limit > 0 else None
        result = RulesMethod(load_rule_set(rules), limit).rules(book, snap)
        if fmt is OutputFormat.json:
            print_json(rules_json(result, snap))
        else:
            _render_rules(result, f"{book.name}: rules-based margin on {snap.source}")

    @app.command("compare")
    def compare_cmd(
        portfolio: PortfolioArg,
        market: MarketOpt = None,
        model: ModelOpt = "deribit",
        params: ParamsOpt = None,
        cross: CrossOpt = False,
        min_equity: MinEquityOpt = _DEFAULT_MIN_EQUITY,
        pm_approved: PmApprovedOpt = True,
        strict_quotes: StrictQuotesOpt = False,
        fmt: FormatOpt = OutputFormat.table,
        plot: Annotated[
            Path | None,
            typer.Option("--plot", help="Write a chart (.png or .html).", show_default=False),
        ] = None,
    ) -> None:
        """Standard per-leg vs strategy-optimal vs portfolio margin, and the gate that decides."""
        from portmargin.compare import compare
        from portmargin.methods import load_method

        snap = get_market(market)
        book = get_portfolio(portfolio)
        quotes = resolve_book(book, snap, where=str(portfolio))
        if strict_quotes:
            refuse_interpolated(quotes, snap)
        method = load_method(model, params_file=params, cross=True if cross else None)
        c = compare(book, snap, model=method, min_equity_usd=min_equity, approved=pm_approved)
        if plot is not None:
            from portmargin.plots import comparison_chart

            comparison_chart(c, plot, title=book.name)
        if fmt is OutputFormat.json:
            print_json(compare_json(c))
        else:
            render_comparison(c, f"{book.name}: three regimes on {snap.source}")
            if plot is not None:
                console.print(f"  chart written to {plot}")
