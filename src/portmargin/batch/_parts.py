r"""A positions file or dataset cut into parts, read where they are margined, by account.

The steps of a partitioned run (:mod:`portmargin.batch._cluster` runs them on Dask; the same
functions run in one process):

1. :func:`plan` reads only the Parquet footers: the files of a dataset (a directory of
   ``*.parquet``, in name order, read as one table) or the one file, cut into ``n`` parts of
   whole row groups, balanced by rows. A CSV file is one part. Each part knows the file row
   of its first record, so rows are numbered as a single-process run numbers them (a
   dataset's rows continue from file to file).
2. :func:`read_part` reads one part with the positions reader's own validation
   (:mod:`portmargin.io.positions_files`), on the worker that will margin it;
   :func:`part_info` is what the driver needs of it: its names (to build one session over
   the union) and a 64-bit hash of each account (:func:`account_hashes`).
3. The driver finds the accounts that appear in more than one part. Every other account is
   margined where it was read. When few accounts span parts (a file written by account:
   only those cut by a row-group boundary), each goes to the first part it appears in;
   when many do (a shuffled file), each goes to part ``hash mod n``, which balances the
   partitions (:func:`split_part` cuts a part into pieces by owner, :func:`merge_pieces`
   joins the pieces of one partition). A dataset partitioned by account moves nothing; a
   shuffled file moves about ``(n−1)/n`` of its rows.
4. Each partition is margined by :func:`portmargin.batch._run.margin_rows`, exactly as a
   single-process run margins the whole file: an account's rows are all in one partition,
   in file order, so its arithmetic is the same, bit for bit.

Account hash: FNV-style polynomial of the UTF-8 bytes modulo 2⁶⁴ (``h = Σ (b_k + 1)·P^k``,
``P = 1099511628211``) mixed with the length by the SplitMix64 finaliser, computed
vectorised over the bytes; the same in every process (Python's ``hash`` is salted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from portmargin._types import FloatArray, IntArray
from portmargin.batch._run import Rows
from portmargin.errors import InputError
from portmargin.io._common import one_line
from portmargin.io.positions_files import (
    COLUMNS,
    OnError,
    PositionsFile,
    Reject,
    _Reader,
    read_positions,
)

__all__ = [
    "PartInfo",
    "PartSpec",
    "Piece",
    "account_hashes",
    "as_rows",
    "merge_pieces",
    "order_keys",
    "part_info",
    "plan",
    "read_part",
    "split_part",
]

UInt64Array = npt.NDArray[np.uint64]
_BATCH_ROWS = 1 << 20


@dataclass(frozen=True, slots=True)
class PartSpec:
    """One part of a positions file or dataset (see the module docstring, step 1).

    ``segments`` are ``(file, row groups)`` read in order (``None``: the whole file, a
    CSV); ``label`` is what messages name (the file given, or the dataset's directory);
    ``first_row`` is the file row of the part's first record.
    """

    index: int
    label: str
    segments: tuple[tuple[str, tuple[int, ...] | None], ...]
    first_row: int
    rows: int


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*.parquet")
            if p.is_file() and not any(s.startswith((".", "_")) for s in p.relative_to(path).parts)
        )
        if not files:
            raise InputError(f"{path}: no .parquet files in this directory")
        return files
    if not path.exists():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"{path}: unknown positions format {suffix!r} (use .parquet or .csv)")
    return [path]


def plan(path: Path | str, n: int) -> tuple[PartSpec, ...]:
    """Cut ``path`` (a file or a dataset directory) into at most ``n`` parts of row groups.

    Raises
    ------
    InputError
        For a missing file, an unknown format, a directory without Parquet files, or a
        Parquet file that cannot be read or lacks a column (naming the file).
    """
    p = Path(path)
    files = _files(p)
    label = str(p)
    if len(files) == 1 and files[0].suffix.lower() == ".csv":
        return (PartSpec(0, label, ((str(files[0]), None),), 2, 0),)
    groups: list[tuple[str, int, int]] = []  # (file, row group, rows)
    for f in files:
        try:
            meta = pq.ParquetFile(f)
            names = list(meta.schema_arrow.names)
            md = meta.metadata
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{f}: not a readable Parquet file ({one_line(exc)})") from None
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise InputError(f"{f}: missing column(s) {', '.join(missing)}")
        for c in COLUMNS:
            if names.count(c) > 1:
                raise InputError(f"{f}: column {c!r} appears {names.count(c)} times")
        groups += [(str(f), g, md.row_group(g).num_rows) for g in range(md.num_row_groups)]
    total = sum(r for _, _, r in groups)
    n = max(1, min(n, len(groups)))
    parts: list[PartSpec] = []
    cur: list[tuple[str, int, int]] = []
    done = 0
    first = 1
    for k, g in enumerate(groups):
        cur.append(g)
        done += g[2]
        left_groups = len(groups) - k - 1
        left_parts = n - len(parts) - 1
        if left_parts > 0 and (done >= total * (len(parts) + 1) / n or left_groups == left_parts):
            parts.append(_spec(len(parts), label, cur, first))
            first += sum(r for _, _, r in cur)
            cur = []
    if cur or not parts:
        parts.append(_spec(len(parts), label, cur, first))
    return tuple(parts)


def _spec(index: int, label: str, groups: list[tuple[str, int, int]], first: int) -> PartSpec:
    segments: list[tuple[str, tuple[int, ...] | None]] = []
    for f, g, _ in groups:
        if segments and segments[-1][0] == f:
            prev = segments[-1][1] or ()
            segments[-1] = (f, (*prev, g))
        else:
            segments.append((f, (g,)))
    return PartSpec(index, label, tuple(segments), first, sum(r for _, _, r in groups))


def read_part(spec: PartSpec, on_error: OnError) -> PositionsFile | InputError:
    """Read and validate one part (the reader's rules and messages); a refusal is returned.

    A refused row is returned as the :class:`InputError` (not raised), so the driver can
    report the first one in file order across parts.
    """
    try:
        file, groups = spec.segments[0]
        if groups is None:  # a CSV file: one part, the reader as it is
            return read_positions(file, on_error=on_error)
        reader = _Reader(Path(spec.label), on_error, spec.first_row)
        for file, groups in spec.segments:
            f = pq.ParquetFile(file)
            batches = f.iter_batches(
                batch_size=_BATCH_ROWS, columns=list(COLUMNS), row_groups=list(groups or ())
            )
            for batch in batches:
                reader.batch(batch, csv=False, ragged=None)
        return reader.result()
    except InputError as exc:
        return exc
    except (pa.ArrowException, OSError) as exc:
        return InputError(f"{spec.label}: cannot read ({one_line(exc)})")


_P = np.uint64(1099511628211)


def account_hashes(labels: Sequence[str]) -> UInt64Array:
    """A 64-bit hash of each label, the same in every process (module docstring)."""
    n = len(labels)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    arr = pa.array(list(labels), pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[: n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[: int(offsets[-1])]
    lengths = np.diff(offsets)
    longest = int(lengths.max()) if n else 0
    powers = np.ones(max(longest, 1), dtype=np.uint64)
    powers[1:] = np.cumprod(np.full(max(longest - 1, 0), _P, dtype=np.uint64))  # wraps mod 2⁶⁴
    pos = np.arange(data.size, dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    terms = (data.astype(np.uint64) + np.uint64(1)) * powers[pos]
    csum = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(terms, dtype=np.uint64)])
    h = csum[offsets[1:]] - csum[offsets[:-1]]
    h ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    out: UInt64Array = h
    return out


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What the driver needs of a read part: its names and its accounts' hashes.

    ``names`` and ``first_rows`` are the part's distinct names in order of first
    appearance with their first file row; ``hashes`` covers the accounts with kept rows
    and, after them, those named only in rejects.
    """

    names: tuple[str, ...]
    first_rows: tuple[int, ...]
    hashes: UInt64Array
    kept: int
    rejects: int


def _reject_only(positions: PositionsFile) -> list[str]:
    """Accounts named only in rejects (no kept row in this part), in order."""
    have = set(positions.accounts)
    named = (r.account for r in positions.rejects if r.account is not None)
    return [a for a in dict.fromkeys(named) if a not in have]


def part_info(positions: PositionsFile) -> PartInfo:
    """The :class:`PartInfo` of a read part."""
    extra = _reject_only(positions)
    return PartInfo(
        tuple(positions.names),
        tuple(positions.first_row),
        account_hashes([*positions.accounts, *extra]),
        int(positions.quantity.size),
        len(positions.rejects),
    )


def _first_rows(account_code: IntArray, n_accounts: int) -> IntArray:
    """Index of each account's first row, for codes given in order of first appearance."""
    if account_code.size == 0:
        return np.zeros(0, dtype=np.int64)
    running = np.maximum.accumulate(account_code)
    firsts = np.flatnonzero(np.diff(running, prepend=-1) > 0)
    out: IntArray = firsts[:n_accounts].astype(np.int64)
    return out


@dataclass(frozen=True, slots=True)
class Piece:
    """The rows of one part that go to one partition (names as global codes, rows explicit)."""

    accounts: tuple[str, ...]
    account_code: IntArray
    name_code: IntArray
    quantity: FloatArray
    rows: IntArray
    rejects: tuple[Reject, ...]


def as_rows(positions: PositionsFile, to_global: IntArray, names: Sequence[str]) -> Rows:
    """A part margined where it was read: its rows with names as global codes."""
    return Rows(
        positions.source,
        positions.accounts,
        names,
        positions.account_code,
        to_global[positions.name_code],
        positions.quantity,
        positions.rows,
        positions.rejects,
    )


def split_part(
    positions: PositionsFile,
    index: int,
    n: int,
    spanning: UInt64Array,
    owners: IntArray,
    to_global: IntArray,
) -> tuple[Piece, ...]:
    """Cut a part into ``n`` pieces by owner (module docstring, step 3).

    Its own accounts stay (piece ``index``); an account whose hash is in the sorted
    ``spanning`` goes to piece ``owners[k]`` of its hash ``spanning[k]``; rejects follow
    their account (a reject naming no account stays).
    """
    extra = _reject_only(positions)
    labels = [*positions.accounts, *extra]
    h = account_hashes(labels)
    owner = np.full(h.size, index, dtype=np.int64)
    if spanning.size:
        at = np.minimum(np.searchsorted(spanning, h), spanning.size - 1)
        hit = spanning[at] == h
        owner[hit] = owners[at[hit]]
    n_acc = len(positions.accounts)
    acc_owner = owner[:n_acc]
    row_owner = acc_owner[positions.account_code]
    all_rows = positions.row_numbers(np.arange(positions.quantity.size, dtype=np.int64))
    reject_owner: dict[str, int] = {}
    if positions.rejects:
        reject_owner = dict(zip(labels, owner.tolist(), strict=True))
    accounts = np.array(positions.accounts, dtype=object)
    pieces = []
    for p in range(n):
        accs = np.flatnonzero(acc_owner == p)
        sel: Any
        if accs.size == n_acc:  # everything stays: the rows as they are
            sel = slice(None)
            codes = positions.account_code
        else:
            sel = np.flatnonzero(row_owner == p)
            remap = np.full(n_acc, -1, dtype=np.int64)
            remap[accs] = np.arange(accs.size)
            codes = remap[positions.account_code[sel]]
        rejects = tuple(
            r
            for r in positions.rejects
            if (reject_owner[r.account] if r.account is not None else index) == p
        )
        pieces.append(
            Piece(
                tuple(accounts[accs].tolist()),
                codes,
                to_global[positions.name_code[sel]],
                positions.quantity[sel],
                all_rows[sel],
                rejects,
            )
        )
    return tuple(pieces)


def merge_pieces(source: str, pieces: Sequence[Piece], names: Sequence[str]) -> Rows:
    """One partition from its pieces, in part order: accounts by first appearance.

    The pieces' account lists, concatenated in part order, are dictionary-encoded (Arrow
    keeps the order of first appearance), which is the accounts' order in the file.
    """
    labels = pa.chunked_array(
        [pa.array(list(pc.accounts), pa.string()) for pc in pieces], type=pa.string()
    )
    enc = labels.combine_chunks().dictionary_encode() if len(labels) else None
    codes = []
    offset = 0
    for pc in pieces:
        if enc is None or not pc.accounts:
            codes.append(pc.account_code)
            continue
        local = enc.indices.to_numpy()[offset : offset + len(pc.accounts)].astype(np.int64)
        codes.append(local[pc.account_code] if pc.account_code.size else pc.account_code)
        offset += len(pc.accounts)
    accounts = enc.dictionary.to_pylist() if enc is not None else []
    rejects = sorted((r for pc in pieces for r in pc.rejects), key=lambda r: r.row)
    return Rows(
        source,
        accounts,
        names,
        _cat(codes, np.int64),
        _cat([pc.name_code for pc in pieces], np.int64),
        _cat([pc.quantity for pc in pieces], np.float64),
        _cat([pc.rows for pc in pieces], np.int64),
        tuple(rejects),
    )


def _cat(parts: list[Any], dtype: type[np.generic]) -> Any:
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return out.astype(dtype, copy=False)


def order_keys(rows: Rows, accounts: Sequence[str]) -> IntArray:
    """The file row where each of ``accounts`` (a subset of ``rows.accounts``) first appears.

    Rows are in file order per account, and codes in order of first appearance, so the
    first row of code ``k`` is where the running maximum of the codes first reaches ``k``.
    """
    firsts = _first_rows(rows.account_code, len(rows.accounts))
    keys = np.full(len(rows.accounts), np.iinfo(np.int64).max, dtype=np.int64)
    if firsts.size:
        keys[: firsts.size] = rows.row_numbers(firsts)
    if len(accounts) == len(rows.accounts):
        return keys
    index = {a: i for i, a in enumerate(rows.accounts)}
    out: IntArray = keys[np.array([index[a] for a in accounts], dtype=np.int64)]
    return out
