"""Portfolio loaders: JSON, YAML and CSV.

JSON / YAML::

    {"cash": {"USD": 0, "BTC": 1.0},
     "positions": [{"instrument": "BTC-27MAR26-70000-C", "quantity": -1}]}

CSV: a header ``instrument,quantity`` and one row per position; a row whose instrument is
``cash:CCY`` (e.g. ``cash:BTC,1.0``) is a cash balance.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portmargin.errors import InputError
from portmargin.io._common import read_json, read_text, validation_message
from portmargin.portfolio import Portfolio, Position

__all__ = ["load_portfolio", "portfolio_from_dict"]


class _Position(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)
    instrument: str = Field(min_length=1)
    quantity: float = Field(allow_inf_nan=False)


class _PortfolioFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    cash: dict[str, float] = {}
    positions: list[_Position] = []


def portfolio_from_dict(data: object, *, source: str = "portfolio") -> Portfolio:
    """Validate a parsed JSON/YAML portfolio document.

    Raises
    ------
    InputError
        ``source: field: reason``, e.g. ``book.json: positions.0.quantity: Input should be a
        valid number``.
    """
    try:
        doc = _PortfolioFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(source, exc)) from None
    for ccy, amount in doc.cash.items():
        if not math.isfinite(amount):
            raise InputError(f"{source}: cash.{ccy}: must be a finite number")
    positions = tuple(Position(p.instrument.strip(), p.quantity) for p in doc.positions)
    return Portfolio(positions, doc.cash, doc.name or Path(source).stem)


def _from_csv(path: Path) -> Portfolio:
    reader = csv.DictReader(read_text(path).splitlines())
    fields = [f.strip().lower() for f in reader.fieldnames or ()]
    if "instrument" not in fields or "quantity" not in fields:
        raise InputError(f"{path}: header must have columns instrument,quantity")
    positions: list[Position] = []
    cash: dict[str, float] = {}
    for line, raw in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        name, qty_text = row.get("instrument", ""), row.get("quantity", "")
        if not name:
            raise InputError(f"{path}: row {line}: instrument: empty")
        try:
            qty = float(qty_text)
        except ValueError:
            raise InputError(
                f"{path}: row {line}: quantity: {qty_text!r} is not a number"
            ) from None
        if not math.isfinite(qty):
            raise InputError(f"{path}: row {line}: quantity: {qty_text!r} is not finite")
        if name.lower().startswith("cash:"):
            ccy = name[5:].strip().upper()
            cash[ccy] = cash.get(ccy, 0.0) + qty
        else:
            positions.append(Position(name, qty))
    return Portfolio(tuple(positions), cash, path.stem)


def load_portfolio(path: Path | str) -> Portfolio:
    """Load a portfolio from ``.json``, ``.yaml``/``.yml`` or ``.csv``.

    Raises
    ------
    InputError
        One line naming the file, row/field and the reason.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        return portfolio_from_dict(read_json(p), source=str(p))
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(read_text(p))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise InputError(f"{p}: {where}bad YAML") from None
        return portfolio_from_dict(data, source=str(p))
    if suffix == ".csv":
        return _from_csv(p)
    raise InputError(f"{p}: unknown portfolio format {suffix!r} (use .json, .yaml or .csv)")
