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
                      "BTC-27MAR26-70000-C": {"mark_iv": 0.55}},
      "settlements": {"BTC": {"20FEB26": 68950.0}}
    }

``settlements`` gives, per underlying and expiry code, the settlement price (USD) of an
expiry at or before the valuation time: options and futures of that expiry are settled at it
(an option is worth its intrinsic value against it and no longer moves). A position in an
instrument past expiry whose expiry has no settlement price is an error naming it.

Deribit CSV: the chain snapshots collected from Deribit's public API (columns
``timestamp, instrument_name, underlying, underlying_name, mark_price, implied_volatility,
index_price, ...``), detected by their header. The valuation time is the collection start
(``timestamp`` of the first row), each expiry's forward is its ``underlying`` column, the index
is the median ``index_price`` per currency, and a ``perpetual_futures_prices.csv`` beside the
file, if present, gives the perpetual marks of the same snapshot (its rows whose
``snapshot_file`` is the chain's file name; column ``perp_futures_mark_price``). Rows of
options already expired are skipped.

Both formats go through :func:`~portmargin.market.build_market`, so the bounds of
:mod:`portmargin.market.limits` apply to both exactly as to the Python API: prices in
``[1e-8, 1e9]`` USD, option marks in ``[0, 1e9]``, vols in ``(0, 10]``, rates in ``[−1, 1]``,
multipliers in ``(0, 1e6]``, strikes at most ``1e9``, valuation times in ``[2000, 2100)``.
Every error is an :class:`~portmargin.errors.InputError` of one line naming the file, the row
or field, and the reason.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import (
    Option,
    ProductSpec,
    Settlement,
    expiry_from_code,
    parse_instrument,
)
from portmargin.io._common import one_line, parse_time, read_json, read_text, validation_message
from portmargin.market import limits
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
PERPETUAL_FILE = "perpetual_futures_prices.csv"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Types only: the numeric bounds are checked once, by build_market (portmargin.market.limits).
class _Product(_Strict):
    settlement: Literal["linear", "inverse"]
    quote_currency: str = "USD"
    multiplier: float = 1.0
    underlying: str | None = None


class _Underlying(_Strict):
    spot: float
    rate: float = 0.0


class _Mark(_Strict):
    mark_price: float


class _Option(_Strict):
    mark_iv: float | None = None
    mark_price: float | None = None


class _MarketFile(_Strict):
    valuation_time: datetime
    products: dict[str, _Product] = {}
    underlyings: dict[str, _Underlying]
    futures: dict[str, _Mark] = {}
    forwards: dict[str, dict[str, float]] = {}
    options: dict[str, _Option] = {}
    settlements: dict[str, dict[str, float]] = {}


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Re-raise a :class:`PortmarginError` of the block as ``InputError("where: ...")``."""
    try:
        yield
    except PortmarginError as exc:
        raise InputError(one_line(f"{where}: {exc}")) from None


def _by_expiry(
    source: str, section: str, table: dict[str, dict[str, float]]
) -> dict[tuple[str, datetime], float]:
    out: dict[tuple[str, datetime], float] = {}
    for und, by_code in table.items():
        for code, value in by_code.items():
            with _at(f"{source}: {section}.{und}.{code}"):
                out[(und, expiry_from_code(code))] = value
    return out


def market_from_dict(data: object, *, source: str = "memory") -> MarketSnapshot:
    """Build a snapshot from the JSON structure above (already parsed).

    Raises
    ------
    InputError
        ``source: field: reason`` for any invalid field, unknown instrument, bad quote or
        value out of bounds.
    """
    try:
        doc = _MarketFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(source, exc)) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InputError(f"{source}: {one_line(exc)}") from None
    if doc.valuation_time.tzinfo is None:
        raise InputError(f"{source}: valuation_time: needs a time zone (append Z for UTC)")
    products = {}
    for code, p in doc.products.items():
        where = f"{source}: products.{code}"
        settlement = Settlement(p.settlement)
        underlying = p.underlying or code.split("_")[0]
        quote = underlying if settlement is Settlement.INVERSE else p.quote_currency
        with _at(where):
            mult = limits.check_multiplier(p.multiplier, "multiplier")
            products[code] = ProductSpec(code, underlying, settlement, quote, mult)
    forwards = _by_expiry(source, "forwards", doc.forwards)
    settlements = _by_expiry(source, "settlements", doc.settlements)
    with _at(source):
        return build_market(
            valuation_time=doc.valuation_time,
            underlyings={u: UnderlyingQuote(q.spot, q.rate) for u, q in doc.underlyings.items()},
            products=products,
            futures={n: f.mark_price for n, f in doc.futures.items()},
            forwards=forwards,
            options={n: OptionQuote(o.mark_iv, o.mark_price) for n, o in doc.options.items()},
            settlements=settlements,
            source=source,
        )


def _csv_rows(path: Path, text: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and ``(row number, cells)`` of a CSV text; ragged rows are an error."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = list(reader.fieldnames or ())
    except csv.Error as exc:
        raise InputError(f"{path}: row 1: bad CSV ({one_line(exc)})") from None

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(
                    f"{path}: row {reader.line_num}: bad CSV ({one_line(exc)})"
                ) from None
            line = reader.line_num
            if None in row:
                extra = row[None]
                raise InputError(
                    f"{path}: row {line}: {len(header) + len(extra)} fields, the header has "
                    f"{len(header)}"
                )
            missing = [k for k, v in row.items() if v is None]
            if missing:
                raise InputError(
                    f"{path}: row {line}: {len(header) - len(missing)} fields, the header has "
                    f"{len(header)} (no {missing[0]})"
                )
            yield line, row

    return header, rows()


def _number(cells: dict[str, str], col: str, where: str) -> float | None:
    """The cell ``col`` as a float, ``None`` if empty; an InputError naming it otherwise."""
    text = cells[col].strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: {col}: {text[:40]!r} is not a number") from None


def _check(check: Callable[[object, str], float], value: object, where: str) -> float:
    """A bound of :mod:`portmargin.market.limits`, its error as an :class:`InputError`."""
    try:
        return check(value, where)
    except PortmarginError as exc:
        raise InputError(one_line(exc)) from None


def _required(cells: dict[str, str], col: str, where: str, inst: Option) -> float:
    """A USD price column that must be present for ``inst``."""
    value = _number(cells, col, where)
    if value is None:
        raise InputError(f"{where}: {col}: empty for {inst.name}")
    return _check(limits.check_price, value, f"{where}: {col}")


def _deribit_csv(path: Path, rows: Iterator[tuple[int, dict[str, str]]]) -> MarketSnapshot:
    valuation: datetime | None = None
    index: dict[str, list[float]] = {}
    forwards: dict[tuple[str, datetime], float] = {}
    futures: dict[str, float] = {}
    options: dict[str, OptionQuote] = {}
    for line, row in rows:
        where = f"{path}: row {line}"
        if valuation is None:
            stamp = parse_time(row["timestamp"].strip(), where=f"{where}: timestamp")
            with _at(where):
                valuation = limits.check_time(stamp, "timestamp")
        with _at(f"{where}: instrument_name"):
            inst = parse_instrument(row["instrument_name"])
        if not isinstance(inst, Option):
            continue
        index.setdefault(inst.underlying, []).append(_required(row, "index_price", where, inst))
        if inst.expiry <= valuation:
            continue  # settled: its quote is no longer a mark
        fwd = _required(row, "underlying", where, inst)
        forwards.setdefault((inst.underlying, inst.expiry), fwd)
        fut_name = (row.get("underlying_name") or "").strip()
        if fut_name and not fut_name.startswith("SYN."):
            futures.setdefault(fut_name, fwd)
        iv = _number(row, "implied_volatility", where)
        px = _number(row, "mark_price", where)
        if iv is not None and iv != 0.0:
            iv = _check(limits.check_vol, iv, f"{where}: implied_volatility")
        if px is not None:
            px = _check(limits.check_option_price, px, f"{where}: mark_price")
        options[inst.name] = OptionQuote(mark_iv=iv or None, mark_price=px)
    if valuation is None:
        raise InputError(f"{path}: no rows")
    underlyings = {u: UnderlyingQuote(statistics.median(v)) for u, v in index.items()}
    futures.update(_perpetual_marks(path, underlyings))
    with _at(str(path)):
        return build_market(
            valuation_time=valuation,
            underlyings=underlyings,
            futures=futures,
            forwards=forwards,
            options=options,
            source=path.name,
        )


def _perpetual_marks(path: Path, underlyings: dict[str, UnderlyingQuote]) -> dict[str, float]:
    """Perpetual marks of the chain ``path`` from :data:`PERPETUAL_FILE` beside it, if any."""
    perp_file = path.parent / PERPETUAL_FILE
    if not perp_file.is_file():
        return {}
    header, rows = _csv_rows(perp_file, read_text(perp_file))
    need = ("snapshot_file", "coin", "perp_futures_mark_price")
    absent = [c for c in need if c not in header]
    if absent:
        raise InputError(f"{perp_file}: row 1: no column {absent[0]!r} (needs {', '.join(need)})")
    out: dict[str, float] = {}
    for line, row in rows:
        if row["snapshot_file"].strip() != path.name:
            continue
        where = f"{perp_file}: row {line}"
        value = _number(row, "perp_futures_mark_price", where)
        coin = row["coin"].strip()
        if value is not None and coin in underlyings:
            price = _check(limits.check_price, value, f"{where}: perp_futures_mark_price")
            out[f"{coin}-PERPETUAL"] = price
    return out


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
    header, rows = _csv_rows(p, read_text(p))
    if set(header) >= DERIBIT_COLUMNS:
        return _deribit_csv(p, rows)
    raise InputError(
        f"{p}: unrecognised market file (expected .json or a Deribit chain CSV with columns "
        f"{', '.join(sorted(DERIBIT_COLUMNS))})"
    )
