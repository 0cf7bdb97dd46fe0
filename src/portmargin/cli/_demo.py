"""``portmargin demo``: the seed document's two tables, recomputed on the demo market."""

from __future__ import annotations

import typer
from rich.table import Table

from portmargin.cli._common import console, fmt_amount
from portmargin.compare import Comparison, compare
from portmargin.examples import seed_portfolios
from portmargin.margin import margin
from portmargin.market import MarketSnapshot, demo_market
from portmargin.models import MarginModel, load_model

__all__ = ["register"]

# The seed's illustrative figures (../shared/seed/), quoted for comparison only.
_SEED_TABLE_1 = {
    "short_put_spread": ("$1,000 (max loss)", "~$300-500", "50-70 %"),
    "iron_condor": ("$1,000 (width)", "~$250-450", "55-75 %"),
    "long_calendar": ("debit + short-leg margin", "net debit", "often > 80 %"),
    "hedged_straddle": ("naked options + futures", "dramatically reduced", "up to 90 %"),
}


def _usd(market: MarketSnapshot, currency: str, amount: float) -> float:
    return amount * (market.index_price(currency) if currency in market.underlyings else 1.0)


def _table_one(market: MarketSnapshot, comps: dict[str, Comparison], span: MarginModel) -> None:
    t = Table(
        title="Seed table 1 - strategies on BTC at 70,000: initial margin in USD (net of premium)",
        title_justify="left",
        header_style="bold",
    )
    for col in (
        "strategy",
        "seed: rules",
        "seed: PM",
        "standard per-leg",
        "strategy optimal",
        "PM deribit",
        "PM span16",
        "gain vs strategy",
        "seed: gain",
    ):
        t.add_column(
            col,
            justify="left"
            if col in ("strategy", "seed: rules", "seed: PM", "seed: gain")
            else "right",
        )
    for title, book in seed_portfolios()[:4]:
        c = comps[book.name]
        s16 = margin(book, market, span)
        seed = _SEED_TABLE_1[book.name]
        t.add_row(
            title.split(" (")[0],
            seed[0],
            seed[1],
            f"{c.standard.initial_margin_usd:,.0f}",
            f"{c.strategy.initial_margin_usd:,.0f}",
            f"{c.portfolio.initial_margin_usd:,.0f}",
            f"{_usd(market, s16.currency, s16.initial_margin):,.0f}",
            f"{c.efficiency_gain:.0%}",
            seed[2],
        )
    console.print(t)


def _table_two(market: MarketSnapshot, c: Comparison) -> None:
    title, book = seed_portfolios()[4]
    t = Table(title=f"Seed table 2 - {title}: USD", title_justify="left", header_style="bold")
    for col in (
        "position",
        "qty",
        "notional",
        "standard per-leg IM",
        "strategy group",
        "PM: P&L in binding scenario",
    ):
        t.add_column(col, justify="left" if col in ("position", "strategy group") else "right")
    per_leg = {
        g.legs[0][0]: _usd(market, g.currency, g.initial_margin)
        for g in c.standard_result.strategies
        if len(g.legs) == 1
    }
    group_of: dict[str, str] = {}
    for g in c.rules_result.strategies:
        for name, _ in g.legs:
            group_of.setdefault(name, g.kind)
    pm = c.portfolio_result
    pnl = {p.instrument: _usd(market, p.currency, p.binding_pnl) for p in pm.positions}
    for ccy, amount in book.cash.items():
        t.add_row(
            f"{ccy} spot (cash)",
            f"{amount:g}",
            f"{_usd(market, ccy, amount):,.0f}",
            "collateral",
            group_of.get(f"{ccy} balance", "collateral"),
            "-",
        )
    for name, qty in book.net_positions().items():
        inst = market.instrument(name)
        notional = abs(qty) * inst.multiplier * market.index_price(inst.underlying)
        t.add_row(
            name,
            f"{qty:+g}",
            f"{notional:,.0f}",
            f"{per_leg.get(name, 0.0):,.0f}",
            group_of.get(name, "-"),
            f"{pnl.get(name, 0.0):,.0f}",
        )
    t.add_row(
        "[bold]total[/]",
        "",
        "",
        f"[bold]{c.standard.initial_margin_usd:,.0f}[/]",
        f"[bold]{c.strategy.initial_margin_usd:,.0f}[/] (optimal pairing)",
        f"[bold]{c.portfolio.initial_margin_usd:,.0f}[/] (IM, {pm.model})",
    )
    console.print(t)
    console.print("  seed (illustrative): rules-based ~$9,600, portfolio ~$2,200, gain > 75 %")
    console.print(
        f"  engine: strategy-optimal {c.strategy.initial_margin_usd:,.0f}, portfolio {c.portfolio.initial_margin_usd:,.0f}, gain {c.efficiency_gain:.0%}"
    )


def register(app: typer.Typer) -> None:
    """Attach ``demo`` to ``app``."""

    @app.command("demo")
    def demo_cmd() -> None:
        """The seed document's example portfolios, margined on the built-in demo market."""
        snap = demo_market()
        console.print(
            "[bold]portmargin demo[/] - demo market BTC 70,000 / ETH 3,500 USD, "
            f"valuation {snap.valuation_time:%Y-%m-%d %H:%M} UTC, Deribit-style inverse options\n"
            "Requirements are net of the positions' mark-to-market (excess = equity − requirement), "
            "so they compare like with like; docs/seed-comparison.md explains every difference "
            "from the seed's illustrative numbers. Each book is assumed to qualify for portfolio margin.\n"
        )
        models = [load_model("deribit"), load_model("deribit", cross=True), load_model("span16")]
        comps = {
            book.name: compare(book, snap, model=models[0], min_equity_usd=0.0)
            for _, book in seed_portfolios()
        }
        _table_one(snap, comps, models[2])
        console.print()
        _table_two(snap, comps["five_line_book"])
        console.print()
        for name, book in seed_portfolios():
            t = Table(title=name, title_justify="left", header_style="bold")
            for col in (
                "model",
                "ccy",
                "initial",
                "maintenance",
                "equity",
                "IM in USD",
                "binding scenario",
            ):
                t.add_column(
                    col, justify="left" if col in ("model", "ccy", "binding scenario") else "right"
                )
            for mdl in models:
                r = margin(book, snap, mdl)
                w = r.worst_scenario
                binding = (
                    "-"
                    if w is None
                    else f"{w.underlying} {w.price_move:+.1%} vol {w.vol_shock:+.0%}"
                )
                t.add_row(
                    mdl.name + (" (cross)" if mdl.cross and mdl.name == "deribit" else ""),
                    r.currency,
                    fmt_amount(r.initial_margin, r.currency),
                    fmt_amount(r.maintenance_margin, r.currency),
                    fmt_amount(r.equity, r.currency),
                    f"{_usd(snap, r.currency, r.initial_margin):,.0f}",
                    binding,
                )
            console.print(t)
            console.print()
