"""Market-data loaders: portmargin's JSON format and Deribit option-chain CSV snapshots.

JSON format (all sections but ``valuation_time`` and ``underlyings`` optional)::

    {
      "valuation_time": "2026-02-25T08:00:00Z",
      "products":    {"XYZ": {"settlement": "linear", "quote_currency": "USD", "multiplier": 100}},
      "underlyings": {"XYZ": {"spot": 95.0, "rate": 0.0}, "BTC": {"spot": 70000.0}},
      "futures":     {"BTC-27MAR26": {"mark_price": 70500.0},
                      "BTC-PERPETUAL": {"mark_price": 70010.0}},
      "forwards":    {"XYZ": {"20MAR26": 95.2}},
      "options":     {"XYZ-20MAR26-80-P": {"mark_price": 2.0},
                      "BTC-27MAR26-70000-C": {"mark_iv": 0.55}}
    }

Deribit CSV: the chain snapshots collected from Deribit's public API (columns
``timestamp, instrument_name, underlying, underlying_name, mark_price, implied_volatility,
index_price, ...``), detected by their header. The valuation time is the collection start
(``timestamp``), each expiry's forward is its ``underlying`` column, the index is the median
``index_price`` per currency, and a ``perpetual_futures_prices.csv`` beside the file, if
present, gives the perpetual marks of the same snapshot.
"""

from __future__ import annotations

import csv
import math
import statistics
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import InstrumentKind, ProductSpec, Settlement, parse_instrument
from portmargin.io._common import parse_time, read_json, read_text, validation_message
from portmargin.market.snapshot import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market

__all__ = ["load_market", "market_from_dict"]

DERIBIT_COLUMNS = frozenset(
    {
        "timestamp",
        "instrument_name",
        "underlying",
        "mark_price",
        "implied_volatility",
        "index_price",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Product(_Strict):
    settlement: Literal["linear", "inverse"]
    quote_currency: str = "USD"
    multiplier: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    underlying: str | None = None


class _Underlying(_Strict):
    spot: float = Field(gt=0, allow_inf_nan=False)
    rate: float = Field(default=0.0, allow_inf_nan=False)


class _Mark(_Strict):
    mark_price: float = Field(gt=0, allow_inf_nan=False)


class _Option(_Strict):
    mark_iv: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    mark_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @field_validator("mark_iv")
    @classmethod
    def _iv_sane(cls, v: float | None) -> float | None:
        if v is not None and v > 20:
            raise ValueError("mark_iv is a decimal (0.55 = 55 %); values above 20 are not vols")
        return v


class _MarketFile(_Strict):
    valuation_time: datetime
    products: dict[str, _Product] = {}
    underlyings: dict[str, _Underlying]
    futures: dict[str, _Mark] = {}
    forwards: dict[str, dict[str, float]] = {}
    options: dict[str, _Option] = {}


def market_from_dict(data: object, *, source: str = "memory") -> MarketSnapshot:
    """Build a snapshot from the JSON structure above (already parsed).

    Raises
    ------
    InputError
        ``source: field: reason`` for any invalid field, unknown instrument or bad quote.
    """
    try:
        doc = _MarketFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(source, exc)) from None
    if doc.valuation_time.tzinfo is None:
        raise InputError(f"{source}: valuation_time: needs a time zone (append Z for UTC)")
    products = {}
    for code, p in doc.products.items():
        settlement = Settlement(p.settlement)
        underlying = p.underlying or code.split("_")[0]
        quote = underlying if settlement is Settlement.INVERSE else p.quote_currency
        try:
            products[code] = ProductSpec(code, underlying, settlement, quote, p.multiplier)
        except PortmarginError as exc:
            raise InputError(f"{source}: products.{code}: {exc}") from None
    forwards = {}
    for und, by_expiry in doc.forwards.items():
        for code, value in by_expiry.items():
            try:
                expiry = parse_instrument(f"{und}-{code}", products).expiry
            except PortmarginError as exc:
                raise InputError(f"{source}: forwards.{und}.{code}: {exc}") from None
            assert expiry is not None
            forwards[(und, expiry)] = value
    try:
        return build_market(
            valuation_time=doc.valuation_time,
            underlyings={u: UnderlyingQuote(q.spot, q.rate) for u, q in doc.underlyings.items()},
            products=products,
            futures={n: f.mark_price for n, f in doc.futures.items()},
            forwards=forwards,
            options={n: OptionQuote(o.mark_iv, o.mark_price) for n, o in doc.options.items()},
            source=source,
        )
    except PortmarginError as exc:
        raise InputError(f"{source}: {exc}") from None


def _deribit_csv(path: Path, rows: list[dict[str, str]]) -> MarketSnapshot:
    if not rows:
        raise InputError(f"{path}: no rows")
    valuation = parse_time(rows[0]["timestamp"], where=f"{path}: row 2: timestamp")
    index: dict[str, list[float]] = {}
    forwards: dict[tuple[str, datetime], float] = {}
    futures: dict[str, float] = {}
    options: dict[str, OptionQuote] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}: row {line}"
        try:
            inst = parse_instrument(row["instrument_name"])
        except PortmarginError as exc:
            raise InputError(f"{where}: instrument_name: {exc}") from None
        if inst.kind is not InstrumentKind.OPTION:
            continue
        assert inst.expiry is not None

        def num(
            col: str,
            *,
            required: bool = True,
            inst_name: str = inst.name,
            at: str = where,
            cells: dict[str, str] = row,
        ) -> float:
            text = (cells.get(col) or "").strip()
            if not text:
                if required:
                    raise InputError(f"{at}: {col}: empty for {inst_name}")
                return math.nan
            try:
                value = float(text)
            except ValueError:
                raise InputError(f"{at}: {col}: {text!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise InputError(f"{at}: {col}: {text!r} must be a finite non-negative number")
            return value

        index.setdefault(inst.underlying, []).append(num("index_price"))
        fwd = num("underlying")
        if fwd <= 0:
            raise InputError(f"{where}: underlying: forward must be > 0")
        forwards.setdefault((inst.underlying, inst.expiry), fwd)
        fut_name = (row.get("underlying_name") or "").strip()
        if fut_name and not fut_name.startswith("SYN."):
            futures.setdefault(fut_name, fwd)
        iv = num("implied_volatility", required=False)
        px = num("mark_price", required=False)
        if inst.expiry <= valuation:
            continue
        options[inst.name] = OptionQuote(
            mark_iv=iv if iv > 0 else None, mark_price=None if math.isnan(px) else px
        )
    underlyings = {u: UnderlyingQuote(statistics.median(v)) for u, v in index.items()}
    perp_file = path.parent / "perpetual_futures_prices.csv"
    if perp_file.is_file():
        for row in csv.DictReader(read_text(perp_file).splitlines()):
            if row.get("snapshot_file") == path.name and row.get("perp_futures_mark_price"):
                coin = row.get("coin", "")
                if coin in underlyings:
                    futures[f"{coin}-PERPETUAL"] = float(row["perp_futures_mark_price"])
    try:
        return build_market(
            valuation_time=valuation,
            underlyings=underlyings,
            futures=futures,
            forwards=forwards,
            options=options,
            source=path.name,
        )
    except PortmarginError as exc:
        raise InputError(f"{path}: {exc}") from None


def load_market(path: Path | str) -> MarketSnapshot:
    """Load a market file: JSON (``.json``) or a Deribit chain CSV (detected by its header).

    Raises
    ------
    InputError
        One line naming the file, row/field and reason.
    """
    p = Path(path)
    if p.suffix.lower() == ".json":
        return market_from_dict(read_json(p), source=str(p))
    text = read_text(p)
    reader = csv.DictReader(text.splitlines())
    header = set(reader.fieldnames or ())
    if header >= DERIBIT_COLUMNS:
        return _deribit_csv(p, list(reader))
    raise InputError(
        f"{p}: unrecognised market file (expected .json or a Deribit chain CSV with columns "
        f"{', '.join(sorted(DERIBIT_COLUMNS))})"
    )
