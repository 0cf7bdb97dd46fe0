"""Batch files: positions in (Parquet or CSV), one margin row per account and pool out.

Positions have the columns ``account, instrument, quantity`` (any order, extra columns
ignored). A row whose instrument is ``cash:CCY`` (``cash:BTC``, ``cash:USDC``) is a cash
balance of ``quantity`` units, exactly as in portfolio CSV files. Rows of one account may be
anywhere in the file; quantities of the same account and instrument are summed.

The file is read in record batches; each batch is dictionary-encoded into integer account and
instrument codes (16 bytes per position: two codes and a float), so memory grows with the
number of positions, never with the size of the strings.

Results have one row per account and margin pool: ``account, currency, initial_margin,
maintenance_margin, equity, excess`` (equity − initial margin), ``maintenance_excess`` and
the binding scenario (``binding_underlying, binding_scenario, binding_price_move,
binding_vol_shock, binding_pnl``; empty for a pool without positions). They are written to a
temporary file beside the target and renamed, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import scipy.sparse as sp

from portmargin._types import FloatArray, IntArray
from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import STABLE_CURRENCIES
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.session import BatchResult, MarginSession, build_quantities, cash_column

__all__ = [
    "PositionsFile",
    "quantities_for",
    "read_positions",
    "result_table",
    "session_for",
    "write_table",
]

_COLUMNS = ("account", "instrument", "quantity")
_BATCH_ROWS = 1 << 20


@dataclass(frozen=True, slots=True)
class PositionsFile:
    """Positions read from a file, as integer codes.

    Attributes
    ----------
    accounts
        Account labels, in order of first appearance.
    names
        Instrument names and ``cash:CCY`` columns, in order of first appearance.
    account_code, name_code, quantity
        One entry per row of the file.
    first_row
        1-based data row where each name first appears (for error messages).
    """

    source: str
    accounts: list[str]
    names: list[str]
    account_code: IntArray
    name_code: IntArray
    quantity: FloatArray
    first_row: list[int]


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        f = pq.ParquetFile(path)
        names = set(f.schema_arrow.names)
        missing = [c for c in _COLUMNS if c not in names]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
        yield from f.iter_batches(batch_size=_BATCH_ROWS, columns=list(_COLUMNS))
    elif suffix == ".csv":
        opts = pacsv.ConvertOptions(
            column_types={"account": pa.string(), "instrument": pa.string()},
            include_columns=list(_COLUMNS),
        )
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=1 << 24), convert_options=opts
        )
        yield from reader
    else:
        raise InputError(f"{path}: unknown positions format {suffix!r} (use .parquet or .csv)")


def read_positions(path: Path | str) -> PositionsFile:
    """Read a positions file into integer codes (see the module docstring).

    Raises
    ------
    InputError
        ``file: row N: field: reason`` for missing columns, empty fields and bad quantities.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    header = 2 if p.suffix.lower() == ".csv" else 1  # row numbers as a user would count them
    accounts: dict[str, int] = {}
    names: dict[str, int] = {}
    first_row: list[int] = []
    acc_parts: list[IntArray] = []
    name_parts: list[IntArray] = []
    qty_parts: list[FloatArray] = []
    offset = 0
    try:
        for batch in _batches(p):
            n = batch.num_rows
            acc = batch.column("account").cast(pa.string())
            inst = batch.column("instrument").cast(pa.string())
            qty = batch.column("quantity").cast(pa.float64())
            for field_name, col in (("account", acc), ("instrument", inst), ("quantity", qty)):
                if col.null_count:
                    i = int(pc.index(pc.is_null(col), True).as_py())
                    raise InputError(f"{p}: row {offset + i + header}: {field_name}: empty")
            q = qty.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            bad = ~np.isfinite(q)
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(
                    f"{p}: row {offset + i + header}: quantity: {q[i]!r} is not finite"
                )
            acc_codes = _encode(acc, accounts, None)
            name_codes = _encode(inst, names, first_row, offset + header, strip=True)
            acc_parts.append(acc_codes)
            name_parts.append(name_codes)
            qty_parts.append(q)
            offset += n
    except pa.ArrowInvalid as exc:
        raise InputError(f"{p}: {exc}") from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{p}: cannot read ({exc.__class__.__name__}: {exc})") from None
    if offset == 0:
        raise InputError(f"{p}: no positions")
    return PositionsFile(
        str(p),
        list(accounts),
        list(names),
        np.concatenate(acc_parts),
        np.concatenate(name_parts),
        np.concatenate(qty_parts),
        first_row,
    )


def _encode(
    col: pa.Array,
    table: dict[str, int],
    first_row: list[int] | None,
    row0: int = 0,
    *,
    strip: bool = False,
) -> IntArray:
    """Integer codes of a string column against a growing dictionary ``table``."""
    enc = pc.dictionary_encode(col)
    values = enc.dictionary.to_pylist()
    local = np.empty(len(values), dtype=np.int64)
    idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    firsts: IntArray | None = None
    for i, v in enumerate(values):
        key = v.strip() if strip else v
        if strip and key.lower().startswith("cash:"):
            key = cash_column(key[5:].strip())
        code = table.get(key)
        if code is None:
            code = len(table)
            table[key] = code
            if first_row is not None:
                if firsts is None:
                    _, where = np.unique(idx, return_index=True)
                    firsts = np.asarray(where, dtype=np.int64)
                first_row.append(row0 + int(firsts[i]))
        local[i] = code
    out: IntArray = local[idx]
    return out


def session_for(
    positions: PositionsFile,
    market: MarketSnapshot,
    make: Callable[[list[str]], MarginSession],
) -> tuple[MarginSession, IntArray]:
    """Build a session over the file's instruments; map the file's name codes to its columns.

    Raises
    ------
    InputError
        ``file: row N: instrument: reason`` for an unknown instrument or currency.
    """
    src = positions.source
    insts: list[str] = []
    for name, row in zip(positions.names, positions.first_row, strict=True):
        if name.startswith("cash:"):
            ccy = name[5:]
            if not ccy:
                raise InputError(f"{src}: row {row}: instrument: {name!r} names no currency")
            if ccy not in market.underlyings and ccy not in STABLE_CURRENCIES and ccy != "USD":
                raise InputError(f"{src}: row {row}: instrument: no {ccy} index in the market")
            continue
        try:
            market.instrument(name)
        except PortmarginError as exc:
            raise InputError(f"{src}: row {row}: instrument: {exc}") from None
        insts.append(name)
    session = make(insts)
    mapping = np.array([session.column(n) for n in positions.names], dtype=np.int64)
    return session, mapping


def quantities_for(
    positions: PositionsFile, session: MarginSession, mapping: IntArray
) -> sp.csr_array:
    """The CSR quantity matrix of the file in the session's column space."""
    return build_quantities(
        positions.account_code,
        mapping[positions.name_code],
        positions.quantity,
        (len(positions.accounts), len(session.columns)),
        session.cash_cols,
    )


def result_table(accounts: list[str], result: BatchResult, session: MarginSession) -> pa.Table:
    """One row per (account, pool present) with margins, equity, excess and binding scenario."""
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
    acc = pa.array(accounts, pa.string()).take(pa.array(a_idx))
    return pa.table(
        {
            "account": acc,
            "currency": pa.array(pools[p_idx].tolist(), pa.string()),
            "initial_margin": im,
            "maintenance_margin": mm,
            "equity": equity,
            "excess": equity - im,
            "maintenance_excess": equity - mm,
            "binding_underlying": pa.array(und_names[np.where(has, bp, -1)].tolist(), pa.string()),
            "binding_scenario": pa.array(np.where(has, bs, -1)).cast(pa.int64()),
            "binding_price_move": pa.array(moves, from_pandas=True),
            "binding_vol_shock": pa.array(vols, from_pandas=True),
            "binding_pnl": pa.array(np.where(has, result.binding_pnl[a_idx, p_idx], math.nan)),
        }
    )


def write_table(table: pa.Table, path: Path | str) -> None:
    """Write ``table`` as Parquet or CSV (by extension) atomically: temp file, then rename."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"{out}: unknown output format {suffix!r} (use .parquet or .csv)")
    directory = out.parent if str(out.parent) else Path()
    if not directory.is_dir():
        raise InputError(f"{out}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        if suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
