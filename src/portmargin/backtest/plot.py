"""The back-test chart: each method's margin against the realised loss, exceedances marked.

One panel per method, sharing the time axis: the requirement at ``t`` (line), the realised
loss from ``t`` to ``t + h`` (grey), and the exceedances (red dots at the loss). PNG through
matplotlib's Agg backend; ``.html`` embeds the same figure as inline SVG (no scripts).
"""

from __future__ import annotations

from pathlib import Path

from portmargin._charts import chart_suffix, save_figure
from portmargin.backtest.runner import BacktestResult

__all__ = ["backtest_chart"]


def backtest_chart(result: BacktestResult, path: Path, *, dpi: int = 110) -> None:
    """Write the chart of ``result`` to ``path`` (``.png`` or ``.html``).

    Raises
    ------
    InputError
        If the extension is neither ``.png`` nor ``.html``, or the file cannot be written.
    """
    chart_suffix(path)
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(result.models)
    fig, axes = plt.subplots(n, 1, figsize=(12, 2.6 * n + 0.8), sharex=True, squeeze=False)
    title = (
        f"{result.strategy} on {'+'.join(result.underlyings)}: margin at t vs loss to "
        f"t + {result.horizon_days} d ({result.start} to {result.end})"
    )
    for ax, m in zip(axes[:, 0], result.models, strict=True):
        days = np.array(m.days, dtype="datetime64[D]")
        ax.plot(days, m.loss, color="#9aa5b1", linewidth=0.7, label="realised loss")
        ax.plot(days, m.margin, color="#2f6fde", linewidth=1.1, label="margin")
        hit = m.hits
        if hit.any():
            ax.scatter(days[hit], m.loss[hit], color="#d64545", s=14, zorder=3, label="exceedance")
        ax.axhline(0.0, color="black", linewidth=0.5)
        s = m.stats
        ax.set_title(
            f"{m.model}: {s.exceedances} exceedances in {s.days} days, coverage "
            f"{s.coverage:.2%}, Kupiec p {s.kupiec_pvalue:.2f}, {s.zone}",
            fontsize="small",
            loc="left",
        )
        ax.set_ylabel("USD")
        ax.legend(fontsize="x-small", loc="upper left")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    save_figure(fig, path, title=title, dpi=dpi)
