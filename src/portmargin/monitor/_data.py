r"""The crash-day data shipped in the package: a compact copy of the raw Deribit files.

``portmargin monitor`` replays the 2026-02-04/05 Deribit chains by default
(:class:`~portmargin.monitor.ReplayFeed`); an installed package carries the numbers the replay
reads, in ``portmargin/monitor/data/`` (provenance in its ``README.md``):

* the two option-chain snapshots, every row, reduced to the columns the chain loader reads
  (``timestamp, instrument_name, underlying, underlying_name, mark_price,
  implied_volatility, index_price``), the cells copied as text;
* the perpetual price series reduced to its columns ``snapshot_file, obs_datetime, coin,
  instrument_name, perp_futures_mark_price`` and to the rows from the last observation at or
  before the first snapshot to the first at or after the second (the replay interpolates
  between consecutive observations, so rows outside that span never enter it).

Each is a gzip file (mtime 0, so :func:`derive_crash_day` rebuilds them byte for byte). Since
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
PACKAGED_FILES = tuple(f"{name}.gz" for name in (*CHAINS, PERP_FILE))


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
    """Write the packaged files from the raw ones (module docstring); returns their paths."""
    raw, out = Path(raw_dir), Path(out_dir)
    written = []
    times = []
    for name in CHAINS:
        rows = _read(raw / name)
        times.append(datetime.fromisoformat(rows[0]["timestamp"]))
        path = out / f"{name}.gz"
        path.write_bytes(_gzip(_table(rows, CHAIN_COLUMNS)))
        written.append(path)
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
    path = out / f"{PERP_FILE}.gz"
    path.write_bytes(_gzip(_table(keep, PERP_COLUMNS)))
    written.append(path)
    return written


@lru_cache(maxsize=1)
def packaged_crash_day() -> tuple[MarketSnapshot, MarketSnapshot, Path]:
    """The two snapshots and the perpetual series' path, from the packaged files.

    The chains are unpacked to a temporary folder (with the perpetual marks beside them, as
    the chain loader expects) and loaded by :func:`~portmargin.io.load_market`.
    """
    data = packaged_dir()
    with tempfile.TemporaryDirectory(prefix="portmargin-crash-day-") as tmp:
        folder = Path(tmp)
        for name in (*CHAINS, PERP_FILE):
            text = gzip.decompress((data / f"{name}.gz").read_bytes())
            (folder / name).write_bytes(text)
        m0 = load_market(folder / CHAINS[0])
        m1 = load_market(folder / CHAINS[1])
    return m0, m1, data / f"{PERP_FILE}.gz"
