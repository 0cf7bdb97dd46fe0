"""Helpers shared by the file loaders: one-line error messages from pydantic and parsers.

Every function raises :class:`~portmargin.errors.InputError` with one line naming the file
(and the row or field when known) and the reason; nothing else escapes for a bad file.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from portmargin.errors import InputError
from portmargin.io.limits import DOCUMENT_MAX_BYTES

__all__ = [
    "one_line",
    "parse_time",
    "read_document",
    "read_json",
    "read_text",
    "read_yaml",
    "validation_message",
]


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


def read_document(path: Path) -> str:
    """:func:`read_text` of a document at most :data:`~portmargin.io.limits.DOCUMENT_MAX_BYTES`.

    Raises
    ------
    InputError
        As :func:`read_text`, or ``file: 300,000,000 bytes, larger than the 268,435,456 a
        document may have`` before reading anything.
    """
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # read_text names the problem
    if size > DOCUMENT_MAX_BYTES:
        raise InputError(
            f"{path}: {size:,} bytes, larger than the {DOCUMENT_MAX_BYTES:,} a document may have"
        )
    return read_text(path)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def read_json(path: Path, *, strict: bool = False) -> Any:
    """Parse a JSON file or raise :class:`InputError` with the line and column.

    ``strict`` documents (portfolio and accounts files) are size-limited
    (:func:`read_document`) and refuse an object with the same key twice, which
    :func:`json.loads` would silently resolve to the last value.
    """
    text = read_document(path) if strict else read_text(path)
    try:
        if strict:
            return json.loads(text, object_pairs_hook=_unique_keys)
        return json.loads(text)
    except _DuplicateKeyError as exc:
        raise InputError(f"{path}: key {exc.key!r} appears twice in one object") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: line {exc.lineno} column {exc.colno}: bad JSON ({exc.msg})"
        ) from None
    except (ValueError, RecursionError) as exc:
        # e.g. an integer literal longer than Python's 4,300-digit conversion limit, or
        # nesting deeper than the interpreter's recursion limit.
        raise InputError(f"{path}: bad JSON ({one_line(exc) or exc.__class__.__name__})") from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases.

    An alias makes a shared reference, so a few lines of nested aliases expand to billions
    of nodes for whoever walks the document (the "billion laughs" document); a book never
    needs them.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _AliasError(event.start_mark.line + 1)
        return super().compose_node(parent, index)


class _AliasError(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def read_yaml(path: Path) -> Any:
    """Parse a YAML document (safe loader, no aliases, size-limited).

    Raises
    ------
    InputError
        ``file: line N: bad YAML (reason)`` or ``file: line N: YAML aliases (*name) are not
        accepted``.
    """
    text = read_document(path)
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except _AliasError as exc:
        raise InputError(
            f"{path}: line {exc.line}: YAML aliases (*name) are not accepted"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = one_line(getattr(exc, "problem", None) or "")
        reason = f" ({problem})" if problem else ""
        raise InputError(f"{path}: {where}bad YAML{reason}") from None
    except (ValueError, RecursionError) as exc:
        # e.g. a timestamp or number YAML cannot represent, or nesting deeper than Python's
        # recursion limit.
        raise InputError(f"{path}: bad YAML ({one_line(exc) or exc.__class__.__name__})") from None


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][\w-]*")


def _key(part: object) -> str:
    """One step of a field path: plain keys and indices as they are, others quoted."""
    text = str(part)
    return text if _PLAIN_KEY.fullmatch(text) else repr(text)


def validation_message(path: Path | str, exc: ValidationError) -> str:
    """First pydantic error as ``file: field.path: reason`` (one line).

    A key that is not a plain name (``":ash"``, ``"a b"``) is quoted, so the path cannot be
    mistaken for the reason.
    """
    err = exc.errors()[0]
    loc = ".".join(_key(p) for p in err["loc"]) or "(top level)"
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
