"""``portmargin margin``: one book under one method, pool by pool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from portmargin.cli._common import (
    CrossOpt,
    ExplainOpt,
    FormatOpt,
    MarketOpt,
    MethodOpt,
    OutputFormat,
    ParamsOpt,
    StrictQuotesOpt,
    console,
    fmt_amount,
    fmt_money,
    get_market,
    get_portfolio,
    print_json,
    refuse_interpolated,
    resolve_book,
)
from portmargin.cli._pools import PoolView, mode_line, pool_table
from portmargin.errors import InputError

if TYPE_CHECKING:
    from portmargin.models import MarginResult
    from portmargin.models.result import PoolResult, ScenarioLine, UnderlyingResult

__all__ = ["margin_json", "meaning", "pool_views", "register", "render_result"]

_MEANINGS = {
    "scanning_risk": "worst weighted scenario loss relative to current marks",
    "long_option_value_cap": "a long-only book never needs more than its value",
    "roll_shock": "calendar/basis risk: |net delta| per expiry x max(min move, rate x T)",
    "delta_shock": "liquidity add-on for net delta above the venue's USD threshold",
    "collateral_haircut": "haircut on coin collateral (cross margin)",
    "span_intra_commodity": "calendar spread charge: delta spread between expiry tiers x rate",
    "span_spot": "delivery-tier charge on expiries inside the spot window",
    "span_inter_commodity": "credit for offsetting BTC/ETH deltas: spreads x WFPR x rate",
    "span_short_option_minimum": "top-up to the short option minimum per short contract",
    "tims_product_group": "credit: gains of one class offset others' losses at the same point",
    "tims_minimum_per_contract": "top-up to the minimum per option contract",
    "strategy_requirement": "sum of the strategies' requirements (gross of premium)",
    "short_option_proceeds": "premium of the short options, already in equity",
    "net_floor": "the requirement never goes below zero",
    "scan_risk": "largest scenario loss (CME scan risk)",
    "time_risk": "average loss of the two unchanged-price scenarios (decay)",
    "vol_risk": "half the vol-up/vol-down difference at the binding price move",
    "price_risk": "scan risk minus time and vol risk",
    "composite_delta": "probability-weighted delta over 7 price points after look-ahead",
    "price_scan_range": "price scan range (fraction of the underlying)",
    "net_option_value": "long minus short option value (already in equity)",
    "span_scanning_spread": "credit: legs' scenario losses offset by rate x gains",
    "net_delta": "net composite delta x DSF of the combined commodity (SPAN file)",
    "weighted_price_risk": "price risk per unit of net delta (inter-commodity credits)",
    "maintenance_factor": "maintenance requirement per unit of SPAN risk (file)",
    "initial_factor": "initial requirement per unit of SPAN risk (file)",
    "var_stress_floor": "top-up to the measure over the stressed period's scenarios",
    "var_liquidity": "square-root-impact add-on for gross options large against open interest",
}

# Units of the explanatory details that are not amounts in the pool currency.
_DETAIL_UNITS = {"composite_delta": "coins", "price_scan_range": "of the price"}


def meaning(name: str) -> str:
    """One line saying what a component or detail named ``name`` is."""
    return _MEANINGS.get(name, "")


def pool_views(result: MarginResult) -> list[PoolView]:
    """The result's pools as the per-pool table shows them (status by the one status rule)."""
    from portmargin.accounts import AccountSettings, classify

    levels = AccountSettings()
    return [
        PoolView(
            p.currency,
            p.equity,
            p.initial_margin,
            p.maintenance_margin,
            classify(p.equity, p.initial_margin, p.maintenance_margin, levels).value,
            p.usd_rate,
        )
        for p in result.by_currency
    ]


def _worst(statuses: list[str]) -> str:
    return next((s for s in ("liquidation", "margin_call") if s in statuses), "healthy")


def margin_json(result: MarginResult, quotes: dict[str, str]) -> dict[str, Any]:
    """The ``margin --format json`` document: the result's contract plus ``positions[].quote``."""
    doc = result.to_dict()
    for line in doc["positions"]:
        if line.get("quote") is None:  # the result's own provenance wins when it has one
            line["quote"] = quotes.get(line["instrument"])
    return doc


def _scenario(w: ScenarioLine, ccy: str) -> str:
    return (
        f"{w.underlying} {w.price_move:+.1%}, vol {w.vol_shock:+.0%} ({w.group}), "
        f"weighted P&L {fmt_money(w.pnl, ccy)}"
    )


def _binding(pool: PoolResult) -> UnderlyingResult | None:
    return max(pool.underlyings, key=lambda u: u.requirement, default=None)


def _components_table(pool: PoolResult, multipliers: tuple[float, float] | None) -> Table:
    """Each component once: one row, a column per underlying when the pool has several."""
    ccy = pool.currency
    unds = list(pool.underlyings) if len(pool.underlyings) > 1 else []
    t = Table(
        title=f"{ccy} pool: how the requirement is built (amounts in {ccy})",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("component")
    for u in unds:
        t.add_column(u.underlying, justify="right")
    t.add_column(f"pool, {ccy}", justify="right")
    t.add_column("meaning", ratio=1)
    im_only = set(pool.im_only_components)
    pad = [""] * len(unds)
    for name, value in pool.components.items():
        per_und = [
            fmt_amount(u.components[name], ccy) if name in u.components else "" for u in unds
        ]
        label = f"{name} (IM only)" if name in im_only else name
        t.add_row(label, *per_und, fmt_amount(value, ccy), meaning(name))
    risk = sum(v for k, v in pool.components.items() if k not in im_only)
    addons = sum(v for k, v in pool.components.items() if k in im_only)
    t.add_section()
    t.add_row("[bold]risk components[/]", *pad, fmt_amount(risk, ccy), "sum of the rows above")
    if multipliers is not None:
        im_mult, mm_mult = multipliers
        t.add_row(
            f"× im_multiplier {im_mult:g}",
            *pad,
            fmt_amount(im_mult * risk, ccy),
            "IM before add-ons",
        )
        if im_only:
            t.add_row(
                "+ IM-only add-ons", *pad, fmt_amount(addons, ccy), ", ".join(sorted(im_only))
            )
        t.add_row(
            "[bold]= initial margin[/]",
            *pad,
            f"[bold]{fmt_amount(pool.initial_margin, ccy)}[/]",
            "",
        )
        t.add_row(
            f"risk × mm_multiplier {mm_mult:g}",
            *pad,
            f"[bold]{fmt_amount(pool.maintenance_margin, ccy)}[/]",
            "= maintenance margin",
        )
    else:
        t.add_row("[bold]initial margin[/]", *pad, fmt_amount(pool.initial_margin, ccy), "")
        t.add_row("[bold]maintenance margin[/]", *pad, fmt_amount(pool.maintenance_margin, ccy), "")
    return t


def _details_table(pool: PoolResult) -> Table | None:
    """Explanatory figures (not added to the requirement), each once."""
    ccy = pool.currency
    rows: list[tuple[str, str, str, str]] = []
    for name, value in pool.details.items():
        rows.append((name, "pool", _detail(name, value, ccy), meaning(name)))
    for u in pool.underlyings:
        for name, value in u.details.items():
            if name == "scan_risk" and value == u.components.get("scanning_risk"):
                continue  # the scanning_risk component already shows it
            rows.append((name, u.underlying, _detail(name, value, ccy), meaning(name)))
    if not rows:
        return None
    t = Table(
        title=f"{ccy} pool: explanatory figures (not added to the requirement)",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for col in ("figure", "of", "value", "meaning"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for row in rows:
        t.add_row(*row)
    return t


def _detail(name: str, value: float, ccy: str) -> str:
    unit = _DETAIL_UNITS.get(name)
    if unit == "of the price":
        return f"{value:.1%} of the price"
    if unit is not None:
        return f"{value:+,.4f} {unit}"
    return fmt_money(value, ccy)


def _positions_table(result: MarginResult, quotes: dict[str, str]) -> Table:
    t = Table(
        title="positions (each in its pool's currency)",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for col in ("instrument", "qty", "mark", "mark value", "delta, coins", "P&L if binding"):
        t.add_column(col, justify="left" if col in ("instrument", "mark") else "right")
    for pl in result.positions:
        t.add_row(
            pl.instrument,
            f"{pl.quantity:g}",
            quotes.get(pl.instrument, ""),
            fmt_money(pl.mark_value, pl.currency),
            f"{pl.delta:+.4f}",
            fmt_money(pl.binding_pnl, pl.currency),
        )
    return t


def render_result(
    result: MarginResult,
    *,
    title: str,
    explain: bool = False,
    cross: bool = False,
    multipliers: tuple[float, float] | None = None,
    quotes: dict[str, str] | None = None,
) -> None:
    """Print a margin result: the per-pool table, each pool's binding scenario, and notes.

    ``multipliers`` (``im_multiplier``, ``mm_multiplier``) of a scenario model make the
    I/M step visible in ``--explain``.
    """
    views = pool_views(result)
    worst = [_worst([v.status for v in views])]
    head = f"{title}: {result.model} {result.model_version}"
    console.print(pool_table(head, [views], cross=cross, worst_status=worst))
    console.print(f"  [dim]{mode_line(cross=cross, pools=len(views))}[/]")
    for pool in result.by_currency:
        top = _binding(pool)
        if top is not None:
            console.print(
                f"  {pool.currency} pool binds at {_scenario(top.worst_scenario, pool.currency)}"
                " (pool currency)"
            )
    if explain:
        for pool in result.by_currency:
            console.print(_components_table(pool, multipliers))
            details = _details_table(pool)
            if details is not None:
                console.print(details)
        if result.positions:
            console.print(_positions_table(result, quotes or {}))
    for note in result.notes:
        console.print(f"  [dim]{note}[/]")


def _derive_case(path: Path, *, fmt: OutputFormat, allow_offchain_skew: bool) -> None:
    """A Derive PMRM_2 case file through the derive method's one result conversion."""
    from portmargin.derive import margin_case

    result = margin_case(path, allow_offchain_skew=allow_offchain_skew)
    if fmt is OutputFormat.json:
        print_json({**result.to_dict(), "source": str(path)})
        return
    ccy = result.currency
    t = Table(
        title=f"Derive PMRM_2 case {path.name} (amounts in {ccy})",
        title_justify="left",
        header_style="bold",
    )
    t.add_column("figure")
    t.add_column(ccy, justify="right")
    for key in (
        "initial_margin",
        "maintenance_margin",
        "equity",
        "initial_excess",
        "maintenance_excess",
    ):
        t.add_row(key, fmt_amount(getattr(result, key), ccy))
    for key, value in result.components.items():
        t.add_row(f"  {key}", fmt_amount(value, ccy))
    console.print(t)
    if result.worst_scenario is not None:
        w = result.worst_scenario
        console.print(
            f"  binding scenario #{w.index} ({w.group}): price {w.price_move:+.1%}, "
            f"P&L {fmt_amount(w.pnl, ccy)} {ccy}"
        )


def register(app: typer.Typer) -> None:
    """Attach ``margin`` to ``app``."""

    @app.command("margin")
    def margin_cmd(
        portfolio: Annotated[
            Path | None,
            typer.Argument(
                help="Portfolio file: .json, .yaml or .csv, or a saved Deribit "
                "private/get_positions response (.json).",
                show_default=False,
            ),
        ] = None,
        market: MarketOpt = None,
        model: MethodOpt = "deribit",
        params: ParamsOpt = None,
        cross: CrossOpt = False,
        fmt: FormatOpt = OutputFormat.table,
        explain: ExplainOpt = False,
        strict_quotes: StrictQuotesOpt = False,
        derive_case: Annotated[
            Path | None,
            typer.Option(
                "--derive-case",
                help="Evaluate a Derive PMRM_2 case file instead.",
                show_default=False,
            ),
        ] = None,
        allow_offchain_skew: Annotated[
            bool,
            typer.Option(
                "--allow-offchain-skew",
                help="With --derive-case: accept skew scenarios the on-chain setter rejects.",
            ),
        ] = False,
        matrix: Annotated[
            bool,
            typer.Option(
                "--matrix",
                help="Print the risk matrix: P&L per price move x vol shock, per pool and "
                "underlying, binding cell marked.",
            ),
        ] = False,
        plot: Annotated[
            Path | None,
            typer.Option(
                "--plot",
                help="Write the risk matrix as a heatmap (.png or .html).",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Margin one portfolio under one method: each pool's equity, IM, MM, excess, status."""
        if derive_case is not None:
            _derive_case(derive_case, fmt=fmt, allow_offchain_skew=allow_offchain_skew)
            return
        if portfolio is None:
            raise InputError("margin: give a PORTFOLIO file (or --derive-case FILE)")
        from portmargin.methods import load_method
        from portmargin.models import MarginModel

        method = load_method(model, params_file=params, cross=True if cross else None)
        snap = get_market(market)
        book = get_portfolio(portfolio)
        if method.name == "spanfile":  # the SPAN file names and prices its own instruments
            quotes: dict[str, str] = {}
        else:
            quotes = resolve_book(book, snap, where=str(portfolio))
            if strict_quotes:
                refuse_interpolated(quotes, snap)
        result = method.margin(book, snap)
        if plot is not None:
            from portmargin.matrix import matrix_chart

            matrix_chart(result, plot, title=f"{book.name}: {result.model} {result.model_version}")
        if fmt is OutputFormat.json:
            print_json(margin_json(result, quotes))
            return
        mdl = method if isinstance(method, MarginModel) else None
        render_result(
            result,
            title=f"{book.name} on {snap.source} @ {result.valuation_time}",
            explain=explain,
            cross=bool(mdl is not None and mdl.cross),
            multipliers=None
            if mdl is None
            else (mdl.params.im_multiplier, mdl.params.mm_multiplier),
            quotes=quotes,
        )
        if matrix:
            from portmargin.matrix import matrix_tables

            console.print(matrix_tables(result))
        if plot is not None:
            console.print(f"  risk matrix written to {plot}")
