"""The risk matrix at the edge: a rich table and a heatmap (PNG or HTML) per pool and underlying.

The data is :meth:`MarginResult.risk_matrices <portmargin.models.result.MarginResult.risk_matrices>`
(also the ``risk_matrix`` key of the JSON contract): the raw scenario P&L (weighted, gains
included, in the pool currency) on a grid of price moves (rows) × vol shocks (columns), the
binding scenario marked. Nothing is recomputed here.

Price moves are fractions of the price (shown in %); vol shocks are the signed shock size at
the pivot expiry (relative models: +0.5 = vol up 50 %). For a result read from a SPAN file the
moves and shocks are in multiples of each contract's price and vol scan ranges.

``.html`` embeds the figure as inline SVG (no scripts), as :mod:`portmargin.plots` does.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from rich.console import Group
from rich.table import Table
from rich.text import Text

from portmargin._charts import chart_suffix, save_figure
from portmargin.errors import InputError
from portmargin.models.result import MarginResult, RiskMatrix

__all__ = ["matrix_chart", "matrix_tables"]


_SPAN_FILE = "spanfile"  # results read from a SPAN file move in multiples of the scan ranges


def _move_label(m: float, *, ranges: bool = False) -> str:
    if ranges:
        return f"{m:+.3g} × PSR"
    return f"{m:+.2%}" if abs(m) < 10 else f"{m:+.0%}"


def _vol_label(v: float, *, ranges: bool = False) -> str:
    return f"vol {v:+.3g} × VSR" if ranges else f"vol {v:+.2f}"


def _title(m: RiskMatrix) -> str:
    return f"{m.underlying} ({m.currency} pool): scenario P&L, price move × vol shock"


def matrix_tables(result: MarginResult) -> Group:
    """One rich table per (pool, underlying): P&L per price move and vol shock.

    Losses are red and gains green; the binding cell is bold and reversed (marked ``*``).
    A result without scenarios (a rules-based method) gives an empty group.
    """
    tables: list[Table] = []
    ranges = result.model == _SPAN_FILE
    for m in result.risk_matrices():
        table = Table(title=_title(m), title_justify="left")
        table.add_column("price move", justify="right")
        for v in m.vol_shocks:
            table.add_column(_vol_label(v, ranges=ranges), justify="right")
        for i, move in enumerate(m.price_moves):
            cells: list[Text] = [Text(_move_label(move, ranges=ranges))]
            for j in range(len(m.vol_shocks)):
                value = m.pnl[i][j]
                if value is None:
                    cells.append(Text(""))
                    continue
                value += 0.0  # no "-0"
                style = "red" if value < 0 else "green" if value > 0 else ""
                label = f"{value:,.6g}"
                if m.binding == (i, j):
                    style = f"bold reverse {style}".strip()
                    label = f"*{label}"
                cells.append(Text(label, style=style))
            table.add_row(*cells)
        tables.append(table)
    return Group(*tables)


def matrix_chart(result: MarginResult, path: Path, *, title: str = "") -> None:
    """Heatmaps of the risk matrices, one panel per (pool, underlying), to ``.png`` / ``.html``.

    Cells are coloured by P&L (red losses, blue gains, symmetric about 0), annotated with
    their value; cells without a scenario are blank; the binding cell is outlined.

    Raises
    ------
    InputError
        If the extension is neither ``.png`` nor ``.html``, the result has no scenarios, or
        the file cannot be written (one line naming the file).
    """
    chart_suffix(path)
    matrices = result.risk_matrices()
    if not matrices:
        raise InputError(f"{path}: {result.model} has no scenario grid to plot")
    n = len(matrices)
    widths = [max(4.0, 1.2 * len(m.vol_shocks) + 2.0) for m in matrices]
    heights = [max(3.0, 0.35 * len(m.price_moves) + 1.5) for m in matrices]
    fig, axes = plt.subplots(1, n, figsize=(sum(widths), max(heights)), squeeze=False)
    ranges = result.model == _SPAN_FILE
    for ax, m in zip(axes[0], matrices, strict=True):
        _heatmap(ax, m, ranges=ranges)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, title=title or "risk matrix")


def _heatmap(ax: Axes, m: RiskMatrix, *, ranges: bool) -> None:
    grid = np.array(
        [[math.nan if v is None else v for v in row] for row in m.pnl], dtype=np.float64
    ).reshape(len(m.price_moves), len(m.vol_shocks))
    finite = grid[np.isfinite(grid)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    scale = scale if scale > 0 else 1.0
    image = np.ma.masked_invalid(grid)
    ax.imshow(image, cmap="RdBu", vmin=-scale, vmax=scale, aspect="auto", origin="lower")
    ax.set_xticks(range(len(m.vol_shocks)), [_vol_label(v, ranges=ranges) for v in m.vol_shocks])
    ax.set_yticks(range(len(m.price_moves)), [_move_label(v, ranges=ranges) for v in m.price_moves])
    ax.set_xlabel("vol shock")
    ax.set_ylabel("price move")
    ax.set_title(f"{m.underlying} ({m.currency})")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:,.3g}", ha="center", va="center", fontsize=7)
    if m.binding is not None:
        i, j = m.binding
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=2.5))
