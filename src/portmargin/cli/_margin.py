"""``portmargin margin``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from portmargin.errors import InputError
from portmargin.methods import load_method
from portmargin.models import MarginResult

__all__ = ["derive_case_dict", "meaning", "register", "render_result"]

_MEANINGS = {
    "scanning_risk": "worst weighted scenario loss relative to current marks",
    "long_option_value_cap": "a long-only book never needs more than its value",
    "roll_shock": "calendar/basis risk: |net delta| per expiry x max(min move, rate x T)",
    "delta_shock": "liquidity add-on for net delta above the venue's USD threshold",
    "collateral_haircut": "IM-only haircut on coin collateral (cross margin)",
    "span_intra_commodity": "calendar spread charge: delta spread between expiry tiers x rate",
    "span_spot": "delivery-tier charge on expiries inside the spot window",
    "span_inter_commodity": "credit for offsetting BTC/ETH deltas: spreads x WFPR x rate",
    "span_short_option_minimum": "top-up to the short option minimum per short contract",
    "tims_product_group": "credit: gains of one class offset others' losses at the same point",
    "tims_minimum_per_contract": "top-up to the minimum per option contract",
    "scan_risk": "largest scenario loss (CME scan risk)",
    "time_risk": "average loss of the two unchanged-price scenarios (decay)",
    "vol_risk": "half the vol-up/vol-down difference at the binding price move",
    "price_risk": "scan risk minus time and vol risk",
    "composite_delta": "probability-weighted delta over 7 price points after look-ahead",
    "price_scan_range": "price scan range (fraction of the underlying)",
    "net_option_value": "long minus short option value (already in equity)",
}


def meaning(name: str) -> str:
    """One line saying what a component or detail named ``name`` is."""
    return _MEANINGS.get(name, "")


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
        im_only = {k for p in result.by_currency for k in p.im_only_components}
        for name, value in result.components.items():
            label = f"{name} (IM only)" if name in im_only else name
            c.add_row(label, fmt_amount(value, ccy), meaning(name))
        c.add_row("[bold]requirement[/]", fmt_amount(sum(result.components.values()), ccy), "")
        console.print(c)
        for pool in result.by_currency:
            for name, value in pool.details.items():
                console.print(
                    f"  {pool.currency} {name}: {fmt_amount(value, pool.currency)}"
                    f"  [dim]{meaning(name)}[/]"
                )
        for ur in result.by_underlying:
            if ur.details or len(ur.components) > 1:
                d = Table(
                    title=f"{ur.underlying} ({ur.currency})",
                    title_justify="left",
                    header_style="bold",
                )
                d.add_column("figure")
                d.add_column(ur.currency, justify="right")
                d.add_column("meaning")
                for name, value in ur.components.items():
                    d.add_row(name, fmt_amount(value, ur.currency), meaning(name))
                for name, value in ur.details.items():
                    d.add_row(f"[dim]{name}[/]", f"{value:,.6g}", meaning(name))
                console.print(d)
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


def derive_case_dict(path: Path, *, allow_offchain_skew: bool = False) -> dict[str, Any]:
    """The ``portmargin margin --format json`` fields of a Derive PMRM_2 case file."""
    from portmargin.derive import evaluate_case, load_case

    case = load_case(path, allow_offchain_skew=allow_offchain_skew)
    res = evaluate_case(case)
    p = case.portfolio
    positions: list[dict[str, Any]] = [
        {
            "instrument": f"option-{o.expiry_seconds:.0f}s-{o.strike:g}-{'CP'[not o.is_call]}",
            "quantity": o.amount,
            "mark_value": None,
        }
        for o in p.options
    ]
    if p.perp_position != 0.0:
        positions.append(
            {
                "instrument": "perpetual",
                "quantity": p.perp_position,
                "mark_value": p.perp_unrealised_pnl + p.perp_unrealised_funding,
            }
        )
    positions += [
        {"instrument": c.name, "quantity": c.amount, "mark_value": c.amount * c.price}
        for c in p.collaterals
    ]
    worst = dict(res.worst_scenario)
    return {
        "model": "derive",
        "model_version": "PMRM_2",
        "currency": res.currency,
        "source": str(path),
        "initial_margin": res.initial_margin,
        "maintenance_margin": res.maintenance_margin,
        "equity": res.equity,
        "initial_excess": res.initial_excess,
        "maintenance_excess": res.maintenance_excess,
        "components": dict(res.components),
        "worst_scenario": worst,
        "scenarios": [dict(s) for s in res.scenarios],
        "positions": positions,
        "by_underlying": {
            "underlying": {
                "currency": res.currency,
                "requirement": res.maintenance_margin,
                "components": dict(res.components),
                "equity_components": dict(res.equity_components),
                "min_span": res.min_span,
                "forward_contingency": res.forward_contingency,
            }
        },
    }


def _derive_case(path: Path, *, fmt: OutputFormat, allow_offchain_skew: bool) -> None:
    data = derive_case_dict(path, allow_offchain_skew=allow_offchain_skew)
    if fmt is OutputFormat.json:
        print_json(data)
        return
    t = Table(title=f"Derive PMRM_2 case {path.name}", title_justify="left", header_style="bold")
    t.add_column("figure")
    t.add_column(data["currency"], justify="right")
    for key in ("initial_margin", "maintenance_margin", "equity", "initial_excess"):
        t.add_row(key, fmt_amount(data[key], data["currency"]))
    t.add_row("maintenance_excess", fmt_amount(data["maintenance_excess"], data["currency"]))
    for key, value in data["components"].items():
        t.add_row(f"  {key}", fmt_amount(value, data["currency"]))
    console.print(t)


def _ccy_of(result: MarginResult, underlying: str) -> str:
    for u in result.by_underlying:
        if u.underlying == underlying:
            return u.currency
    return result.currency


def _signed(value: float, ccy: str) -> str:
    text = fmt_amount(value, ccy)
    return f"[red]{text}[/]" if value < 0 else f"[green]{text}[/]"


def register(app: typer.Typer) -> None:
    """Attach ``margin`` to ``app``."""

    @app.command("margin")
    def margin_cmd(
        portfolio: Path | None = typer.Argument(
            None, help="Portfolio file (.json, .yaml or .csv)."
        ),
        market: Path | None = typer.Option(
            None, "--market", help="Market file (JSON or Deribit CSV); default: demo market."
        ),
        model: str = typer.Option(
            "deribit",
            "--model",
            help="Method: a model (deribit, span, span16, tims), a rule set (deribit-standard, "
            "strategy, cboe), derive, or a model / rule-set TOML path.",
        ),
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
        derive_case: Path | None = typer.Option(
            None, "--derive-case", help="Evaluate a Derive PMRM_2 case file instead."
        ),
        allow_offchain_skew: bool = typer.Option(
            False,
            "--allow-offchain-skew",
            help="With --derive-case: accept skew scenarios the on-chain setter rejects.",
        ),
    ) -> None:
        """Margin one portfolio under one model."""
        if derive_case is not None:
            _derive_case(derive_case, fmt=fmt, allow_offchain_skew=allow_offchain_skew)
            return
        if portfolio is None:
            raise InputError("margin: give a PORTFOLIO file (or --derive-case FILE)")
        snap = get_market(market)
        book = get_portfolio(portfolio)
        method = load_method(model, params_file=params, cross=True if cross else None)
        result = method.margin(book, snap)
        if fmt is OutputFormat.json:
            print_json(result.to_dict())
        else:
            render_result(
                result,
                title=f"{book.name} on {snap.source} @ {result.valuation_time}",
                explain=explain,
            )
