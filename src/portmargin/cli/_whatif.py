"""``portmargin whatif``: pre-trade check of a proposed trade against a portfolio."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from portmargin.accounts import (
    Account,
    AccountMargin,
    AccountSettings,
    attribute,
    parse_trade,
    what_if,
)
from portmargin.cli._common import OutputFormat, console, get_market, get_portfolio, print_json
from portmargin.models import load_model

__all__ = ["register"]


def _row(t: Table, label: str, m: AccountMargin) -> None:
    t.add_row(
        label,
        m.method,
        f"{m.initial_margin_usd:,.2f}",
        f"{m.maintenance_margin_usd:,.2f}",
        f"{m.equity_usd:,.2f}",
        f"{m.excess_usd:,.2f}",
        m.status.value,
    )


def register(app: typer.Typer) -> None:
    """Attach ``whatif`` to ``app``."""

    @app.command("whatif")
    def whatif_cmd(
        portfolio: Path = typer.Argument(..., help="Portfolio file (.json, .yaml or .csv)."),
        trade: list[str] = typer.Option(
            ..., "--trade", help="INSTRUMENT:QTY, repeatable (e.g. BTC-27MAR26-70000-P:-1)."
        ),
        market: Path | None = typer.Option(
            None, "--market", help="Market file (JSON or Deribit CSV); default: demo market."
        ),
        model: str = typer.Option("deribit", "--model", help="Model name or model TOML path."),
        min_equity: float = typer.Option(
            AccountSettings().min_pm_equity_usd,
            "--min-equity",
            help="Portfolio-margin qualification gate (USD equity).",
        ),
        attribution: bool = typer.Option(
            False, "--attribution", help="Also attribute the post-trade margin to positions."
        ),
        fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    ) -> None:
        """Incremental margin of a proposed trade, without changing the portfolio."""
        snap = get_market(market)
        book = get_portfolio(portfolio)
        mdl = load_model(model)
        trades: dict[str, float] = {}
        for text in trade:
            name, qty = parse_trade(text)
            trades[name] = trades.get(name, 0.0) + qty
        settings = AccountSettings(min_pm_equity_usd=min_equity)
        account = Account.from_portfolio(book)
        res = what_if(account, trades, snap, mdl, settings)
        attr = None
        if attribution:
            after = account.with_trades(res.trades, {}).portfolio()
            attr = attribute(after, snap, mdl)
        if fmt is OutputFormat.json:
            doc = res.to_dict()
            if attr is not None:
                doc["attribution"] = attr.to_dict()
            print_json(doc)
            return
        t = Table(
            title=f"what-if on {book.name} ({snap.source} @ {res.before.valuation_time}), USD",
            title_justify="left",
            header_style="bold",
        )
        for col in ("", "method", "IM", "MM", "equity", "excess", "status"):
            t.add_column(col, justify="left" if col in ("", "method", "status") else "right")
        _row(t, "before", res.before)
        _row(t, "after", res.after)
        console.print(t)
        verdict = "[green]ACCEPTED[/]" if res.accepted else "[red]REJECTED[/]"
        console.print(
            f"  {verdict}: {res.reason}; incremental IM {res.incremental_im_usd:+,.2f} USD"
        )
        if attr is not None:
            p = Table(title="attribution after the trade", title_justify="left")
            for col in ("instrument", "quantity", "binding P&L", "share", "marginal IM (USD)"):
                p.add_column(col, justify="left" if col == "instrument" else "right")
            for pa in attr.positions:
                p.add_row(
                    pa.instrument,
                    f"{pa.quantity:g}",
                    f"{pa.binding_scenario_pnl:,.6f} {pa.currency}",
                    f"{pa.binding_share:.1%}",
                    f"{pa.marginal_im_usd:,.2f}",
                )
            console.print(p)
