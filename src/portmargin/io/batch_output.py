"""The files ``portmargin batch`` writes: one margin row per account and pool, and rejects.

Results have one row per account and margin pool (the columns are a public contract,
``docs/json.md``): ``account, currency, initial_margin, maintenance_margin, equity,
excess`` (equity − initial margin), ``maintenance_excess``, the binding scenario
(``binding_underlying, binding_scenario, binding_price_move, binding_vol_shock,
binding_pnl``; empty for a pool without positions), and the account layer's decision per
pool (``haircut, status, account_status, usd_rate, initial_margin_usd, deficit_usd``).

Rejects (``--on-error skip``) have one row per row left out: ``row, account, instrument,
quantity, reason``.

Writing is all or nothing: each file is written to a hidden temporary file beside its
target (``.NAME.PID.XXXXXXXX.tmp``), flushed to disk, and renamed over the target only when
every file of the run is complete; a failure removes the temporaries and names the target.
A run killed inside that window (SIGKILL, power loss) leaves a temporary behind:
:func:`clean_stale` removes the ones of a target that match this naming exactly, belong to
no running process and are older than the current run.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from portmargin._types import FloatArray
from portmargin.errors import InputError
from portmargin.io._common import one_line
from portmargin.io.positions_files import Reject
from portmargin.models.session import BatchResult, MarginSession

__all__ = [
    "FORMATS",
    "REJECT_COLUMNS",
    "RESULT_COLUMNS",
    "PoolDecisions",
    "check_target",
    "clean_stale",
    "rejects_table",
    "result_table",
    "temp_pattern",
    "write_table",
    "write_tables",
]

FORMATS = (".parquet", ".csv")
"""Output formats, by extension."""

RESULT_COLUMNS = (
    "account",
    "currency",
    "initial_margin",
    "maintenance_margin",
    "equity",
    "excess",
    "maintenance_excess",
    "binding_underlying",
    "binding_scenario",
    "binding_price_move",
    "binding_vol_shock",
    "binding_pnl",
    "haircut",
    "status",
    "account_status",
    "usd_rate",
    "initial_margin_usd",
    "deficit_usd",
)
"""Columns of a results file, in order."""

REJECT_COLUMNS = ("row", "account", "instrument", "quantity", "reason")
"""Columns of a rejects file, in order."""


@dataclass(frozen=True, slots=True)
class PoolDecisions:
    """The account layer's figures per result row (one entry per account and pool present).

    Rows are in the order of :func:`result_table` (accounts in order, pools in the result's
    pool order). ``status`` and ``account_status`` are
    :class:`~portmargin.accounts.AccountStatus` values.
    """

    haircut: FloatArray
    status: Sequence[str]
    account_status: Sequence[str]
    usd_rate: FloatArray
    initial_margin_usd: FloatArray
    deficit_usd: FloatArray


def result_table(
    accounts: Sequence[str],
    result: BatchResult,
    session: MarginSession,
    decisions: PoolDecisions | None = None,
) -> pa.Table:
    """One row per (account, pool present) with margins, equity, excess, binding scenario.

    With ``decisions`` the account layer's columns follow (see the module docstring);
    without them the table stops at ``binding_pnl``.
    """
    a_idx, p_idx = np.nonzero(result.present)
    pools = np.array(result.pools, dtype=object)
    pairs = result.pairs
    bp = result.binding_pair[a_idx, p_idx]
    bs = result.binding_scenario[a_idx, p_idx]
    has = bp >= 0
    und_names = np.array([u for _, u in pairs] + [None], dtype=object)
    moves = np.full(a_idx.size, math.nan)
    vols = np.full(a_idx.size, math.nan)
    for k, pr in enumerate(session.pairs):
        sel = has & (bp == k)
        if sel.any():
            scen = pr.scen
            moves[sel] = scen.price_moves[bs[sel]]
            dirs = scen.vol_directions[bs[sel]]
            vols[sel] = np.where(dirs > 0, dirs * scen.vol_shock.up, dirs * scen.vol_shock.down)
    equity = result.equity[a_idx, p_idx]
    im = result.initial_margin[a_idx, p_idx]
    mm = result.maintenance_margin[a_idx, p_idx]
    acc = pa.array(list(accounts), pa.string()).take(pa.array(a_idx, pa.int64()))
    columns = {
        "account": acc,
        "currency": pa.array(pools[p_idx].tolist(), pa.string()),
        "initial_margin": pa.array(im, pa.float64()),
        "maintenance_margin": pa.array(mm, pa.float64()),
        "equity": pa.array(equity, pa.float64()),
        "excess": pa.array(equity - im, pa.float64()),
        "maintenance_excess": pa.array(equity - mm, pa.float64()),
        "binding_underlying": pa.array(und_names[np.where(has, bp, -1)].tolist(), pa.string()),
        "binding_scenario": pa.array(np.where(has, bs, -1)).cast(pa.int64()),
        "binding_price_move": pa.array(moves, pa.float64(), from_pandas=True),
        "binding_vol_shock": pa.array(vols, pa.float64(), from_pandas=True),
        "binding_pnl": pa.array(
            np.where(has, result.binding_pnl[a_idx, p_idx], math.nan), pa.float64()
        ),
    }
    if decisions is not None:
        if len(decisions.status) != a_idx.size:
            raise ValueError(f"{len(decisions.status)} decisions for {a_idx.size} result rows")
        columns |= {
            "haircut": pa.array(decisions.haircut, pa.float64()),
            "status": pa.array(list(decisions.status), pa.string()),
            "account_status": pa.array(list(decisions.account_status), pa.string()),
            "usd_rate": pa.array(decisions.usd_rate, pa.float64()),
            "initial_margin_usd": pa.array(decisions.initial_margin_usd, pa.float64()),
            "deficit_usd": pa.array(decisions.deficit_usd, pa.float64()),
        }
    return pa.table(columns)


def rejects_table(rejects: Sequence[Reject]) -> pa.Table:
    """The rejects file's table (:data:`REJECT_COLUMNS`), one row per reject, in order."""
    return pa.table(
        {
            "row": pa.array([r.row for r in rejects], pa.int64()),
            "account": pa.array([r.account for r in rejects], pa.string()),
            "instrument": pa.array([r.instrument for r in rejects], pa.string()),
            "quantity": pa.array([r.quantity for r in rejects], pa.string()),
            "reason": pa.array([r.reason for r in rejects], pa.string()),
        }
    )


# -- writing -------------------------------------------------------------------------------
def temp_pattern(target: Path) -> re.Pattern[str]:
    """The names of this module's temporary files for ``target``: ``.NAME.PID.HEX8.tmp``."""
    return re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")


def _temp_path(target: Path) -> Path:
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(exc.strerror)  # without the temporary file's name
    return one_line(exc) or exc.__class__.__name__


def check_target(path: Path | str, *, what: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written (format, directory, not a dir).

    Raises
    ------
    InputError
        ``path: unknown output format``, ``path: directory D does not exist``, ``path:
        directory D is not writable`` or ``path: is a directory``, naming the target.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{out}: unknown {what} format {suffix!r} (use .parquet or .csv)")
    directory = out.parent
    if not directory.exists():
        raise InputError(f"{out}: directory {directory} does not exist")
    if not directory.is_dir():
        raise InputError(f"{out}: {directory} is not a directory")
    if out.is_dir():
        raise InputError(f"{out}: is a directory, expected a file name")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{out}: directory {directory} is not writable")
    return out


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a number no process has: keep the file
    return True


def clean_stale(target: Path | str, *, before: float) -> list[Path]:
    """Remove temporaries of ``target`` left by killed runs; return the paths removed.

    A file is removed only if its name matches :func:`temp_pattern` exactly, it is a regular
    file (not a link), it was last modified before ``before`` (a :func:`time.time` value,
    the start of the current run) and its process id is not a running process.
    """
    out = Path(target)
    pattern = temp_pattern(out)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_file(follow_symlinks=False) or st.st_mtime >= before:
            continue
        if _alive(int(m.group(1))):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _write_one(table: pa.Table, target: Path) -> Path:
    """Write ``table`` to a new temporary beside ``target``, flushed to disk; its path."""
    tmp = _temp_path(target)
    try:
        with tmp.open("xb") as f:
            if target.suffix.lower() == ".parquet":
                pq.write_table(table, f)
            else:
                pacsv.write_csv(table, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_tables(files: Sequence[tuple[pa.Table, Path | str]]) -> None:
    """Write every ``(table, target)`` as Parquet or CSV (by extension), all or nothing.

    Every table is written to its temporary first; the temporaries are then renamed over
    their targets in order. If a write fails, every temporary is removed and no target is
    touched; if a rename fails, the targets already renamed in this call are removed too.

    Raises
    ------
    InputError
        ``target: cannot write (reason)`` naming the target, never a temporary file.
    """
    targets = [check_target(path) for _, path in files]
    temps: list[Path] = []
    current = targets[0] if targets else Path()
    try:
        for (table, _), target in zip(files, targets, strict=True):
            current = target
            temps.append(_write_one(table, target))
    except (OSError, pa.ArrowException) as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise InputError(f"{current}: cannot write ({_reason(exc)})") from None
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    done: list[Path] = []
    try:
        for tmp, target in zip(temps, targets, strict=True):
            current = target
            os.replace(tmp, target)
            done.append(target)
    except OSError as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        for target in done:
            target.unlink(missing_ok=True)
        raise InputError(f"{current}: cannot write ({_reason(exc)})") from None
    for directory in {t.parent for t in targets}:
        _sync_dir(directory)


def write_table(table: pa.Table, path: Path | str) -> None:
    """Write one table atomically (:func:`write_tables` of one file)."""
    write_tables([(table, path)])
