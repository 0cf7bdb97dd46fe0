r"""Bounds on book inputs: quantities, balances, names and ids, checked where files are read.

Every loader of a book (portfolio JSON/YAML/CSV, positions Parquet/CSV, the accounts file)
refuses a value outside these bounds with one line naming the file, the row or field, the
value and the limit. The bounds are far beyond any real account and tight enough that
nothing derived from them overflows a float64: a contract value is at most ``1e6·2.7e52``
USD (:mod:`portmargin.market.limits`), times ``1e9`` contracts is below ``1e69``, and a sum
of a million such positions stays below ``1e75``, far from ``1.8e308``.

=======================  ====================  =============================================
input                    allowed               unit
=======================  ====================  =============================================
position quantity        ``|q| ≤ 1e9``         contracts (per row and net per instrument)
cash balance             ``|b| ≤ 1e12``        units of the currency (per row and net)
instrument name          1 to 100 characters   Deribit's names are at most ~30
account id, book name    1 to 200 characters
currency code            1 to 20 characters
description              up to 10,000 chars
JSON / YAML document     up to 256 MiB
=======================  ====================  =============================================

Numbers are written in messages as ``repr(float(x))`` (``1e+308``), never as NumPy reprs.
"""

from __future__ import annotations

import math

from portmargin.errors import InputError

__all__ = [
    "BALANCE_MAX",
    "CURRENCY_MAX_CHARS",
    "DOCUMENT_MAX_BYTES",
    "ID_MAX_CHARS",
    "NAME_MAX_CHARS",
    "QUANTITY_MAX",
    "TEXT_MAX_CHARS",
    "bounded",
    "check_balance",
    "check_currency",
    "check_id",
    "check_instrument",
    "check_quantity",
    "fmt",
    "fmt_limit",
]

QUANTITY_MAX = 1e9
"""Largest absolute position, in contracts (one row, and an account's net per instrument)."""
BALANCE_MAX = 1e12
"""Largest absolute cash balance, in units of its currency."""
NAME_MAX_CHARS = 100
"""Longest instrument name accepted."""
ID_MAX_CHARS = 200
"""Longest account id or book name accepted."""
CURRENCY_MAX_CHARS = 20
"""Longest currency code accepted."""
TEXT_MAX_CHARS = 10_000
"""Longest free-text field accepted (a portfolio's description)."""
DOCUMENT_MAX_BYTES = 256 * 1024 * 1024
"""Largest JSON or YAML document read into memory (positions files are streamed)."""


def fmt(value: float) -> str:
    """A number for a message: ``repr(float(x))`` (``1e+308``, ``inf``, ``-0.5``)."""
    return repr(float(value))


def fmt_limit(limit: float) -> str:
    """A power-of-ten limit as written in the docs: ``1e9``, ``1e12``."""
    return f"{limit:.0e}".replace("e+0", "e").replace("e+", "e")


def bounded(value: float, limit: float, where: str, unit: str) -> float:
    """``value`` as a float if finite and ``|value| ≤ limit``, else one-line InputError."""
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{where}: {fmt(out)} is not a finite number")
    if abs(out) > limit:
        lim = fmt_limit(limit)
        raise InputError(f"{where}: {fmt(out)} is outside [-{lim}, {lim}] {unit}")
    return out


def check_quantity(value: float, where: str) -> float:
    """A position in ``[-QUANTITY_MAX, QUANTITY_MAX]`` contracts.

    Raises
    ------
    InputError
        ``where: 1e+308 is outside [-1e9, 1e9] contracts`` (or ``is not a finite number``).
    """
    return bounded(value, QUANTITY_MAX, where, "contracts")


def check_balance(value: float, where: str) -> float:
    """A cash balance in ``[-BALANCE_MAX, BALANCE_MAX]`` units of its currency.

    Raises
    ------
    InputError
        ``where: 1e+306 is outside [-1e12, 1e12] units`` (or ``is not a finite number``).
    """
    return bounded(value, BALANCE_MAX, where, "units")


def _text(value: str, limit: int, where: str, what: str) -> str:
    if not value.strip():
        raise InputError(f"{where}: empty {what}")
    if len(value) > limit:
        raise InputError(
            f"{where}: {what} of {len(value):,} characters (at most {limit}): {value[:20]!r}..."
        )
    return value


def check_instrument(name: str, where: str) -> str:
    """A non-empty instrument name of at most :data:`NAME_MAX_CHARS` characters."""
    return _text(name, NAME_MAX_CHARS, where, "instrument name")


def check_id(value: str, where: str) -> str:
    """A non-empty account id or book name of at most :data:`ID_MAX_CHARS` characters."""
    return _text(value, ID_MAX_CHARS, where, "id")


def check_currency(code: str, where: str) -> str:
    """A non-empty currency code of at most :data:`CURRENCY_MAX_CHARS` characters."""
    return _text(code, CURRENCY_MAX_CHARS, where, "currency code")
