"""How the shipped history file was derived from the public source files (reproducible).

``python -m portmargin.var.sources DATA_DIR OUT.csv`` rebuilds
``portmargin/var/data/history.csv`` from a folder laid out as::

    DATA_DIR/binance_spot_daily/2017-08-17_to_2026-01-06/{BTC,ETH}USDT_1d.csv
    DATA_DIR/binance_spot_daily/2024-03-17_to_2026-03-16/{BTC,ETH}USDT_1d.csv
    DATA_DIR/deribit_dvol_daily/{btc,eth}_dvol.csv

(the provenance of each file, its public repository and commit, is in
``portmargin/var/data/README.md``). The rules:

* closes: the long Binance file up to 2026-01-05, then the recent one (its 2026-01-06 is a
  full day, the long file's is intraday); the two agree on every other overlapping day,
  which is checked;
* DVOL: the ``close`` of Deribit's daily candle for the same UTC date (index points), empty
  before 2021-03-24, and cut at the last close date (2026-03-16; the last DVOL row, 2026-04-06,
  may be a partial day and lies beyond it anyway).
"""

from __future__ import annotations

import csv
import sys
from datetime import date
from pathlib import Path

import numpy as np

from portmargin.errors import InputError
from portmargin.var.history import History

__all__ = ["derive_history"]

_LONG = "binance_spot_daily/2017-08-17_to_2026-01-06"
_RECENT = "binance_spot_daily/2024-03-17_to_2026-03-16"
_DVOL = "deribit_dvol_daily"
_SWITCH = date(2026, 1, 6)  # first day taken from the recent file


def _closes(path: Path, key: str) -> dict[date, float]:
    out: dict[date, float] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[date.fromisoformat(row[key][:10])] = float(row["close"])
    return out


def derive_history(data_dir: Path, underlyings: tuple[str, ...] = ("BTC", "ETH")) -> History:
    """The shipped history, rebuilt from the source files under ``data_dir``.

    Raises
    ------
    InputError
        If a file is missing or the two Binance files disagree on an overlapping day.
    """
    closes: dict[str, dict[date, float]] = {}
    dvols: dict[str, dict[date, float]] = {}
    for u in underlyings:
        try:
            long = _closes(data_dir / _LONG / f"{u}USDT_1d.csv", "timestamp")
            recent = _closes(data_dir / _RECENT / f"{u}USDT_1d.csv", "open_time")
            dv = _closes(data_dir / _DVOL / f"{u.lower()}_dvol.csv", "date")
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{data_dir}: {u}: cannot read a source file ({exc})") from None
        for d in sorted(set(long) & set(recent)):
            if d < _SWITCH and long[d] != recent[d]:
                raise InputError(f"{data_dir}: {u} {d}: the two Binance files disagree")
        merged = {d: v for d, v in long.items() if d < _SWITCH}
        merged.update({d: v for d, v in recent.items() if d >= _SWITCH})
        closes[u] = merged
        dvols[u] = dv
    days = sorted(set.intersection(*(set(c) for c in closes.values())))
    end = days[-1]
    dates = tuple(d for d in days if d <= end)
    return History(
        dates,
        {u: np.array([closes[u][d] for d in dates]) for u in underlyings},
        {u: np.array([dvols[u].get(d, np.nan) for d in dates]) for u in underlyings},
        str(data_dir),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m portmargin.var.sources DATA_DIR OUT.csv``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m portmargin.var.sources DATA_DIR OUT.csv", file=sys.stderr)
        return 2
    hist = derive_history(Path(args[0]))
    Path(args[1]).write_text(hist.to_csv(), encoding="utf-8")
    print(f"{args[1]}: {len(hist)} days, {hist.first} to {hist.last}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
