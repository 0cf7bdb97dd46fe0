"""Helpers shared by the file loaders: one-line error messages from pydantic and parsers.

Every function raises :class:`~portmargin.errors.InputError` with one line naming the file
(and the row or field when known) and the reason; nothing else escapes for a bad file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from portmargin.errors import InputError

__all__ = ["one_line", "parse_time", "read_json", "read_text", "validation_message"]


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def read_text(path: Path) -> str:
    """Read a UTF-8 file or raise :class:`InputError` naming it (and the first bad byte)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise InputError(
            f"{path}: not UTF-8 text (byte 0x{bad} at offset {exc.start}: {one_line(exc.reason)})"
        ) from None
    except OSError as exc:
        raise InputError(
            f"{path}: cannot read ({exc.__class__.__name__}: {one_line(exc)})"
        ) from None


def read_json(path: Path) -> Any:
    """Parse a JSON file or raise :class:`InputError` with the line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: line {exc.lineno} column {exc.colno}: bad JSON ({exc.msg})"
        ) from None
    except (ValueError, RecursionError) as exc:
        # e.g. an integer literal longer than Python's 4,300-digit conversion limit, or
        # nesting deeper than the interpreter's recursion limit.
        raise InputError(f"{path}: bad JSON ({one_line(exc) or exc.__class__.__name__})") from None


def validation_message(path: Path | str, exc: ValidationError) -> str:
    """First pydantic error as ``file: field.path: reason`` (one line)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return one_line(f"{path}: {loc}: {err['msg']}")


def parse_time(text: str, *, where: str) -> datetime:
    """Parse an ISO-8601 timestamp in UTC; naive times are rejected, ``Z`` means UTC.

    Raises
    ------
    InputError
        ``where: reason`` for text that is not a timestamp, has no zone, or cannot be
        expressed in UTC (e.g. year 1 with a positive offset).
    """
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: {text!r} is not an ISO-8601 timestamp") from None
    if value.tzinfo is None:
        raise InputError(f"{where}: {text!r} has no time zone (append Z for UTC)")
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(f"{where}: {text!r} is out of the range of UTC timestamps") from None
