"""``portmargin demo``: classic option strategies margined on the built-in demo market.

For a risk manager: what each strategy needs under the venue's per-leg rules, strategy
rules and portfolio margin, on coin-settled (inverse) and on USDC-settled (linear) options,
beside the figures commonly quoted for them; then a five-line BTC/ETH book position by
position, and every book under three portfolio-margin models. ``docs/seed-comparison.md``
explains each difference.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table

from portmargin.cli._common import console

if TYPE_CHECKING:
    from portmargin.compare import Comparison
    from portmargin.market import MarketSnapshot
    from portmargin.models import MarginResult
    from portmargin.portfolio import Portfolio

__all__ = ["register"]

# Figures commonly quoted for these strategies (illustrative, from an article on portfolio
# margin; docs/seed-comparison.md), shown for comparison only.
_QUOTED = {
    "short_put_spread": ("1,000 (max loss)", "~300-500", "50-70 %"),
    "iron_condor": ("1,000 (width)", "~250-450", "55-75 %"),
    "long_calendar": ("debit + short leg", "net debit", "often > 80 %"),
    "hedged_straddle": ("naked legs + futures", "much lower", "up to 90 %"),
}

_COIN_VS_USDC = (
    "Why coin and USDC differ: a coin-settled put pays (K - S)/S BTC, so a put spread's loss "
    "in BTC grows without bound as BTC falls and strategy rules cannot treat it as limited "
    "to its 1,000 USD width; a USDC-settled put pays K - S dollars, and there the spread's "
    "maximum loss is its 1,000 USD width. The shipped strategy rules are monotone (adding a "
    "short option never lowers the requirement), so a spread is charged at least what its "
    "long leg alone needs, its value: near the money that is more than the width."
)


def _whole(amount: float) -> str:
    """USD to the dollar, without a ``-0``."""
    return f"{0.0 if abs(amount) < 0.5 else amount:,.0f}"


def _usd(result: MarginResult) -> tuple[float, float, float]:
    from portmargin.units import usd_totals

    return usd_totals(result.by_currency)


def _net_credit_usd(result: MarginResult) -> float:
    """Premium received minus premium paid, USD: minus the options' mark value."""
    rates = {p.currency: p.usd_rate for p in result.by_currency}
    return -sum(p.mark_value * rates.get(p.currency, 1.0) for p in result.positions)


def _strategy_table(
    rows: list[tuple[str, str, Comparison, MarginResult]],
) -> Table:
    t = Table(
        title="Four strategies on BTC at 70,000: initial margin, USD, net of the premium received",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("strategy", no_wrap=True)
    t.add_column("settled in", no_wrap=True)
    for col in ("rules before premium", "strategy rules", "PM deribit", "PM span16", "PM saving"):
        t.add_column(col, justify="right")
    for label, settled, c, s16 in rows:
        gross = c.strategy.initial_margin_usd + _net_credit_usd(c.portfolio_result)
        t.add_row(
            label,
            settled,
            _whole(gross),
            _whole(c.strategy.initial_margin_usd),
            _whole(c.portfolio.initial_margin_usd),
            _whole(_usd(s16)[0]),
            f"{c.efficiency_gain:.0%}",
        )
    return t


def _quoted_table() -> Table:
    t = Table(
        title="The same strategies as commonly quoted (illustrative figures, USD)",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for col in ("strategy", "rules-based", "portfolio margin", "saving"):
        t.add_column(col)
    names = {
        "short_put_spread": "short put spread",
        "iron_condor": "iron condor",
        "long_calendar": "long calendar",
        "hedged_straddle": "hedged short straddle",
    }
    for key, (rules, pm, gain) in _QUOTED.items():
        t.add_row(names[key], rules, pm, gain)
    return t


def _five_line_table(market: MarketSnapshot, title: str, book: Portfolio, c: Comparison) -> Table:
    from portmargin.units import usd_rate

    t = Table(title=f"{title}: USD", title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for col in (
        "position",
        "qty",
        "notional",
        "per-leg IM",
        "strategy group",
        "PM: P&L if binding",
    ):
        t.add_column(col, justify="left" if col in ("position", "strategy group") else "right")
    per_leg = {
        g.legs[0][0]: g.initial_margin * usd_rate(g.currency, market)
        for g in c.standard_result.strategies
        if len(g.legs) == 1
    }
    group_of: dict[str, str] = {}
    for g in c.rules_result.strategies:
        for name, _ in g.legs:
            group_of.setdefault(name, g.kind)
    pm = c.portfolio_result
    rates = {p.currency: p.usd_rate for p in pm.by_currency}
    pnl = {p.instrument: p.binding_pnl * rates.get(p.currency, 1.0) for p in pm.positions}
    for ccy, amount in book.cash.items():
        t.add_row(
            f"{ccy} held (cash)",
            f"{amount:.8g}",
            f"{amount * usd_rate(ccy, market):,.0f}",
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
    t.add_section()
    t.add_row(
        "[bold]total initial margin[/]",
        "",
        "",
        f"[bold]{c.standard.initial_margin_usd:,.0f}[/]",
        f"[bold]{c.strategy.initial_margin_usd:,.0f}[/] (optimal)",
        f"[bold]{c.portfolio.initial_margin_usd:,.0f}[/] (PM {pm.model})",
    )
    return t


def _models_table(
    market: MarketSnapshot, books: list[tuple[str, Portfolio]], models: list[tuple[str, object]]
) -> Table:
    from portmargin.cli._margin import pool_views
    from portmargin.margin import margin
    from portmargin.methods import Method

    t = Table(
        title="Every book under three portfolio-margin models: initial margin, USD",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("book", no_wrap=True)
    for label, _ in models:
        t.add_column(label, justify="right")
    t.add_column("equity", justify="right")
    t.add_column("status")
    for _, book in books:
        cells = []
        status = equity = ""
        for i, (_, mdl) in enumerate(models):
            assert isinstance(mdl, Method)
            r = margin(book, market, mdl)
            im, _, eq = _usd(r)
            cells.append(f"{im:,.0f}")
            if i == 0:
                equity = f"{eq:,.0f}"
                worst = {v.status for v in pool_views(r)}
                status = next((s for s in ("liquidation", "margin_call") if s in worst), "healthy")
        t.add_row(book.name, *cells, equity, status)
    return t


def register(app: typer.Typer) -> None:
    """Attach ``demo`` to ``app``."""

    @app.command("demo")
    def demo_cmd() -> None:
        """Classic option strategies and a BTC/ETH book, margined on the demo market."""
        from portmargin.compare import compare
        from portmargin.examples import example_portfolios, linear_portfolios
        from portmargin.margin import margin
        from portmargin.market import demo_market
        from portmargin.models import load_model

        snap = demo_market()
        console.print(
            "[bold]portmargin demo[/]: BTC 70,000 and ETH 3,500 USD at "
            f"{snap.valuation_time:%Y-%m-%d %H:%M} UTC.\n"
            "Options expire 27MAR26 (30 days) and 24APR26 (58 days).\n"
            "Requirements are net of the premium already in the account "
            "(excess = equity - requirement).\n"
            "Each book holds the premium it received and is assumed approved for portfolio "
            "margin.\nUSDC-settled options are valued on the BTC smile of the coin-settled "
            "ones.\n",
            soft_wrap=False,
        )
        deribit, cross, span16 = (
            load_model("deribit"),
            load_model("deribit", cross=True),
            load_model("span16"),
        )
        inverse = example_portfolios()
        linear = linear_portfolios()
        comps = {
            book.name: compare(book, snap, model=deribit, min_equity_usd=0.0)
            for _, book in inverse + linear
        }
        rows = []
        for (title, inv), (_, lin) in zip(inverse[:4], linear, strict=True):
            label = title.split(" (")[0].replace("Short straddle", "Hedged straddle")
            rows.append((label, "BTC (coin)", comps[inv.name], margin(inv, snap, span16)))
            rows.append(("", "USDC", comps[lin.name], margin(lin, snap, span16)))
        console.print(_strategy_table(rows))
        console.print(
            "  rules before premium = strategy rules + net premium received\n"
            "  PM saving = 1 - PM deribit / strategy rules"
        )
        console.print(textwrap.fill(_COIN_VS_USDC, 96, initial_indent="  ", subsequent_indent="  "))
        console.print()
        console.print(_quoted_table())
        title, five = inverse[4]
        console.print(_five_line_table(snap, title.split(" (")[0], five, comps[five.name]))
        c = comps[five.name]
        console.print(
            "  commonly quoted (illustrative): rules-based ~9,600 USD, portfolio ~2,200 USD, "
            "saving > 75 %\n"
            f"  here: strategy rules {c.strategy.initial_margin_usd:,.0f} USD, portfolio "
            f"{c.portfolio.initial_margin_usd:,.0f} USD, saving {c.efficiency_gain:.0%}\n"
        )
        models: list[tuple[str, object]] = [
            ("deribit", deribit),
            ("deribit --cross", cross),
            ("span16", span16),
        ]
        console.print(_models_table(snap, inverse + linear, models))
        console.print("  docs/seed-comparison.md explains each difference from the quoted figures.")
