r"""Positions from an exchange: a saved Deribit ``private/get_positions`` response as a portfolio.

Deribit's JSON-RPC answer (https://docs.deribit.com/#private-get_positions, also at
https://docs.deribit.com/api-reference/account-management/private-get_positions) is
``{"jsonrpc": "2.0", "id": ..., "result": [position, ...]}`` with, per position,
``instrument_name``, ``kind`` (``future``, ``option``, ...), ``direction`` (``buy``,
``sell`` or ``zero``), ``size`` and ``size_currency``. Its units, as documented:

* ``size``: "Position size for futures size in quote currency (e.g. USD), for options size
  is in base currency (e.g. BTC)";
* ``size_currency``: "Only for futures, position size in base currency".

The engine counts every BTC/ETH contract in coins (one contract = one coin), so::

    option  quantity = ±|size|                                     coins
    future  quantity = ±|size_currency|                            coins
                     = ±|size| / mark_price   (inverse future without size_currency:
                                               USD / USD per coin)

with the sign of ``direction`` (``sell`` < 0). The documented example, a BTC-PERPETUAL
position of ``size`` 50 USD at ``mark_price`` 7,476.65, has ``size_currency``
0.006687487 = 50 / 7,476.65 BTC. Positions of direction ``zero`` are skipped; combo kinds
(``future_combo``, ``option_combo``) are refused, since Deribit also reports their legs.
The response carries no balances: ``cash`` comes from elsewhere (e.g. the account summary).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from portmargin.errors import InputError
from portmargin.portfolio import Portfolio, Position

__all__ = ["is_deribit_positions", "portfolio_from_deribit"]

_KINDS = frozenset({"future", "option"})


def is_deribit_positions(doc: object) -> bool:
    """True for a parsed ``private/get_positions`` response (or an error answer to one)."""
    if isinstance(doc, Mapping):
        if "jsonrpc" in doc and ("result" in doc or "error" in doc):
            result = doc.get("result")
            return result is None or _is_position_list(result)
        return False
    return _is_position_list(doc) and bool(doc)


def _is_position_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, Mapping) and "instrument_name" in p for p in value
    )


def _number(row: Mapping[str, Any], key: str, where: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}.{key}: {value!r} is not a number")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{where}.{key}: not a finite number")
    return out


def portfolio_from_deribit(
    doc: object,
    *,
    cash: Mapping[str, float] | None = None,
    name: str = "deribit",
    source: str = "get_positions",
) -> Portfolio:
    """The portfolio of a Deribit ``private/get_positions`` response (see the module docstring).

    Parameters
    ----------
    doc
        The parsed JSON: the JSON-RPC envelope, or its ``result`` list.
    cash
        Balances to hold beside the positions (the response has none).
    name, source
        The portfolio's name, and what error messages call the document (a file name).

    Raises
    ------
    InputError
        ``source: result.I.field: reason`` for a malformed position, or the exchange's own
        error message for an error answer.

    Examples
    --------
    >>> doc = {"jsonrpc": "2.0", "result": [
    ...     {"instrument_name": "BTC-PERPETUAL", "kind": "future", "direction": "sell",
    ...      "size": -50, "size_currency": -0.006687487, "mark_price": 7476.65}]}
    >>> portfolio_from_deribit(doc).net_positions()
    {'BTC-PERPETUAL': -0.006687487}
    """
    if isinstance(doc, Mapping):
        err = doc.get("error")
        if err is not None:
            msg = err.get("message", err) if isinstance(err, Mapping) else err
            raise InputError(f"{source}: the exchange answered with an error: {msg}")
        rows = doc.get("result")
    else:
        rows = doc
    if not isinstance(rows, list):
        raise InputError(f"{source}: result: expected a list of positions")
    positions: list[Position] = []
    for i, row in enumerate(rows):
        where = f"{source}: result.{i}"
        if not isinstance(row, Mapping):
            raise InputError(f"{where}: expected an object")
        instrument = row.get("instrument_name")
        if not isinstance(instrument, str) or not instrument:
            raise InputError(f"{where}.instrument_name: missing")
        where = f"{where} ({instrument})"
        kind = row.get("kind")
        direction = row.get("direction")
        if direction == "zero":
            continue
        if direction not in ("buy", "sell"):
            raise InputError(f"{where}.direction: {direction!r}: expected buy, sell or zero")
        if kind not in _KINDS:
            raise InputError(
                f"{where}.kind: {kind!r}: only future and option positions are read "
                "(combos are reported leg by leg)"
            )
        size = _number(row, "size", where)
        if kind == "option":
            if size is None:
                raise InputError(f"{where}.size: missing")
            coins = abs(size)
        else:
            size_ccy = _number(row, "size_currency", where)
            if size_ccy is not None:
                coins = abs(size_ccy)
            elif "_" in instrument.split("-")[0]:
                raise InputError(f"{where}.size_currency: missing (needed for a linear future)")
            else:
                mark = _number(row, "mark_price", where)
                if size is None or mark is None or mark <= 0:
                    raise InputError(
                        f"{where}: a future needs size_currency, or size and a positive mark_price"
                    )
                coins = abs(size) / mark
        if coins == 0.0:
            continue
        positions.append(Position(instrument, coins if direction == "buy" else -coins))
    return Portfolio(tuple(positions), dict(cash or {}), name)
