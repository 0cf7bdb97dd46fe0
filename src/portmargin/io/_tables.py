"""Tabular book files read with pyarrow: CSV streams, text and number columns, row numbers.

The CSV reader is pyarrow's (:func:`pyarrow.csv.open_csv`); this module only chooses its
options so that every problem can be named by its row:

* the header is read first (UTF-8, one line) to map the wanted columns, whatever their
  case and order; every column is then read as raw bytes, so no value can fail a
  conversion inside pyarrow without its row;
* a row with more or fewer fields than the header is reported by pyarrow's
  ``invalid_row_handler`` with its row number (the header is row 1) and never read;
* empty lines are kept as rows (``ignore_empty_lines=False``) so that row numbers are line
  numbers; a row whose wanted fields are all empty is a blank line and is ignored;
* text is validated as UTF-8 and numbers are parsed column by column (vectorised); only a
  failing column is looked at value by value, to find which rows fail.

:class:`RowNumbers` maps the index of a kept record back to its row in the file.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.errors import InputError
from portmargin.io._common import one_line

__all__ = [
    "BadRow",
    "CsvStream",
    "RowNumbers",
    "Utf8Guard",
    "blank_rows",
    "number_column",
    "open_csv",
    "show",
    "text_column",
]

_HEADER_MAX_BYTES = 1 << 20
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_BLOCK_BYTES = 1 << 24
# A decimal number as pyarrow parses it (a subset of its grammar, so a value matching this
# always converts), plus inf/nan spellings, which then fail the finiteness check by name.
_NUMBER = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|(?i:inf|infinity|nan))$"


def show(value: str | bytes | None, limit: int = 40) -> str:
    """A field's text for a message: ``repr``, cut at ``limit`` characters."""
    if value is None:
        return "empty"
    if isinstance(value, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            value = value.decode("utf-8")
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


@dataclass(frozen=True, slots=True)
class BadRow:
    """A CSV row whose field count differs from the header's (never read)."""

    row: int
    fields: int
    expected: int
    text: str

    @property
    def reason(self) -> str:
        """``5 fields, the header has 3``."""
        noun = "field" if self.fields == 1 else "fields"
        return f"{self.fields} {noun}, the header has {self.expected}"


@dataclass(frozen=True, slots=True)
class RowNumbers:
    """File row of each kept record.

    Records are the rows a reader yields, numbered from 0; the first is file row ``first``
    (2 for a CSV file with its header, 1 for Parquet). ``gaps`` are the file rows, in
    increasing order, that yield no record (CSV rows with the wrong number of fields) and
    ``removed`` the records, in increasing order, dropped after reading (blank or rejected
    rows).
    """

    first: int
    gaps: IntArray
    removed: IntArray

    @classmethod
    def of(cls, first: int, gaps: Sequence[int] = (), removed: Sequence[int] = ()) -> RowNumbers:
        """Row numbers from lists (copied into read-only arrays)."""
        g = np.array(gaps, dtype=np.int64)
        r = np.array(removed, dtype=np.int64)
        g.flags.writeable = False
        r.flags.writeable = False
        return cls(first, g, r)

    def record_rows(self, records: IntArray) -> IntArray:
        """File rows of records (indices before removal)."""
        return self.first + _skip(np.asarray(records, dtype=np.int64), self.gaps - self.first)

    def rows(self, kept: IntArray) -> IntArray:
        """File rows of kept records (indices after removal)."""
        return self.record_rows(_skip(np.asarray(kept, dtype=np.int64), self.removed))


def _skip(k: IntArray, holes: IntArray) -> IntArray:
    """The ``k``-th integer ≥ 0 not in the sorted ``holes``, for each ``k``."""
    if holes.size == 0:
        return k
    adjusted = holes - np.arange(holes.size, dtype=np.int64)
    out: IntArray = k + np.searchsorted(adjusted, k, side="right")
    return out


class Utf8Guard(io.RawIOBase):
    """A binary file whose bytes that are not UTF-8 are read as U+FFFD (``replaced`` is set).

    pyarrow decodes the text of a row with the wrong number of fields before it calls the
    ``invalid_row_handler``, and fails outside any handler on bytes that are not UTF-8; the
    guard makes every row decodable, so such a row is reported like any other. A field that
    held such bytes contains U+FFFD, which the readers report as not UTF-8. The check is
    :func:`codecs.utf_8_decode` per chunk (a character split across chunks is carried over).
    """

    def __init__(self, raw: BinaryIO, chunk: int = 1 << 22) -> None:
        super().__init__()
        self.raw = raw
        self.chunk = chunk
        self.replaced = False
        self._out = bytearray()
        self._tail = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while len(self._out) < len(view) and not self._eof:
            raw = self.raw.read(self.chunk)
            self._eof = not raw
            data = self._tail + raw
            try:
                _, used = codecs.utf_8_decode(data, "strict", self._eof)
                clean = data[:used]
            except UnicodeDecodeError:
                text, used = codecs.utf_8_decode(data, "replace", self._eof)
                clean = text.encode("utf-8")
                self.replaced = True
            self._tail = data[used:]
            self._out += clean
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        del self._out[:n]
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass(slots=True)
class CsvStream:
    """Record batches of a CSV file: the wanted columns as raw bytes, in the order asked.

    ``bad_rows`` grows while the batches are read: every row with the wrong number of
    fields, up to the end of the last batch yielded (with its row number). ``guard`` tells
    whether bytes that are not UTF-8 were read as U+FFFD.
    """

    path: Path
    header: tuple[str, ...]
    batches: Iterator[pa.RecordBatch]
    bad_rows: list[BadRow]
    guard: Utf8Guard


def _header(path: Path) -> tuple[str, ...]:
    try:
        with path.open("rb") as f:
            head = f.read(_HEADER_MAX_BYTES)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({one_line(exc.strerror or exc)})") from None
    end = _NEWLINE.search(head)  # \n, \r\n or a lone \r, as pyarrow ends a row
    if end is None and len(head) == _HEADER_MAX_BYTES:
        raise InputError(f"{path}: header: longer than {_HEADER_MAX_BYTES:,} bytes")
    line = head if end is None else head[: end.start()]
    try:
        text = line.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: header: not UTF-8 text (byte 0x{line[exc.start : exc.start + 1].hex()} "
            f"at offset {exc.start})"
        ) from None
    if not text.strip():
        raise InputError(f"{path}: no header (an empty first line)")
    if text.count('"') % 2:
        raise InputError(f"{path}: header: unbalanced quotes")
    try:
        return tuple(next(csv.reader([text])))
    except csv.Error as exc:
        raise InputError(f"{path}: header: {one_line(exc)}") from None


def open_csv(path: Path, wanted: Sequence[str], *, fold_case: bool = True) -> CsvStream:
    """Open a CSV file whose header has the ``wanted`` columns (others are ignored).

    With ``fold_case`` the header's names match case-insensitively and ignoring spaces
    around them.

    Raises
    ------
    InputError
        ``file: header: ...`` for a missing, duplicated or unreadable header.
    """
    header = _header(path)
    keys = [h.strip().lower() if fold_case else h for h in header]
    missing = [w for w in wanted if w not in keys]
    if missing:
        raise InputError(
            f"{path}: header must have the columns {','.join(wanted)} "
            f"(missing {', '.join(missing)}; found {','.join(header)[:200]})"
        )
    for w in wanted:
        if keys.count(w) > 1:
            raise InputError(f"{path}: header: column {w!r} appears {keys.count(w)} times")
    names = [f"c{i}" for i in range(len(header))]
    include = [names[keys.index(w)] for w in wanted]
    bad: list[BadRow] = []

    def handler(row: pacsv.InvalidRow) -> str:
        bad.append(
            BadRow(
                int(row.number) if row.number is not None else -1,
                int(row.actual_columns),
                int(row.expected_columns),
                str(row.text),
            )
        )
        return "skip"

    try:
        guard = Utf8Guard(path.open("rb"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({one_line(exc.strerror or exc)})") from None
    try:
        reader = pacsv.open_csv(
            guard,
            read_options=pacsv.ReadOptions(
                use_threads=False, block_size=_BLOCK_BYTES, skip_rows=1, column_names=names
            ),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=handler, ignore_empty_lines=False, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(include, pa.binary()),
                include_columns=include,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        guard.close()
        raise InputError(f"{path}: cannot read as CSV ({one_line(exc)})") from None
    return CsvStream(path, header, _guarded(path, reader, guard), bad, guard)


def _guarded(
    path: Path, reader: pacsv.CSVStreamingReader, guard: Utf8Guard
) -> Iterator[pa.RecordBatch]:
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{path}: cannot read as CSV ({one_line(exc)})") from None
            yield batch
    finally:
        guard.close()


def blank_rows(columns: Sequence[pa.Array]) -> BoolArray:
    """Rows whose every given (raw bytes) column is empty: blank lines."""
    blank = np.ones(len(columns[0]), dtype=np.bool_)
    for col in columns:
        blank &= np.asarray(pc.fill_null(pc.binary_length(col), 0).to_numpy()) == 0
    return blank


def text_column(col: pa.Array, *, replaced: bool = False) -> tuple[pa.Array, BoolArray]:
    """A column as UTF-8 strings, and the mask of values that are not UTF-8 text.

    Strings pass as they are, raw bytes are validated (vectorised; value by value only when
    some value fails), integers are written in decimal. Nulls stay null. With ``replaced``
    (a :class:`Utf8Guard` replaced bytes) a value holding U+FFFD is not UTF-8 text either.

    Raises
    ------
    TypeError
        For any other type (the caller names the column).
    """
    n = len(col)
    ok = np.zeros(n, dtype=np.bool_)
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            col.validate(full=True)  # a Parquet writer need not have checked its UTF-8
        except pa.ArrowInvalid:
            col = col.view(pa.binary() if pa.types.is_string(t) else pa.large_binary())
            t = col.type
        else:
            return col.cast(pa.string()), ok
    if pa.types.is_integer(t):
        return col.cast(pa.string()), ok
    if not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        raise TypeError(str(t))
    try:
        text = col.cast(pa.string())
    except pa.ArrowInvalid:
        pass
    else:
        if replaced:
            marked = pc.fill_null(pc.match_substring(text, "\ufffd"), False)
            ok = np.asarray(marked.to_numpy(zero_copy_only=False), dtype=np.bool_)
            if ok.any():
                text = pc.if_else(pa.array(ok), pa.scalar(None, pa.string()), text)
        return text, ok
    values: list[str | None] = []
    bad = np.zeros(n, dtype=np.bool_)
    for i, raw in enumerate(col.to_pylist()):
        if raw is None:
            values.append(None)
            continue
        try:
            values.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            values.append(None)
            bad[i] = True
    return pa.array(values, pa.string()), bad


def number_column(col: pa.Array) -> tuple[FloatArray, BoolArray]:
    """A column as float64, and the mask of values that are not numbers (or null).

    Numbers pass as they are (booleans are not numbers); text is parsed by pyarrow (decimal
    notation, ``1e3``, ``-.5``; spaces around are ignored), a whole column at a time; only a
    column with a bad value is matched value by value against the grammar.

    Raises
    ------
    TypeError
        For a column of any other type (the caller names the column).
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        out = col.cast(pa.float64(), safe=False)  # 2**53 + 1 is a number, if not exactly
        return _floats(out), _nulls(out)
    if not (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    ):
        raise TypeError(str(t))
    col, _ = text_column(col)  # validated: a value that is not UTF-8 is null, not a number
    text = pc.utf8_trim_whitespace(col)
    try:
        out = text.cast(pa.float64())
        return _floats(out), _nulls(out)
    except pa.ArrowInvalid:
        pass
    valid = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    out = pc.if_else(valid, text, pa.scalar("0")).cast(pa.float64())
    bad = ~valid.to_numpy(zero_copy_only=False)
    return _floats(out), bad


def _nulls(a: pa.Array) -> BoolArray:
    if a.null_count == 0:
        return np.zeros(len(a), dtype=np.bool_)
    out: BoolArray = pc.is_null(a).to_numpy(zero_copy_only=False)
    return out


def _floats(a: pa.Array) -> FloatArray:
    out: FloatArray = np.asarray(
        pc.fill_null(a, 0.0).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    return out
