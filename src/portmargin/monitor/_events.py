r"""Input events of the monitor (market updates and account changes) and their JSON lines.

Every input event carries a feed sequence number ``seq`` (an integer in ``[1, 2^63 − 1]``,
strictly increasing within a feed) and a market time (ISO-8601 with a zone). A feed also
gives each item its ``position`` (the line number of a JSON-lines feed; the sequence number
of a generated one), the resume key of a restart. One JSON object per line::

    {"seq": 7, "type": "market", "time": "2026-02-05T03:00:00Z", "underlying": "BTC",
     "index": 70150.0, "perpetual": 70120.0, "forwards": {"27MAR26": 70900.0},
     "vols": {"BTC-27MAR26-70000-P": 0.55}, "settlements": {"5FEB26": 70210.5}}
    {"seq": 8, "type": "trade", "time": "...", "account": "acct-001",
     "instrument": "BTC-27MAR26-70000-P", "quantity": -1}
    {"seq": 9, "type": "deposit", "time": "...", "account": "acct-001", "currency": "USDC",
     "amount": 5000}
    {"seq": 10, "type": "withdrawal", ...same fields as deposit...}

A market line needs ``index``; ``perpetual``, ``forwards``, ``vols``, ``settlements`` and
``rate`` are optional and update the underlying's previous state (the monitor carries the
rest over, see :mod:`portmargin.monitor._validate`). The full format, with units and
bounds, is documented in ``docs/monitor.md``.

A line that is not valid JSON, is not an object, lacks a field, has a field of the wrong type
or a sequence number outside ``[1, 2^63 − 1]`` becomes a :class:`Malformed` item (its ``seq``
is ``None`` when none could be read), which the monitor records as a rejection with the
reason. Values are *not* range-checked here: the monitor validates every event against the
documented bounds and the current state before applying it (:mod:`._validate`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from portmargin.errors import InputError
from portmargin.instruments import expiry_code, expiry_from_code

__all__ = [
    "SEQ_MAX",
    "AccountChange",
    "FeedItem",
    "Malformed",
    "MarketUpdate",
    "jsonable",
    "one_line",
    "parse_feed_line",
    "to_feed_line",
]

SEQ_MAX = 2**63 - 1
"""Largest sequence number: a signed 64-bit integer (SQL ``BIGINT``)."""
LINE_EXCERPT = 200
"""Characters of a rejected line kept in its ``rejected`` event."""
REASON_MAX = 300
"""Characters of a rejection reason (one line)."""


def _empty() -> Mapping[Any, float]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """New market data for one underlying (index, perpetual, forwards by expiry, option vols).

    ``forwards`` maps expiry timestamps to USD forwards, ``vols`` option names to mark
    implied vols (decimals), ``settlements`` past expiries to their settlement prices (USD);
    ``rate`` is the underlying's continuously compounded rate (``None``: unchanged, 0 at
    first). ``position`` is the item's place in its feed (the resume key; ``None`` when the
    item was made in code, then ``seq`` is). Values are *not* validated here.
    """

    seq: int
    time: datetime
    underlying: str
    index: float
    perpetual: float | None = None
    forwards: Mapping[datetime, float] = field(default_factory=_empty)
    vols: Mapping[str, float] = field(default_factory=_empty)
    settlements: Mapping[datetime, float] = field(default_factory=_empty)
    rate: float | None = None
    position: int | None = None

    @property
    def kind(self) -> str:
        """``"market"``."""
        return "market"


@dataclass(frozen=True, slots=True)
class AccountChange:
    """A trade (``instrument``, ``quantity``), deposit or withdrawal (``currency``, ``amount``)."""

    seq: int
    time: datetime
    kind: str
    account: str
    instrument: str = ""
    quantity: float = 0.0
    currency: str = ""
    amount: float = 0.0
    position: int | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-ready fields of the change (a non-finite number as its ``repr``)."""
        if self.kind == "trade":
            return {"instrument": self.instrument, "quantity": jsonable(self.quantity)}
        return {"currency": self.currency, "amount": jsonable(self.amount)}


@dataclass(frozen=True, slots=True)
class Malformed:
    """A feed line that could not be parsed (``seq`` is ``None`` if none could be read)."""

    seq: int | None
    time: datetime | None
    line: str
    reason: str
    position: int | None = None

    @property
    def kind(self) -> str:
        """``"malformed"``."""
        return "malformed"


FeedItem = MarketUpdate | AccountChange | Malformed


def one_line(text: object, limit: int = REASON_MAX) -> str:
    """``text`` on one line (whitespace runs collapsed), at most ``limit`` characters."""
    out = " ".join(str(text).split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its ``repr`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _time(text: object) -> datetime:
    if not isinstance(text, str):
        raise InputError("time: expected an ISO-8601 string")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"time: {text[:40]!r} is not an ISO-8601 time") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise InputError(f"time: {text[:40]!r} needs a time zone (use ...Z for UTC)")
    return t


def _float(v: object, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{where}: expected a number, got {one_line(repr(v), 40)}")
    try:
        return float(v)
    except OverflowError:
        raise InputError(f"{where}: {one_line(repr(v), 40)} is too large for a number") from None


def _num(doc: Mapping[str, Any], key: str) -> float:
    return _float(doc.get(key), key)


def _object(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{key}: expected an object")
    return value


def _by_expiry(doc: Mapping[str, Any], key: str) -> Mapping[datetime, float]:
    out: dict[datetime, float] = {}
    for code, value in _object(doc, key).items():
        out[expiry_from_code(str(code))] = _float(value, f"{key}.{code}")
    return MappingProxyType(out)


def _seq(doc: Mapping[str, Any]) -> int:
    v = doc.get("seq")
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"seq: expected an integer, got {one_line(repr(v), 40)}")
    if not 1 <= v <= SEQ_MAX:
        shown = str(v) if len(str(v)) <= 30 else f"an integer of {len(str(v))} digits"
        raise InputError(f"seq: {shown} is outside [1, 2^63 - 1]")
    return v


def parse_feed_line(line: str, *, position: int | None = None) -> FeedItem:
    """Parse one JSON line (see the module docstring); never raises.

    ``position`` is the line's place in its feed (its line number), kept on the item.
    """
    seq: int | None = None
    time: datetime | None = None
    try:
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise InputError("expected a JSON object")
        seq = _seq(doc)
        time = _time(doc.get("time"))
        kind = doc.get("type")
        if kind == "market":
            und = doc.get("underlying")
            if not isinstance(und, str) or not und:
                raise InputError("underlying: expected a name")
            perp = doc.get("perpetual")
            rate = doc.get("rate")
            vols = {str(k): _float(v, f"vols.{k}") for k, v in _object(doc, "vols").items()}
            return MarketUpdate(
                seq,
                time,
                und,
                _num(doc, "index"),
                None if perp is None else _num(doc, "perpetual"),
                _by_expiry(doc, "forwards"),
                MappingProxyType(vols),
                _by_expiry(doc, "settlements"),
                None if rate is None else _num(doc, "rate"),
                position,
            )
        if kind in ("trade", "deposit", "withdrawal"):
            acct = doc.get("account")
            if not isinstance(acct, str) or not acct:
                raise InputError("account: expected an id")
            if kind == "trade":
                inst = doc.get("instrument")
                if not isinstance(inst, str) or not inst:
                    raise InputError("instrument: expected a name")
                qty = _num(doc, "quantity")
                return AccountChange(seq, time, kind, acct, inst, qty, position=position)
            ccy = doc.get("currency")
            if not isinstance(ccy, str) or not ccy:
                raise InputError("currency: expected a code")
            amount = _num(doc, "amount")
            return AccountChange(
                seq, time, kind, acct, currency=ccy, amount=amount, position=position
            )
        raise InputError(f"type: unknown event type {one_line(repr(kind), 40)}")
    except json.JSONDecodeError as exc:
        return Malformed(None, None, line[:LINE_EXCERPT], f"not JSON: {exc.msg}", position)
    except Exception as exc:  # any parse failure becomes a recorded rejection
        return Malformed(seq, time, line[:LINE_EXCERPT], one_line(exc), position)


def to_feed_line(item: MarketUpdate | AccountChange) -> str:
    """The JSON line of an input event (inverse of :func:`parse_feed_line`)."""
    when = item.time.isoformat().replace("+00:00", "Z")
    if isinstance(item, MarketUpdate):
        doc: dict[str, Any] = {
            "seq": item.seq,
            "type": "market",
            "time": when,
            "underlying": item.underlying,
            "index": item.index,
            "perpetual": item.perpetual,
            "forwards": {expiry_code(e): f for e, f in item.forwards.items()},
            "vols": dict(item.vols),
        }
        if item.settlements:
            doc["settlements"] = {expiry_code(e): p for e, p in item.settlements.items()}
        if item.rate is not None:
            doc["rate"] = item.rate
    else:
        doc = {"seq": item.seq, "type": item.kind, "time": when, "account": item.account}
        doc.update(item.describe())
    return json.dumps(jsonable(doc))
