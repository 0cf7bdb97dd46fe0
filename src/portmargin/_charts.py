"""Writing a chart atomically: PNG, or HTML embedding the figure as inline SVG.

The HTML opens in any browser without scripts. The file is written beside the target and
renamed, so a failed write leaves nothing half-written.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from portmargin.errors import InputError

__all__ = ["chart_suffix", "save_figure"]


def chart_suffix(path: Path) -> str:
    """``".png"`` or ``".html"``, the lower-cased extension of ``path``.

    Raises
    ------
    InputError
        Any other extension: one line naming the path.
    """
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html"):
        raise InputError(f"{path}: --plot needs a .png or .html file")
    return suffix


def save_figure(fig: Any, path: Path, *, title: str, dpi: int = 120) -> None:
    """Write the matplotlib figure ``fig`` to ``path`` atomically and close it.

    Raises
    ------
    InputError
        If the file cannot be written (a missing directory, no permission): one line naming
        the path.
    """
    import matplotlib.pyplot as plt

    suffix = chart_suffix(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if suffix == ".png":
            fig.savefig(tmp, format="png", dpi=dpi)
        else:
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
            head = (
                "<!doctype html><html><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title></head>"
            )
            tmp.write_text(f"{head}<body>{buf.getvalue()}</body></html>", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{path}: cannot write the chart ({reason})") from None
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
