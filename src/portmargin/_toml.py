"""Parameter-file helpers shared by model files, VaR models, Derive files and rule sets.

:func:`read_toml` / :func:`parse_toml` read a file with one-line errors. Two merge rules,
both pure (the inputs are never modified):

* :func:`deep_merge`: tables merge key by key, recursively; any other value in ``over``
  (a number, a string, an array) replaces the value in ``base``.
* :func:`merge_by_kind`: the same, except that the arrays of tables named in ``keyed``
  (a model file's ``[[charges]]`` and ``[[credits]]``) merge entry by entry, matched on an
  identifying key (``kind``). An entry of ``over`` whose kind is in ``base`` updates that
  entry key by key; an entry with a new kind is appended; ``remove = true`` drops the entry.
  Where an entry has sub-tables that refine its top level (``BTC = { m_inc = ... }``), a
  top-level key set by ``over`` also replaces that key in ``base``'s sub-tables: the latest
  file to set a key wins, and within one file a sub-table refines the top level.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from portmargin.errors import ParameterError

__all__ = ["REMOVE", "deep_merge", "merge_by_kind", "parse_toml", "read_toml"]

REMOVE = "remove"
"""The key that, set to ``true`` in an override entry, removes the matching entry."""


def parse_toml(source: str, text: str, *, reserved: Iterable[str] = ()) -> dict[str, Any]:
    """``text`` parsed as TOML.

    Raises
    ------
    ParameterError
        ``"<source>: bad TOML (<reason>)"``, or ``"<source>: <key>: unknown key (the loader
        sets it)"`` for a ``reserved`` top-level key, one the loader records itself.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{source}: bad TOML ({exc})") from None
    for key in reserved:
        if key in data:
            raise ParameterError(f"{source}: {key}: unknown key (the loader sets it)")
    return data


def read_toml(path: Path, *, reserved: Iterable[str] = ()) -> dict[str, Any]:
    """The TOML file ``path`` (UTF-8), as :func:`parse_toml`; unreadable is one line too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    return parse_toml(str(path), text, reserved=reserved)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` table by table (``over`` wins on scalar keys)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def merge_by_kind(
    base: dict[str, Any],
    over: dict[str, Any],
    *,
    keyed: Mapping[str, str],
    is_sub_table: Callable[[str, Any], bool] | None = None,
) -> dict[str, Any]:
    """``over`` merged into ``base``; arrays of tables named in ``keyed`` merge by their key.

    Parameters
    ----------
    base
        The complete parameter document (parsed TOML).
    over
        The override document.
    keyed
        Top-level array name → identifying key, e.g. ``{"charges": "kind"}``.
    is_sub_table
        ``(key, value) → bool``: which keys of an entry are sub-tables refining its top
        level. A top-level key of an ``over`` entry is then dropped from the matching
        ``base`` entry's sub-tables before the merge.

    Raises
    ------
    ParameterError
        One line naming the entry in ``over`` (``charges[0] (roll_shock).remove: ...``)
        when an entry has no identifying key, repeats one, removes an entry ``base`` does
        not have, or when ``base`` itself repeats a key (the match would be ambiguous).
    """
    out = deep_merge(base, {k: v for k, v in over.items() if k not in keyed})
    for name, ident in keyed.items():
        if name in over:
            out[name] = _merge_array(name, ident, base.get(name, []), over[name], is_sub_table)
    return out


def _merge_array(
    name: str,
    ident: str,
    base: Any,
    over: Any,
    is_sub_table: Callable[[str, Any], bool] | None,
) -> list[Any]:
    if not _is_table_array(over):
        raise ParameterError(f"{name}: must be an array of tables ([[{name}]])")
    if not _is_table_array(base):
        raise ParameterError(f"{name}: the model's {name} are not an array of tables")
    out: list[Any] = list(base)
    where: dict[str, int] = {}
    for i, entry in enumerate(out):
        key = entry.get(ident)
        if isinstance(key, str):
            if key in where:
                raise ParameterError(
                    f"{name}[{i}] ({key}): the model has two entries of this {ident}, "
                    "so an override cannot tell which one it changes"
                )
            where[key] = i
    seen: set[str] = set()
    drop: set[int] = set()
    for i, entry in enumerate(over):
        key = entry.get(ident)
        if not isinstance(key, str):
            raise ParameterError(
                f"{name}[{i}].{ident}: required in an override (entries merge by {ident})"
            )
        label = f"{name}[{i}] ({key})"
        if key in seen:
            raise ParameterError(f"{label}: this {ident} appears twice in the override")
        seen.add(key)
        remove = entry.get(REMOVE, False)
        if not isinstance(remove, bool):
            raise ParameterError(f"{label}.{REMOVE}: must be true or false, got {remove!r}")
        body = {k: v for k, v in entry.items() if k != REMOVE}
        if remove:
            extra = sorted(k for k in body if k != ident)
            if extra:
                raise ParameterError(
                    f"{label}.{extra[0]}: an entry with {REMOVE} = true takes no other keys"
                )
            if key not in where:
                raise ParameterError(
                    f"{label}.{REMOVE}: the model has no {name} entry of this {ident}"
                )
            drop.add(where[key])
        elif key in where:
            target = out[where[key]]
            if is_sub_table is not None:
                target = _unshadow(target, body, is_sub_table)
            out[where[key]] = deep_merge(target, body)
        else:
            out.append(body)
    return [entry for i, entry in enumerate(out) if i not in drop]


def _unshadow(
    entry: dict[str, Any], over: dict[str, Any], is_sub_table: Callable[[str, Any], bool]
) -> dict[str, Any]:
    """``entry`` without the sub-table values of keys ``over`` sets at its top level."""
    top = {k for k, v in over.items() if not is_sub_table(k, v)}
    out: dict[str, Any] = {}
    for k, v in entry.items():
        if is_sub_table(k, v) and isinstance(v, dict):
            out[k] = {sk: sv for sk, sv in v.items() if sk not in top}
        else:
            out[k] = v
    return out


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, dict) for x in value)
