"""The per-pool table of ``margin`` and ``whatif``: one column per margin pool, units on each cell.

Rows are the figures a risk manager decides on (equity, IM, MM, excess, status, the pool's
USD value); columns are the pools, each in its own currency, then a USD total. The total is
the account's figure only in cross mode (one USD pool); in segregated mode a surplus in one
pool never covers another, so the total column is labelled *informational*.

``whatif`` shows ``before → after`` in each cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from portmargin.cli._common import fmt_amount

__all__ = ["PoolView", "mode_line", "pool_table"]

_STATUS_STYLE = {"healthy": "green", "margin_call": "yellow", "liquidation": "red"}


@dataclass(frozen=True, slots=True)
class PoolView:
    """The figures of one pool (pool currency) as a table shows them."""

    currency: str
    equity: float
    initial_margin: float
    maintenance_margin: float
    status: str
    usd_rate: float
    haircut: float | None = None

    @property
    def excess(self) -> float:
        """Equity − IM, pool currency."""
        return self.equity - self.initial_margin


def _status(text: str) -> str:
    style = _STATUS_STYLE.get(text)
    return text if style is None else f"[{style}]{text}[/]"


def _money(value: float, ccy: str) -> str:
    text = fmt_amount(value, ccy)
    return f"[red]{text}[/]" if value < 0 else text


def _cell(values: Sequence[float], ccy: str) -> str:
    """``before → after`` (or one value); the unit is in the column header or the row label."""
    return " → ".join(_money(v, ccy) for v in values)


def _total(pools: Sequence[PoolView], attr: str) -> float:
    return sum(float(getattr(p, attr)) * p.usd_rate for p in pools)


def mode_line(*, cross: bool, pools: int) -> str:
    """One sentence on what the USD total means in this mode."""
    if cross:
        return "cross margin: one USD pool; coin balances count at their USD value"
    if pools > 1:
        return "segregated pools: a surplus in one never covers another; the USD total is informational"
    return "segregated margin: one pool"


def pool_table(
    title: str,
    sides: Sequence[Sequence[PoolView]],
    *,
    cross: bool,
    worst_status: Sequence[str] = (),
) -> Group:
    """The title line and a table with one column per pool (and a USD total when there are several).

    ``sides`` is ``[pools]`` for one state, ``[before, after]`` for a what-if (a pool that
    exists on one side only counts as zero on the other). ``worst_status`` is the account's
    status per side, shown in the total column.
    """
    names = list(dict.fromkeys(p.currency for side in sides for p in side))
    by_side = [{p.currency: p for p in side} for side in sides]
    t = Table(header_style="bold", box=box.SIMPLE_HEAD)
    t.add_column("figure", no_wrap=True)
    for ccy in names:
        t.add_column(f"{ccy} pool, {ccy}", justify="right")
    show_total = len(names) > 1
    if show_total:
        t.add_column("total, USD" if cross else "total, USD\n(informational)", justify="right")

    def pools_of(ccy: str) -> list[PoolView]:
        out = []
        for side in by_side:
            p = side.get(ccy)
            out.append(p if p is not None else PoolView(ccy, 0.0, 0.0, 0.0, "-", 1.0))
        return out

    rows: list[tuple[str, str]] = [
        ("equity", "equity"),
        ("initial margin (IM)", "initial_margin"),
        ("maintenance margin (MM)", "maintenance_margin"),
        ("excess = equity − IM", "excess"),
    ]
    has_haircut = any(p.haircut is not None for side in sides for p in side)
    for label, attr in rows:
        cells = [_cell([getattr(p, attr) for p in pools_of(c)], c) for c in names]
        if show_total:
            cells.append(_cell([_total(side, attr) for side in sides], "USD"))
        t.add_row(label, *cells)
    if has_haircut:
        cells = [_cell([p.haircut or 0.0 for p in pools_of(c)], c) for c in names]
        if show_total:
            cells.append(_cell([_total_haircut(side) for side in sides], "USD"))
        t.add_row("haircut (not in equity)", *cells)
    status_cells = [" → ".join(_status(p.status) for p in pools_of(c)) for c in names]
    if show_total:
        status_cells.append(" → ".join(_status(s) for s in worst_status))
    t.add_row("status (total: worst)" if show_total and worst_status else "status", *status_cells)
    if any(c != "USD" for c in names):
        usd_cells = [_cell([p.excess * p.usd_rate for p in pools_of(c)], "USD") for c in names]
        if show_total:
            usd_cells.append("")
        t.add_row("excess, in USD", *usd_cells)
        rate_cells = ["" if c == "USD" else f"{pools_of(c)[-1].usd_rate:,.2f} USD" for c in names]
        if show_total:
            rate_cells.append("")
        t.add_row("USD per unit", *rate_cells)
    return Group(Text.from_markup(f"[bold]{title}[/]"), t)


def _total_haircut(pools: Sequence[PoolView]) -> float:
    return sum((p.haircut or 0.0) * p.usd_rate for p in pools)
