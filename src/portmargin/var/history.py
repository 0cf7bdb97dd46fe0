r"""Daily history of the underlyings: close prices and Deribit's DVOL implied-vol index.

A :class:`History` is an immutable table, one row per UTC calendar day, with for each
underlying ``U`` its USD close ``S_U`` and (where published) its DVOL level in index points
(``47.5`` = 47.5 % annualised, as Deribit publishes it). It is what the VaR models draw
their scenarios from and what the back-test replays.

The file format (CSV, UTF-8, header first, one row per day, dates strictly increasing and
consecutive)::

    date,btc_close,eth_close,btc_dvol,eth_dvol
    2021-03-24,54342.8,1583.42,85.79,99.26

``<code>_close`` declares underlying ``CODE`` (lower-case in the header, upper-case in the
engine); ``<code>_dvol`` is optional and may be empty on days before the index existed. A
close must be a number in ``[1e-8, 1e9]`` USD; a DVOL in ``[1, 500]`` index points (a value
below 1 is refused: it looks like a decimal, and DVOL is published in points).

Every problem is one :class:`~portmargin.errors.InputError` line naming the file, the row
(1-based, the header is row 1) and the field: ``hist.csv: row 12: btc_close: must be a
number, got 'n/a'``.

The shipped history (:func:`shipped_history`) is derived from Binance daily BTCUSDT and
ETHUSDT closes and Deribit's daily DVOL (``portmargin/var/data/README.md`` gives the public
source repositories and commits): closes 2017-08-17 → 2026-03-16, DVOL from 2021-03-24.

Daily timing: Binance's daily close is the last trade of the UTC day; DVOL's daily close is
read as the same instant (its 2026-02-05 candle closes at the crash-day level, as the spot
does). A row for date ``d`` is therefore the market at ``d + 1 day, 00:00 UTC``
(:meth:`History.close_time`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import numpy as np

from portmargin._types import FloatArray
from portmargin.errors import InputError

__all__ = [
    "DVOL_MAX",
    "DVOL_MIN",
    "History",
    "load_history",
    "parse_history",
    "shipped_history",
]

PRICE_MIN = 1e-8
PRICE_MAX = 1e9
DVOL_MIN = 1.0
"""Smallest DVOL accepted (index points); below it a value looks like a decimal fraction."""
DVOL_MAX = 500.0
_MAX_ROWS = 100_000  # 270 years of days: far above any history, far below memory trouble
_MAX_BYTES = 50_000_000
SHIPPED = "shipped history"


def _frozen(a: FloatArray) -> FloatArray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, slots=True)
class History:
    """Daily closes and DVOL levels of some underlyings (see the module docstring).

    Attributes
    ----------
    dates
        Consecutive UTC calendar days, oldest first.
    closes
        ``U → (n_days,)`` USD closes (finite, > 0), read-only.
    dvol
        ``U → (n_days,)`` DVOL in index points, ``nan`` where not published, read-only.
        An underlying without any DVOL column is absent.
    source
        Where the history came from (a path or ``"shipped history"``), for reports.
    """

    dates: tuple[date, ...]
    closes: Mapping[str, FloatArray]
    dvol: Mapping[str, FloatArray]
    source: str = "memory"
    _index: Mapping[date, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.dates)
        if n < 2:
            raise InputError(f"{self.source}: a history needs at least 2 days, got {n}")
        for i in range(1, n):
            if self.dates[i] - self.dates[i - 1] != timedelta(days=1):
                raise InputError(
                    f"{self.source}: dates must be consecutive days, {self.dates[i - 1]} is "
                    f"followed by {self.dates[i]}"
                )
        closes = {u: _frozen(np.array(v, dtype=np.float64)) for u, v in self.closes.items()}
        dvol = {u: _frozen(np.array(v, dtype=np.float64)) for u, v in self.dvol.items()}
        for u, a in [*closes.items(), *dvol.items()]:
            if a.shape != (n,):
                raise InputError(f"{self.source}: {u}: {a.shape[0]} values for {n} dates")
        if not closes:
            raise InputError(f"{self.source}: no underlying (columns <code>_close)")
        object.__setattr__(self, "dates", tuple(self.dates))
        object.__setattr__(self, "closes", MappingProxyType(closes))
        object.__setattr__(self, "dvol", MappingProxyType(dvol))
        object.__setattr__(
            self, "_index", MappingProxyType({d: i for i, d in enumerate(self.dates)})
        )

    def __len__(self) -> int:
        return len(self.dates)

    @property
    def underlyings(self) -> tuple[str, ...]:
        """The underlyings, in column order."""
        return tuple(self.closes)

    @property
    def first(self) -> date:
        """The first day."""
        return self.dates[0]

    @property
    def last(self) -> date:
        """The last day."""
        return self.dates[-1]

    def index(self, day: date) -> int:
        """Row of ``day``.

        Raises
        ------
        InputError
            If ``day`` is outside the history.
        """
        i = self._index.get(day)
        if i is None:
            raise InputError(
                f"{self.source}: {day} is outside the history ({self.first} to {self.last})"
            )
        return i

    def has(self, day: date) -> bool:
        """True if ``day`` is a row of the history."""
        return day in self._index

    def dvol_start(self, underlying: str) -> date | None:
        """First day from which ``underlying``'s DVOL is published without a gap (or None)."""
        v = self.dvol.get(underlying)
        if v is None:
            return None
        ok = np.isfinite(v)
        if not ok[-1]:
            return None
        gaps = np.flatnonzero(~ok)
        start = int(gaps[-1]) + 1 if gaps.size else 0
        return self.dates[start]

    def joint_start(self, underlyings: Sequence[str]) -> date:
        """First day from which every one of ``underlyings`` has a close and a DVOL.

        Raises
        ------
        InputError
            If an underlying is missing or has no DVOL up to the last day.
        """
        starts = []
        for u in underlyings:
            self.require(u)
            s = self.dvol_start(u)
            if s is None:
                raise InputError(f"{self.source}: {u}: no DVOL up to the last day {self.last}")
            starts.append(s)
        return max(starts)

    def require(self, underlying: str) -> None:
        """Raise :class:`InputError` unless ``underlying`` has closes in this history."""
        if underlying not in self.closes:
            raise InputError(
                f"{self.source}: no underlying {underlying!r} (has: {', '.join(self.closes)})"
            )

    def log_returns(self, underlying: str) -> FloatArray:
        """Daily log returns ``r_t = ln(S_t / S_{t−1})``, ``nan`` at row 0."""
        s = self.closes[underlying]
        out = np.full(s.shape, np.nan)
        out[1:] = np.log(s[1:] / s[:-1])
        return out

    def dvol_log_changes(self, underlying: str) -> FloatArray:
        """Daily ``ln(DVOL_t / DVOL_{t−1})``, ``nan`` where either day has no DVOL."""
        v = self.dvol[underlying]
        out = np.full(v.shape, np.nan)
        out[1:] = np.log(v[1:] / v[:-1])
        return out

    @staticmethod
    def close_time(day: date) -> datetime:
        """The instant a row stands for: the end of UTC day ``day`` (``day + 1``, 00:00 UTC)."""
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=UTC)

    def between(self, start: date | None, end: date | None) -> History:
        """The rows from ``start`` to ``end`` inclusive (``None``: the history's own ends)."""
        a = 0 if start is None else self.index(start)
        b = len(self) - 1 if end is None else self.index(end)
        if b - a < 1:
            raise InputError(f"{self.source}: {start} to {end} holds fewer than 2 days")
        return History(
            self.dates[a : b + 1],
            {u: v[a : b + 1] for u, v in self.closes.items()},
            {u: v[a : b + 1] for u, v in self.dvol.items()},
            self.source,
        )

    def to_csv(self) -> str:
        """The history in the file format of the module docstring (DVOL empty where nan)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        unds = self.underlyings
        w.writerow(
            ["date"]
            + [f"{u.lower()}_close" for u in unds]
            + [f"{u.lower()}_dvol" for u in unds if u in self.dvol]
        )
        for i, d in enumerate(self.dates):
            row = [d.isoformat()] + [_num(self.closes[u][i]) for u in unds]
            row += [_num(self.dvol[u][i]) for u in unds if u in self.dvol]
            w.writerow(row)
        return buf.getvalue()


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else repr(float(x))


def parse_history(text: str, source: str) -> History:
    """Parse the CSV format of the module docstring.

    Raises
    ------
    InputError
        One line: ``<source>: row <n>: <field>: <reason>`` (or without the row for a bad
        header).
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            f"{source}: empty file (expected a header date,<code>_close,...)"
        ) from None
    except csv.Error as exc:
        raise InputError(f"{source}: row 1: not CSV ({exc})") from None
    cols = [h.strip() for h in header]
    if not cols or cols[0].lower() != "date":
        raise InputError(f"{source}: row 1: the first column must be 'date', got {cols[0]!r}")
    closes: dict[str, int] = {}
    dvols: dict[str, int] = {}
    for j, name in enumerate(cols[1:], start=1):
        low = name.lower()
        code, _, kind = low.rpartition("_")
        if kind not in ("close", "dvol") or not code or not code.replace("_", "").isalnum():
            raise InputError(
                f"{source}: row 1: column {name!r}: expected <code>_close or <code>_dvol"
            )
        target = closes if kind == "close" else dvols
        if code.upper() in target:
            raise InputError(f"{source}: row 1: column {name!r} appears twice")
        target[code.upper()] = j
    for u in dvols:
        if u not in closes:
            raise InputError(f"{source}: row 1: column {u.lower()}_dvol has no {u.lower()}_close")
    if not closes:
        raise InputError(f"{source}: row 1: no <code>_close column")
    dates: list[date] = []
    values: dict[str, list[float]] = {u: [] for u in closes}
    dv: dict[str, list[float]] = {u: [] for u in dvols}
    row_no = 1
    try:
        for row in reader:
            row_no += 1
            if not row or all(not c.strip() for c in row):
                continue
            if len(dates) >= _MAX_ROWS:
                raise InputError(f"{source}: more than {_MAX_ROWS} rows")
            if len(row) != len(cols):
                raise InputError(
                    f"{source}: row {row_no}: {len(row)} fields, the header has {len(cols)}"
                )
            cell = row[0].strip()
            try:
                d = date.fromisoformat(cell)
            except ValueError:
                raise InputError(
                    f"{source}: row {row_no}: date: must be YYYY-MM-DD, got {cell!r}"
                ) from None
            if dates and d != dates[-1] + timedelta(days=1):
                why = (
                    "repeated"
                    if d == dates[-1]
                    else (
                        "before the previous row" if d < dates[-1] else f"a gap after {dates[-1]}"
                    )
                )
                raise InputError(
                    f"{source}: row {row_no}: date: {d} is {why} (one row per consecutive day, "
                    "oldest first)"
                )
            dates.append(d)
            for u, j in closes.items():
                values[u].append(
                    _value(row[j], source, row_no, cols[j], PRICE_MIN, PRICE_MAX, empty=False)
                )
            for u, j in dvols.items():
                dv[u].append(
                    _value(row[j], source, row_no, cols[j], DVOL_MIN, DVOL_MAX, empty=True)
                )
    except csv.Error as exc:
        raise InputError(f"{source}: row {row_no}: not CSV ({exc})") from None
    return History(
        tuple(dates),
        {u: np.asarray(v, dtype=np.float64) for u, v in values.items()},
        {u: np.asarray(v, dtype=np.float64) for u, v in dv.items()},
        source,
    )


def _value(
    cell: str, source: str, row: int, col: str, lo: float, hi: float, *, empty: bool
) -> float:
    text = cell.strip()
    if not text:
        if empty:
            return math.nan
        raise InputError(f"{source}: row {row}: {col}: required, got an empty field")
    try:
        x = float(text)
    except ValueError:
        raise InputError(f"{source}: row {row}: {col}: must be a number, got {text!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{source}: row {row}: {col}: must be finite, got {text!r}")
    if x < lo or x > hi:
        hint = ""
        if col.lower().endswith("_dvol") and 0 < x < lo:
            hint = " (DVOL is in index points: 47.5 means 47.5 %)"
        raise InputError(
            f"{source}: row {row}: {col}: must be in [{lo:g}, {hi:g}], got {x:g}{hint}"
        )
    return x


def load_history(path: str | Path | None = None) -> History:
    """The history at ``path`` (CSV, module docstring), or the shipped one for ``None``.

    Raises
    ------
    InputError
        For a file that cannot be read or parsed, one line naming the file, row and field.
    """
    if path is None:
        return shipped_history()
    p = Path(path)
    try:
        if p.stat().st_size > _MAX_BYTES:
            raise InputError(f"{p}: larger than {_MAX_BYTES // 1_000_000} MB")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, expected a CSV file") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.__class__.__name__})") from None
    return parse_history(text, str(p))


_SHIPPED: list[History] = []


def shipped_history() -> History:
    """The history shipped with the package (``portmargin/var/data/history.csv``), cached."""
    if not _SHIPPED:
        text = resources.files("portmargin.var").joinpath("data", "history.csv")
        _SHIPPED.append(parse_history(text.read_text(encoding="utf-8"), SHIPPED))
    return _SHIPPED[0]
