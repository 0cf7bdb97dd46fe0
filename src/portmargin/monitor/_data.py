r"""The crash-day data shipped in the package: one compact file derived from the raw ones.

``portmargin monitor`` replays the 2026-02-04/05 Deribit chains by default
(:class:`~portmargin.monitor.ReplayFeed`); an installed package carries the numbers the replay
reads in one file, ``portmargin/monitor/data/crash_day.csv.gz`` (provenance in the folder's
``README.md``). Each row names the raw file it comes from (``file``) and carries:

* for the two option-chain snapshots, every row, reduced to the columns the chain loader
  reads (``timestamp, instrument_name, underlying, underlying_name, mark_price,
  implied_volatility, index_price``), the cells copied as text;
* for the perpetual price series, its columns ``snapshot_file, obs_datetime, coin,
  instrument_name, perp_futures_mark_price``, from the last observation at or before the
  first snapshot to the first at or after the second (the replay interpolates between
  consecutive observations, so rows outside that span never enter it).

The file is gzip with mtime 0, so :func:`derive_crash_day` rebuilds it byte for byte. Since
every number is the raw file's own text, :func:`packaged_crash_day` returns the same snapshots
as :func:`~portmargin.io.load_market` on the raw files, and the replay is the same
(``tests/monitor/test_packaged_data.py``).
"""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

from portmargin.io import load_market
from portmargin.market.snapshot import MarketSnapshot

__all__ = [
    "CHAIN_COLUMNS",
    "COLUMNS",
    "PACKAGED_FILE",
    "PACKAGED_FILES",
    "PERP_COLUMNS",
    "derive_crash_day",
    "packaged_crash_day",
    "packaged_dir",
]

CHAINS = (
    "deribit_options_snapshot_20260204T213308Z.csv",
    "deribit_options_snapshot_20260205T212937Z.csv",
)
PERP_FILE = "perpetual_futures_prices.csv"
CHAIN_COLUMNS = (
    "timestamp",
    "instrument_name",
    "underlying",
    "underlying_name",
    "mark_price",
    "implied_volatility",
    "index_price",
)
PERP_COLUMNS = (
    "snapshot_file",
    "obs_datetime",
    "coin",
    "instrument_name",
    "perp_futures_mark_price",
)
PACKAGED_FILE = "crash_day.csv.gz"
PACKAGED_FILES = (PACKAGED_FILE,)
COLUMNS = ("file", *CHAIN_COLUMNS, *(c for c in PERP_COLUMNS if c not in CHAIN_COLUMNS))
"""The packaged file's columns: the raw file a row comes from, then the union of both kinds."""


def packaged_dir() -> Path:
    """The folder of the packaged files (``portmargin/monitor/data``)."""
    return Path(str(resources.files("portmargin.monitor") / "data"))


def _gzip(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return buf.getvalue()


def _table(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[c] for c in columns])
    return out.getvalue()


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def derive_crash_day(raw_dir: Path | str, out_dir: Path | str) -> list[Path]:
    """Write the packaged file from the raw ones (module docstring); returns its path."""
    raw, out = Path(raw_dir), Path(out_dir)
    rows: list[dict[str, str]] = []
    times = []
    for name in CHAINS:
        chain = _read(raw / name)
        times.append(datetime.fromisoformat(chain[0]["timestamp"]))
        rows += [{"file": name, **{c: r[c] for c in CHAIN_COLUMNS}} for r in chain]
    perp = _read(raw / PERP_FILE)
    keep = []
    for coin in sorted({r["coin"] for r in perp}):
        mine = [r for r in perp if r["coin"] == coin and r["perp_futures_mark_price"].strip()]
        mine.sort(key=lambda r: datetime.fromisoformat(r["obs_datetime"]))
        at = [datetime.fromisoformat(r["obs_datetime"]) for r in mine]
        lo = max((i for i, t in enumerate(at) if t <= times[0]), default=0)
        hi = min((i for i, t in enumerate(at) if t >= times[1]), default=len(at) - 1)
        keep += mine[lo : hi + 1]
    keep.sort(key=lambda r: (r["obs_datetime"], r["coin"]))
    rows += [{"file": PERP_FILE, **{c: r[c] for c in PERP_COLUMNS}} for r in keep]
    path = out / PACKAGED_FILE
    full = [{c: r.get(c, "") for c in COLUMNS} for r in rows]
    path.write_bytes(_gzip(_table(full, COLUMNS)))
    return [path]


@lru_cache(maxsize=1)
def packaged_crash_day() -> tuple[MarketSnapshot, MarketSnapshot, Path]:
    """The two snapshots and the perpetual series' path, from the packaged file.

    The rows of each chain are written back to a temporary file with the raw file's name and
    columns (with the perpetual rows beside them, as the chain loader expects) and loaded by
    :func:`~portmargin.io.load_market`. The series' path is the packaged file itself: its
    chain rows have no perpetual price, which the replay's reader skips.
    """
    path = packaged_dir() / PACKAGED_FILE
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    by_file: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        by_file.setdefault(row["file"], []).append(row)
    with tempfile.TemporaryDirectory(prefix="portmargin-crash-day-") as tmp:
        folder = Path(tmp)
        for name in CHAINS:
            (folder / name).write_text(_table(by_file[name], CHAIN_COLUMNS), encoding="utf-8")
        perp = _table(by_file[PERP_FILE], PERP_COLUMNS)
        (folder / PERP_FILE).write_text(perp, encoding="utf-8")
        m0 = load_market(folder / CHAINS[0])
        m1 = load_market(folder / CHAINS[1])
    return m0, m1, path
