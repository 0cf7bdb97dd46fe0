"""Charts at the edge: the three-regime comparison and the portfolio's scenario P&L.

PNG via matplotlib's Agg backend; ``.html`` embeds the same figure as inline SVG so it
opens in any browser without scripts.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from portmargin._charts import chart_suffix, save_figure
from portmargin.compare import Comparison

__all__ = ["comparison_chart"]


def comparison_chart(c: Comparison, path: Path, *, title: str) -> None:
    """Bars per regime (initial margin, USD) and the portfolio's P&L across the scenario grid.

    Raises
    ------
    InputError
        If the extension is neither ``.png`` nor ``.html``, or the file cannot be written
        (a missing directory, no permission): one line naming the path.
    """
    chart_suffix(path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    regimes = [c.standard, c.strategy, c.portfolio]
    ax1.bar(
        [r.regime for r in regimes],
        [r.initial_margin_usd for r in regimes],
        color=["#9aa5b1", "#627d98", "#2f6fde"],
    )
    for i, r in enumerate(regimes):
        ax1.annotate(
            f"{r.initial_margin_usd:,.0f}", (i, r.initial_margin_usd), ha="center", va="bottom"
        )
    ax1.set_ylabel("initial margin (USD)")
    ax1.set_title(f"{title}: efficiency gain {c.efficiency_gain:.1%}")
    result = c.portfolio_result
    for und in result.by_underlying:
        std = [s for s in und.scenarios if s.group != "extended"]
        for vol in sorted({s.vol_shock for s in std}):
            # the raw P&L, gains included (the aggregated one the model charges on clips them)
            pts = sorted((s.price_move, s.raw_pnl) for s in std if s.vol_shock == vol)
            ax2.plot(
                [p[0] * 100 for p in pts],
                [p[1] for p in pts],
                marker="o",
                label=f"{und.underlying} vol {vol:+.0%}",
            )
    ax2.axhline(0.0, color="black", linewidth=0.8)
    ax2.set_xlabel("price move (%)")
    ccy = result.by_underlying[0].currency if result.by_underlying else result.currency
    ax2.set_ylabel(f"weighted scenario P&L, gains included ({ccy})")
    ax2.set_title(f"{result.model}: portfolio P&L across the scenario grid")
    if result.by_underlying:
        ax2.legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, path, title=title)
