"""Positions files of ``portmargin batch``: many accounts' positions, Parquet or CSV.

Columns ``account, instrument, quantity`` (any order; other columns are ignored; in CSV the
header's names match case-insensitively). A row whose instrument is ``cash:CCY``
(``cash:BTC``, ``cash:USDC``) is a cash balance of ``quantity`` units, exactly as in
portfolio CSV files. Rows of one account may be anywhere in the file; quantities of the same
account and instrument are summed.

Every row is validated where it is read (:mod:`portmargin.io.limits`):

* ``account``: text (UTF-8), 1 to 200 characters; Parquet integers are written in decimal;
* ``instrument``: text, 1 to 100 characters, spaces around ignored;
* ``quantity``: a number (Parquet numbers, or decimal text such as ``-1.5`` or ``2e3``),
  ``|q| ≤ 1e9`` contracts, or ``|q| ≤ 1e12`` units for a ``cash:`` row;
* CSV: a row with more or fewer fields than the header is refused; a row whose three
  fields are all empty (a blank line) is ignored.

Rows are numbered as a person counts them: in CSV the header is row 1 and rows are lines;
in Parquet the first data row is row 1. A problem is ``file: row N: field: reason``.

With ``on_error="refuse"`` (the default) the first bad row raises :class:`InputError`; with
``"skip"`` bad rows are returned as :class:`Reject` records (row, fields as written, reason)
and the file's other rows are read.

The file is read in record batches; each batch is dictionary-encoded into integer account and
instrument codes (16 bytes per position: two codes and a float), so memory grows with the
number of positions, never with the size of the strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.errors import InputError
from portmargin.io._common import one_line
from portmargin.io._tables import (
    BadRow,
    RowNumbers,
    Utf8Guard,
    blank_rows,
    number_column,
    open_csv,
    show,
    text_column,
)
from portmargin.io.limits import (
    BALANCE_MAX,
    ID_MAX_CHARS,
    NAME_MAX_CHARS,
    QUANTITY_MAX,
    fmt,
    fmt_limit,
)

__all__ = ["COLUMNS", "OnError", "PositionsFile", "Reject", "read_book_csv", "read_positions"]

COLUMNS = ("account", "instrument", "quantity")
"""The columns a positions file must have."""

OnError = Literal["refuse", "skip"]
"""What a reader does with a bad row: raise (``refuse``) or return it as a reject."""

_BATCH_ROWS = 1 << 20
_CASH = "cash:"


@dataclass(frozen=True, slots=True)
class Reject:
    """A row left out of a batch run: where it is, its fields as written, and why.

    ``account``, ``instrument`` and ``quantity`` are the row's text (``None`` when the
    field is missing or not text); ``reason`` is ``field: why`` as in the error a refused
    file would give.
    """

    row: int
    account: str | None
    instrument: str | None
    quantity: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class PositionsFile:
    """Positions read from a file, as integer codes.

    Attributes
    ----------
    source
        The file name, as given.
    accounts
        Account labels, in order of first appearance.
    names
        Instrument names (spaces around removed) and ``cash:CCY`` columns, in order of
        first appearance.
    account_code, name_code, quantity
        One entry per row kept (read-only arrays).
    first_row
        File row where each name first appears (for error messages).
    rows
        The file row of each kept row (:meth:`row_numbers`).
    rejects
        Rows left out (``on_error="skip"`` only), in file order.
    """

    source: str
    accounts: list[str]
    names: list[str]
    account_code: IntArray
    name_code: IntArray
    quantity: FloatArray
    first_row: list[int]
    rows: RowNumbers | None = None
    rejects: tuple[Reject, ...] = ()

    def row_numbers(self, kept: IntArray) -> IntArray:
        """File rows of kept rows (indices into :attr:`account_code`)."""
        if self.rows is None:
            return np.asarray(kept, dtype=np.int64) + 1
        return self.rows.rows(kept)


# -- reading -------------------------------------------------------------------------------
def _parquet(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        f = pq.ParquetFile(path)
        names = list(f.schema_arrow.names)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({one_line(exc)})") from None
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in COLUMNS:
        if names.count(c) > 1:
            raise InputError(f"{path}: column {c!r} appears {names.count(c)} times")
    batches = f.iter_batches(batch_size=_BATCH_ROWS, columns=list(COLUMNS))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: cannot read ({one_line(exc)})") from None
        yield batch


# Problems of a text value, in the order they are reported.
_OK, _EMPTY, _LONG = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _Values:
    """The distinct values of a text column in one batch, checked once each.

    ``keys`` are the values as stored (instrument names stripped, ``cash:CCY`` upper case),
    ``problem`` the first problem of each (``_OK``, ``_EMPTY``, ``_LONG``), ``cash`` whether
    it is a ``cash:`` row; ``index`` maps each row to its value (nulls to the last entry,
    an empty value).
    """

    values: list[str | None]
    keys: list[str]
    problem: npt.NDArray[np.int8]
    cash: BoolArray
    index: IntArray

    @classmethod
    def of(cls, col: pa.Array, limit: int, *, instrument: bool) -> _Values:
        """The distinct values of ``col`` (text), checked (vectorised over the values)."""
        enc = pc.dictionary_encode(col)
        d = enc.dictionary
        n = len(d)
        index = np.asarray(
            pc.fill_null(enc.indices, n).to_numpy(zero_copy_only=False), dtype=np.int64
        )
        trimmed = pc.utf8_trim_whitespace(d)
        stored = trimmed if instrument else d
        values: list[str | None] = [*d.to_pylist(), None]
        keys: list[str] = [*stored.to_pylist(), ""]
        cash = np.zeros(n + 1, dtype=np.bool_)
        if instrument:
            head = pc.utf8_lower(pc.utf8_slice_codeunits(trimmed, 0, len(_CASH)))
            cash[:n] = np.asarray(pc.equal(head, _CASH).to_numpy(zero_copy_only=False))
            for i in np.flatnonzero(cash).tolist():
                keys[i] = _CASH + keys[i][len(_CASH) :].strip().upper()
        empty = np.ones(n + 1, dtype=np.bool_)
        empty[:n] = _lengths(trimmed) == 0
        long = np.zeros(n + 1, dtype=np.bool_)
        long[:n] = _lengths(stored) > limit
        problem = np.where(empty, _EMPTY, np.where(long, _LONG, _OK)).astype(np.int8)
        return cls(values, keys, problem, cash, index)

    def codes(
        self, rows: IntArray, table: dict[str, int], firsts: list[int] | None, row0: int
    ) -> IntArray:
        """Codes of ``rows`` (indices into :attr:`index`) against a growing ``table``.

        A key seen for the first time gets the next code; with ``firsts`` its first row's
        position (``row0`` + position among ``rows``) is appended to it.
        """
        local = self.index[rows]
        present = np.flatnonzero(np.bincount(local, minlength=len(self.keys)))
        mapping = np.full(len(self.keys), -1, dtype=np.int64)
        first_pos: IntArray | None = None
        for u in present.tolist():
            key = self.keys[u]
            code = table.get(key)
            if code is None:
                code = table[key] = len(table)
                if firsts is not None:
                    if first_pos is None:
                        uniq, pos = np.unique(local, return_index=True)
                        first_pos = np.full(len(self.keys), -1, dtype=np.int64)
                        first_pos[uniq] = pos
                    firsts.append(row0 + int(first_pos[u]))
            mapping[u] = code
        out: IntArray = mapping[local]
        return out


class _Reader:
    """State of one read: codes so far, row numbers, rejects (see :func:`read_positions`)."""

    def __init__(
        self, path: Path, on_error: OnError, first_row: int, guard: Utf8Guard | None = None
    ) -> None:
        self.path = path
        self.guard = guard
        self.one_account = False  # the account column is not the file's (a one-book CSV)
        self.on_error = on_error
        self.first_row = first_row
        self.gaps: list[int] = []  # file rows that yield no record (ragged CSV rows)
        self.removed: list[int] = []  # records dropped after reading (blank, rejected)
        self.accounts: dict[str, int] = {}
        self.names: dict[str, int] = {}
        self.first_kept: list[int] = []
        self.acc_parts: list[IntArray] = []
        self.name_parts: list[IntArray] = []
        self.qty_parts: list[FloatArray] = []
        self.rejects: list[Reject] = []
        self.records = 0  # records yielded so far
        self.kept = 0
        self.bad_seen = 0

    def fail(self, row: int, reason: str) -> InputError:
        """The error of a refused file: ``file: row N: field: reason``."""
        return InputError(f"{self.path}: row {row}: {reason}")

    def numbers(self) -> RowNumbers:
        """The row numbers as far as the file has been read."""
        return RowNumbers.of(self.first_row, sorted(self.gaps), self.removed)

    def bad_rows(self, bad: list[BadRow]) -> BadRow | None:
        """Take the ragged rows found since the last batch; the first of them (refuse)."""
        new = bad[self.bad_seen :]
        self.bad_seen = len(bad)
        for b in new:
            self.gaps.append(b.row)
            if self.on_error == "skip":
                self.rejects.append(Reject(b.row, None, None, None, b.reason))
        return new[0] if new and self.on_error == "refuse" else None

    def text(self, col: pa.Array, name: str) -> tuple[pa.Array, BoolArray]:
        """A column as text and its mask of values that are not UTF-8."""
        try:
            return text_column(col, replaced=self.guard is not None and self.guard.replaced)
        except TypeError as exc:
            raise InputError(f"{self.path}: column {name}: type {exc} is not text") from None

    def batch(self, batch: pa.RecordBatch, *, csv: bool, ragged: BadRow | None) -> None:
        """Check, encode and keep one record batch (see the module docstring)."""
        acc_raw, inst_raw, qty_raw = (batch.column(i) for i in range(3))
        n = batch.num_rows
        from_file = [inst_raw, qty_raw] if self.one_account else [acc_raw, inst_raw, qty_raw]
        blank = blank_rows(from_file) if csv else np.zeros(n, dtype=np.bool_)
        acc_text, acc_utf8 = self.text(acc_raw, "account")
        inst_text, inst_utf8 = self.text(inst_raw, "instrument")
        try:
            qty, qty_bad = number_column(qty_raw)
        except TypeError as exc:
            raise InputError(f"{self.path}: column quantity: type {exc} is not a number") from None
        acc = _Values.of(acc_text, ID_MAX_CHARS, instrument=False)
        inst = _Values.of(inst_text, NAME_MAX_CHARS, instrument=True)
        is_cash = inst.cash[inst.index]
        limit = np.where(is_cash, BALANCE_MAX, QUANTITY_MAX)
        with np.errstate(invalid="ignore"):
            qty_out = ~(np.abs(qty) <= limit)  # NaN and inf included
        bad = (
            acc_utf8
            | (acc.problem[acc.index] != _OK)
            | inst_utf8
            | (inst.problem[inst.index] != _OK)
            | qty_bad
            | qty_out
        ) & ~blank
        first = self.records
        if ragged is not None or bad.any():
            where = np.flatnonzero(bad)
            file_rows = self.numbers().record_rows(first + where)
            if self.on_error == "refuse":
                if ragged is not None and (where.size == 0 or ragged.row < file_rows[0]):
                    raise self.fail(ragged.row, ragged.reason)
                i = int(where[0])
                reason = self.reason(i, batch, acc, acc_utf8, inst, inst_utf8, qty, qty_bad)
                raise self.fail(int(file_rows[0]), reason)
            for i, row in zip(where.tolist(), file_rows.tolist(), strict=True):
                a = acc.values[acc.index[i]]
                name = inst.values[inst.index[i]]
                self.rejects.append(
                    Reject(
                        int(row),
                        None if a is None or acc.problem[acc.index[i]] != _OK else a,
                        None if name is None else name[:NAME_MAX_CHARS],
                        _raw(_cell(qty_raw, i)),
                        self.reason(i, batch, acc, acc_utf8, inst, inst_utf8, qty, qty_bad),
                    )
                )
        keep = ~(bad | blank)
        self.records += n
        rows = np.flatnonzero(keep)
        if rows.size < n:
            self.removed.extend((first + np.flatnonzero(~keep)).tolist())
        if rows.size:
            self.acc_parts.append(acc.codes(rows, self.accounts, None, 0))
            self.name_parts.append(inst.codes(rows, self.names, self.first_kept, self.kept))
            self.qty_parts.append(np.ascontiguousarray(qty[rows], dtype=np.float64))
            self.kept += rows.size

    def reason(
        self,
        i: int,
        batch: pa.RecordBatch,
        acc: _Values,
        acc_utf8: BoolArray,
        inst: _Values,
        inst_utf8: BoolArray,
        qty: FloatArray,
        qty_bad: BoolArray,
    ) -> str:
        """The first problem of row ``i`` of ``batch``, as ``field: why``."""
        for name, values, utf8, limit, k in (
            ("account", acc, acc_utf8, ID_MAX_CHARS, 0),
            ("instrument", inst, inst_utf8, NAME_MAX_CHARS, 1),
        ):
            if utf8[i]:
                return f"{name}: not UTF-8 text ({show(_raw_bytes(batch.column(k), i))})"
            v = values.index[i]
            if values.problem[v] == _EMPTY:
                return f"{name}: empty"
            if values.problem[v] == _LONG:
                key = values.keys[v]
                return f"{name}: {len(key):,} characters, at most {limit} ({show(key)})"
        q_text = _raw(_cell(batch.column(2), i))
        if qty_bad[i]:
            if q_text is None or not q_text.strip():
                return "quantity: empty"
            return f"quantity: {show(q_text)} is not a number"
        q = float(qty[i])
        if not np.isfinite(q):
            return f"quantity: {show(q_text)} is not finite"
        if inst.cash[inst.index[i]]:
            lim = fmt_limit(BALANCE_MAX)
            return f"quantity: {fmt(q)} is outside [-{lim}, {lim}] units (a cash balance)"
        lim = fmt_limit(QUANTITY_MAX)
        return f"quantity: {fmt(q)} is outside [-{lim}, {lim}] contracts"

    def result(self) -> PositionsFile:
        """The file read so far."""
        numbers = self.numbers()
        first_row = numbers.rows(np.asarray(self.first_kept, dtype=np.int64)).tolist()
        return PositionsFile(
            str(self.path),
            list(self.accounts),
            list(self.names),
            _frozen_cat(self.acc_parts, np.int64),
            _frozen_cat(self.name_parts, np.int64),
            _frozen_cat(self.qty_parts, np.float64),
            [int(r) for r in first_row],
            numbers,
            tuple(sorted(self.rejects, key=lambda r: r.row)),
        )


def _frozen_cat(parts: list[Any], dtype: type[np.generic]) -> Any:
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    out.flags.writeable = False
    return out


def _cell(col: pa.Array, i: int) -> object:
    """Value ``i`` of ``col``; text as raw bytes (it may not be UTF-8)."""
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_string(t):
        col = col.view(pa.binary())
    elif pa.types.is_large_string(t):
        col = col.view(pa.large_binary())
    return col[i].as_py()


def _raw_bytes(col: pa.Array, i: int) -> bytes | None:
    """Value ``i`` of a text column as bytes (``None`` when null)."""
    value = _cell(col, i)
    return value if isinstance(value, bytes) or value is None else str(value).encode()


def _raw(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")[:100]
    return str(value)[:100]


def read_positions(path: Path | str, *, on_error: OnError = "refuse") -> PositionsFile:
    """Read and validate a positions file into integer codes (see the module docstring).

    Parameters
    ----------
    path
        A ``.parquet`` or ``.csv`` file.
    on_error
        ``"refuse"``: the first bad row raises; ``"skip"``: bad rows become
        :attr:`PositionsFile.rejects` and the others are read.

    Raises
    ------
    InputError
        ``file: row N: field: reason`` for a bad row (refuse), or ``file: reason`` for a file
        that cannot be read, lacks a column, or has no rows.
    """
    p = Path(path)
    if on_error not in ("refuse", "skip"):
        raise InputError(f"on_error {on_error!r}: use 'refuse' or 'skip'")
    suffix = p.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"{p}: unknown positions format {suffix!r} (use .parquet or .csv)")
    return _read(p, on_error, account=None)


def read_book_csv(path: Path, account: str) -> PositionsFile:
    """A one-account CSV book (``instrument,quantity``; a portfolio CSV file), refused on error.

    The rows are validated exactly as a positions file's, under the account ``account``.
    """
    return _read(path, "refuse", account=account)


def _read(p: Path, on_error: OnError, *, account: str | None) -> PositionsFile:
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    bad: list[BadRow] = []
    csv = p.suffix.lower() == ".csv"
    if csv:
        stream = open_csv(p, COLUMNS if account is None else COLUMNS[1:])
        batches, bad = stream.batches, stream.bad_rows
        reader = _Reader(p, on_error, 2, stream.guard)
    else:
        batches = _parquet(p)
        reader = _Reader(p, on_error, 1)
    reader.one_account = account is not None
    for batch in batches:
        if account is not None:
            batch = pa.RecordBatch.from_arrays(
                [pa.repeat(account, batch.num_rows), *batch.columns], names=list(COLUMNS)
            )
        reader.batch(batch, csv=csv, ragged=reader.bad_rows(bad))
    last = reader.bad_rows(bad)  # ragged rows after the last record
    if last is not None:
        raise reader.fail(last.row, last.reason)
    if reader.kept == 0 and not reader.rejects and account is None:
        raise InputError(f"{p}: no positions")
    return reader.result()


def _lengths(col: pa.Array) -> IntArray:
    out: IntArray = np.asarray(
        pc.fill_null(pc.utf8_length(col), 0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    return out
