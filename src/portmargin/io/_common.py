"""Helpers shared by the file loaders: one-line error messages from pydantic and parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from portmargin.errors import InputError

__all__ = ["parse_time", "read_json", "read_text", "validation_message"]


def read_text(path: Path) -> str:
    """Read a UTF-8 file or raise :class:`InputError` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file or raise :class:`InputError` with the line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: line {exc.lineno} column {exc.colno}: bad JSON ({exc.msg})"
        ) from None


def validation_message(path: Path | str, exc: ValidationError) -> str:
    """First pydantic error as ``file: field.path: reason``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{path}: {loc}: {err['msg']}"


def parse_time(text: str, *, where: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive times are rejected, ``Z`` means UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: {text!r} is not an ISO-8601 timestamp") from None
    if value.tzinfo is None:
        raise InputError(f"{where}: {text!r} has no time zone (append Z for UTC)")
    return value.astimezone(UTC)
