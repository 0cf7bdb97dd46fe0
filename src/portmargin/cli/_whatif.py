"""``portmargin whatif``: pre-trade check of a proposed trade against a portfolio.

The decision is the accounts' one pre-trade rule (:func:`portmargin.accounts.pre_trade`),
pool by pool; the table shows every pool before → after, the gate (approval and equity
test) and the reason, which names the pool that decides. The JSON contract is in
``docs/json.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
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
    get_market,
    get_portfolio,
    print_json,
    refuse_interpolated,
    resolve_book,
)
from portmargin.cli._pools import PoolView, mode_line, pool_table
from portmargin.errors import ParameterError
from portmargin.io.limits import check_quantity

if TYPE_CHECKING:
    from portmargin.accounts import AccountMargin, WhatIf
    from portmargin.models import MarginModel

__all__ = ["gate_dict", "gate_line", "load_portfolio_model", "register", "whatif_json"]

_DEFAULT_MIN_EQUITY = 100_000.0  # portmargin.accounts.DEFAULT_MIN_PM_EQUITY_USD (a test pins it)


def load_portfolio_model(name: str, *, params: str | None, cross: bool) -> MarginModel:
    """The scenario model ``name`` (any portfolio-margin method), or a one-line refusal.

    Raises
    ------
    ParameterError
        For a rule set or another method that is not a portfolio-margin model.
    """
    from portmargin.methods import load_method
    from portmargin.models import MarginModel

    method = load_method(name, params_file=params, cross=True if cross else None)
    if not isinstance(method, MarginModel):
        raise ParameterError(
            f"--model {name}: whatif needs a portfolio-margin model (deribit, span, span16, "
            f"tims or a model TOML file); {method.name} is a {method.family} method, and an "
            "account that does not qualify is margined under the strategy rules anyway"
        )
    return method


def gate_dict(m: AccountMargin, min_equity_usd: float) -> dict[str, Any]:
    """The qualification gate as it decided: approval, equity test, method."""
    return {
        "approved": m.approved,
        "min_equity_usd": min_equity_usd,
        "equity_after_haircuts_usd": m.equity_usd,
        "equity_test": m.equity_usd >= min_equity_usd,
        "qualified": m.eligible,
        "method": m.method,
    }


def gate_line(m: AccountMargin, min_equity_usd: float) -> str:
    """One sentence: approval, the equity test, and the method applied."""
    approved = "approved" if m.approved else "[yellow]not approved[/]"
    test = ">=" if m.equity_usd >= min_equity_usd else "[yellow]<[/]"
    method = "portfolio margin" if m.method == "portfolio" else "strategy rules"
    return (
        f"gate: {approved}; equity after haircuts {m.equity_usd:,.2f} USD {test} "
        f"{min_equity_usd:,.2f} USD -> {method}"
    )


def whatif_json(res: WhatIf, min_equity_usd: float) -> dict[str, Any]:
    """``portmargin whatif --format json`` (``docs/json.md``)."""
    doc = res.to_dict()
    doc["qualification"] = gate_dict(res.before, min_equity_usd)
    return doc


def _views(m: AccountMargin) -> list[PoolView]:
    return [
        PoolView(
            p.currency,
            p.equity,
            p.initial_margin,
            p.maintenance_margin,
            p.status.value,
            p.usd_rate,
            p.haircut,
        )
        for p in m.pools
    ]


def register(app: typer.Typer) -> None:
    """Attach ``whatif`` to ``app``."""

    @app.command("whatif")
    def whatif_cmd(
        portfolio: PortfolioArg,
        trade: Annotated[
            list[str],
            typer.Option(
                "--trade",
                help="INSTRUMENT:QTY, repeatable (e.g. BTC-27MAR26-70000-P:-1).",
                show_default=False,
            ),
        ],
        market: MarketOpt = None,
        model: ModelOpt = "deribit",
        params: ParamsOpt = None,
        cross: CrossOpt = False,
        min_equity: MinEquityOpt = _DEFAULT_MIN_EQUITY,
        pm_approved: PmApprovedOpt = True,
        strict_quotes: StrictQuotesOpt = False,
        attribution: Annotated[
            bool,
            typer.Option(
                "--attribution", help="Also attribute the post-trade margin to positions."
            ),
        ] = False,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Incremental margin of a proposed trade, pool by pool, without changing the book."""
        from portmargin.accounts import (
            Account,
            AccountSettings,
            attribute,
            parse_trade,
            what_if,
        )
        from portmargin.portfolio import Portfolio

        snap = get_market(market)
        book = get_portfolio(portfolio)
        mdl = load_portfolio_model(
            model, params=None if params is None else str(params), cross=cross
        )
        trades: dict[str, float] = {}
        for text in trade:
            name, qty = parse_trade(text)
            trades[name] = trades.get(name, 0.0) + qty
            check_quantity(trades[name], f"--trade {name}: net quantity")
        quotes = resolve_book(book, snap, where=str(portfolio))
        quotes.update(resolve_book(Portfolio.of(trades), snap, where="--trade"))
        if strict_quotes:
            refuse_interpolated(quotes, snap)
        settings = AccountSettings(min_pm_equity_usd=min_equity)
        account = Account.from_portfolio(book, pm_approved=pm_approved)
        res = what_if(account, trades, snap, mdl, settings)
        attr = None
        if attribution:
            after = account.with_trades(res.trades, {}).portfolio()
            attr = attribute(after, snap, mdl)
        if fmt is OutputFormat.json:
            doc = whatif_json(res, min_equity)
            if attr is not None:
                doc["attribution"] = attr.to_dict()
            print_json(doc)
            return
        cross_mode = res.before.mode == "cross"
        legs = ", ".join(f"{q:+g} {n}" for n, q in res.trades.items())
        title = (
            f"what-if {legs} on {book.name} ({snap.source} @ {res.before.valuation_time}): "
            "before → after"
        )
        console.print(
            pool_table(
                title,
                [_views(res.before), _views(res.after)],
                cross=cross_mode,
                worst_status=[res.before.status.value, res.after.status.value],
            )
        )
        pools = len({p.currency for p in (*res.before.pools, *res.after.pools)})
        console.print(f"  [dim]{mode_line(cross=cross_mode, pools=pools)}[/]")
        console.print(f"  {gate_line(res.before, min_equity)}")
        verdict = "[green]ACCEPTED[/]" if res.accepted else "[red]REJECTED[/]"
        console.print(f"  {verdict}: {escape(res.reason)}")
        console.print(
            f"  incremental IM {res.incremental_im_usd:+,.2f} USD "
            f"({'all pools, ' if pools > 1 else ''}at each pool's index)"
        )
        if attr is not None:
            p = Table(
                title="attribution after the trade", title_justify="left", box=box.SIMPLE_HEAD
            )
            for col in ("instrument", "qty", "binding P&L", "share", "marginal IM, USD"):
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
