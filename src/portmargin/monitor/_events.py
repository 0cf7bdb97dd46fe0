"""Input events of the monitor (market updates and account changes) and their JSON lines.

Every input event carries a feed sequence number ``seq`` (strictly increasing within a
feed; the resume key) and a market time. One JSON object per line::

    {"seq": 7, "type": "market", "time": "2026-02-05T03:00:00Z", "underlying": "BTC",
     "index": 70150.0, "perpetual": 70120.0, "forwards": {"27MAR26": 70900.0},
     "vols": {"BTC-27MAR26-70000-P": 0.55}}
    {"seq": 8, "type": "trade", "time": "...", "account": "acct-001",
     "instrument": "BTC-27MAR26-70000-P", "quantity": -1}
    {"seq": 9, "type": "deposit", "time": "...", "account": "acct-001", "currency": "USDC",
     "amount": 5000}
    {"seq": 10, "type": "withdrawal", ...same fields as deposit...}

A line that is not valid JSON or lacks a field becomes a :class:`Malformed` item (with the
line's ``seq`` if one could be read), which the monitor records as a rejection.
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
from portmargin.instruments import expiry_code

__all__ = [
    "AccountChange",
    "FeedItem",
    "Malformed",
    "MarketUpdate",
    "parse_feed_line",
    "to_feed_line",
]


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """New market data for one underlying (index, perpetual, forwards by expiry, option vols).

    ``forwards`` maps expiry timestamps to USD forwards; ``vols`` maps option names to mark
    implied vols (decimals). Values are *not* validated here: the monitor rejects NaNs and
    stale times with a recorded reason.
    """

    seq: int
    time: datetime
    underlying: str
    index: float
    perpetual: float | None = None
    forwards: Mapping[datetime, float] = field(default_factory=lambda: MappingProxyType({}))
    vols: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

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

    def describe(self) -> dict[str, Any]:
        """JSON-ready fields of the change."""
        if self.kind == "trade":
            return {"instrument": self.instrument, "quantity": self.quantity}
        return {"currency": self.currency, "amount": self.amount}


@dataclass(frozen=True, slots=True)
class Malformed:
    """A feed line that could not be parsed."""

    seq: int
    time: datetime | None
    line: str
    reason: str

    @property
    def kind(self) -> str:
        """``"malformed"``."""
        return "malformed"


FeedItem = MarketUpdate | AccountChange | Malformed


def _time(text: object) -> datetime:
    if not isinstance(text, str):
        raise InputError("time: expected an ISO-8601 string")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"time: {text!r} is not an ISO-8601 time") from None
    if t.tzinfo is None:
        raise InputError(f"time: {text!r} needs a time zone")
    return t


def _num(doc: Mapping[str, Any], key: str) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{key}: expected a number, got {v!r}")
    return float(v)


def parse_feed_line(line: str, *, fallback_seq: int) -> FeedItem:
    """Parse one JSON line (see the module docstring); never raises.

    ``fallback_seq`` numbers a line whose own ``seq`` cannot be read.
    """
    seq = fallback_seq
    time: datetime | None = None
    try:
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise InputError("expected a JSON object")
        if isinstance(doc.get("seq"), int):
            seq = int(doc["seq"])
        else:
            raise InputError("seq: expected an integer")
        time = _time(doc.get("time"))
        kind = doc.get("type")
        if kind == "market":
            from portmargin.instruments import expiry_from_code

            und = doc.get("underlying")
            if not isinstance(und, str) or not und:
                raise InputError("underlying: expected a name")
            fwd_doc = doc.get("forwards", {})
            vol_doc = doc.get("vols", {})
            if not isinstance(fwd_doc, dict) or not isinstance(vol_doc, dict):
                raise InputError("forwards/vols: expected objects")
            perp = doc.get("perpetual")
            return MarketUpdate(
                seq,
                time,
                und,
                _num(doc, "index"),
                None if perp is None else _num(doc, "perpetual"),
                MappingProxyType({expiry_from_code(k): _num(fwd_doc, k) for k in fwd_doc}),
                MappingProxyType({str(k): _num(vol_doc, k) for k in vol_doc}),
            )
        if kind in ("trade", "deposit", "withdrawal"):
            acct = doc.get("account")
            if not isinstance(acct, str) or not acct:
                raise InputError("account: expected an id")
            if kind == "trade":
                inst = doc.get("instrument")
                if not isinstance(inst, str) or not inst:
                    raise InputError("instrument: expected a name")
                return AccountChange(seq, time, kind, acct, inst, _num(doc, "quantity"))
            ccy = doc.get("currency")
            if not isinstance(ccy, str) or not ccy:
                raise InputError("currency: expected a code")
            return AccountChange(seq, time, kind, acct, currency=ccy, amount=_num(doc, "amount"))
        raise InputError(f"type: unknown event type {kind!r}")
    except json.JSONDecodeError as exc:
        return Malformed(seq, time, line[:200], f"not JSON: {exc.msg}")
    except Exception as exc:  # any parse failure becomes a recorded rejection
        return Malformed(seq, time, line[:200], str(exc))


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


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
    else:
        doc = {"seq": item.seq, "type": item.kind, "time": when, "account": item.account}
        doc.update(item.describe())
    return json.dumps(doc)
