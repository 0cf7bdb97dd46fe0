"""``portmargin margin`` and ``portmargin demo``."""

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
from portmargin.margin import margin
from portmargin.market import MarketSnapshot, demo_market
from portmargin.models import MarginResult, load_model
from portmargin.portfolio import Portfolio

__all__ = ["register", "render_result"]

_MEANINGS = {
    "scanning_risk": "worst weighted scenario loss relative to current marks",
    "long_option_value_cap": "a long-only book never needs more than its value",
}


def render_result(result: MarginResult, *, title: str, explain: bool = False) -> None:
    """Print a margin result as rich tables."""
    ccy = result.currency
    t = Table(title=title, title_justify="left", show_header=True, header_style="bold")
    t.add_column("model")
    t.add_column("currency")
    for col in ("initial margin", "maint. margin", "equity", "initial excess", "maint. excess"):
        t.add_column(col, justify="right")
    t.add_row(
        f"{result.model} {result.model_version}",
        ccy,
        fmt_amount(result.initial_margin, ccy),
        fmt_amount(result.maintenance_margin, ccy),
        fmt_amount(result.equity, ccy),
        _signed(result.initial_excess, ccy),
        _signed(result.maintenance_excess, ccy),
    )
    console.print(t)
    if result.worst_scenario is not None:
        w = result.worst_scenario
        console.print(
            f"  binding scenario: {w.underlying} price {w.price_move:+.1%}, vol {w.vol_shock:+.0%}"
            f" ({w.group}), weighted P&L {fmt_amount(w.pnl, _ccy_of(result, w.underlying))}"
        )
    if explain:
        c = Table(title="components", title_justify="left", header_style="bold")
        c.add_column("component")
        c.add_column(ccy, justify="right")
        c.add_column("meaning")
        for name, value in result.components.items():
            c.add_row(name, fmt_amount(value, ccy), _MEANINGS.get(name, ""))
        console.print(c)
        u = Table(title="by underlying", title_justify="left", header_style="bold")
        for col in ("underlying", "currency", "scanning risk", "requirement", "binding scenario"):
            u.add_column(
                col, justify="right" if col in ("scanning risk", "requirement") else "left"
            )
        for ur in result.by_underlying:
            ws = ur.worst_scenario
            u.add_row(
                ur.underlying,
                ur.currency,
                fmt_amount(ur.scanning_risk, ur.currency),
                fmt_amount(ur.requirement, ur.currency),
                f"#{ws.index} {ws.price_move:+.1%} vol {ws.vol_shock:+.0%} {ws.group}",
            )
        console.print(u)
        p = Table(title="positions", title_justify="left", header_style="bold")
        for col in ("instrument", "quantity", "mark value", "delta", "P&L in binding scenario"):
            p.add_column(col, justify="left" if col == "instrument" else "right")
        for pl in result.positions:
            p.add_row(
                pl.instrument,
                f"{pl.quantity:g}",
                f"{fmt_amount(pl.mark_value, pl.currency)} {pl.currency}",
                f"{pl.delta:+.4f}",
                f"{fmt_amount(pl.binding_pnl, pl.currency)} {pl.currency}",
            )
        console.print(p)
    for note in result.notes:
        console.print(f"  [dim]{note}[/]")


def _ccy_of(result: MarginResult, underlying: str) -> str:
    for u in result.by_underlying:
        if u.underlying == underlying:
            return u.currency
    return result.currency


def _signed(value: float, ccy: str) -> str:
    text = fmt_amount(value, ccy)
    return f"[red]{text}[/]" if value < 0 else f"[green]{text}[/]"


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _demo_portfolios() -> list[tuple[str, Portfolio]]:
    from portmargin.examples import seed_portfolios

    return seed_portfolios()


def register(app: typer.Typer) -> None:
    """Attach ``margin`` and ``demo`` to ``app``."""

    @app.command("margin")
    def margin_cmd(
        portfolio: Path = typer.Argument(..., help="Portfolio file (.json, .yaml or .csv)."),
        market: Path | None = typer.Option(
            None, "--market", help="Market file (JSON or Deribit CSV); default: demo market."
        ),
        model: str = typer.Option("deribit", "--model", help="Model name or model TOML path."),
        params: Path | None = typer.Option(
            None, "--params", help="TOML file merged over the model's parameters."
        ),
        cross: bool = typer.Option(
            False, "--cross", help="One USD pool with coin collateral (cross margin)."
        ),
        fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
        explain: bool = typer.Option(
            False, "--explain", help="Show components, per-underlying and per-position figures."
        ),
    ) -> None:
        """Margin one portfolio under one model."""
        snap = get_market(market)
        book = get_portfolio(portfolio)
        mdl = load_model(
            model,
            params_file=None if params is None else str(params),
            cross=True if cross else None,
        )
        result = margin(book, snap, mdl)
        if fmt is OutputFormat.json:
            print_json(result.to_dict())
        else:
            render_result(
                result,
                title=f"{book.name} on {snap.source} @ {result.valuation_time}",
                explain=explain,
            )

    @app.command("demo")
    def demo_cmd() -> None:
        """The seed document's example portfolios, margined on the built-in demo market."""
        snap: MarketSnapshot = demo_market()
        console.print(
            "[bold]portmargin demo[/] - BTC 70,000 / ETH 3,500 USD demo market, "
            f"valuation {snap.valuation_time:%Y-%m-%d %H:%M} UTC\n"
        )
        models = [load_model("deribit"), load_model("deribit", cross=True), load_model("span16")]
        for name, book in _demo_portfolios():
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
                usd = r.initial_margin * (
                    snap.index_price(r.currency) if r.currency in snap.underlyings else 1.0
                )
                w = r.worst_scenario
                binding = (
                    "-"
                    if w is None
                    else f"{w.underlying} {w.price_move:+.1%} vol {w.vol_shock:+.0%}"
                )
                label = mdl.name + (" (cross)" if mdl.cross and mdl.name == "deribit" else "")
                t.add_row(
                    label,
                    r.currency,
                    fmt_amount(r.initial_margin, r.currency),
                    fmt_amount(r.maintenance_margin, r.currency),
                    fmt_amount(r.equity, r.currency),
                    f"{usd:,.0f}",
                    binding,
                )
            console.print(t)
            console.print()
