"""Portfolio loaders: JSON, YAML and CSV.

JSON / YAML::

    {"name": "my book", "description": "...", "cash": {"USD": 0, "BTC": 1.0},
     "positions": [{"instrument": "BTC-27MAR26-70000-C", "quantity": -1}]}

CSV: a header ``instrument,quantity`` (case-insensitive, other columns ignored) and one row
per position; a row whose instrument is ``cash:CCY`` (e.g. ``cash:BTC,1.0``) is a cash
balance. The CSV rows are read and checked by the positions reader
(:mod:`portmargin.io.positions_files`), as one account's rows.

Every value is checked against :mod:`portmargin.io.limits`: ``|quantity| ≤ 1e9`` contracts
(per position and net per instrument), ``|balance| ≤ 1e12`` units, instrument names of at
most 100 characters, a name of at most 200; JSON keys appear once per object, YAML has no
aliases, a document is at most 256 MiB. Every error is one :class:`InputError` line naming
the file, the row or field, and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from portmargin.errors import InputError
from portmargin.io import limits
from portmargin.io._common import read_json, read_yaml, validation_message
from portmargin.portfolio import Portfolio, Position

__all__ = ["check_book", "load_portfolio", "portfolio_from_dict"]


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true/false")
    return value


Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
"""A finite number given as a number (or numeric text), never as ``true``/``false``."""


class _Position(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)
    instrument: str = Field(min_length=1)
    quantity: Number


class _PortfolioFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=limits.ID_MAX_CHARS)
    description: str | None = Field(default=None, max_length=limits.TEXT_MAX_CHARS)
    cash: dict[str, Number] = {}
    positions: list[_Position] = []


def check_book(
    positions: list[tuple[str, float]],
    cash: dict[str, float],
    *,
    source: str,
    where: list[str] | None = None,
) -> None:
    """The limits of one book: names, quantities per position and net, balances.

    ``where[i]`` names position ``i`` in messages (``positions.3``); without it positions
    are taken as checked one by one already (by the CSV reader) and only nets are checked.

    Raises
    ------
    InputError
        ``source: where: field: reason``.
    """
    net: dict[str, float] = {}
    for i, (name, qty) in enumerate(positions):
        if where is not None:
            limits.check_instrument(name, f"{source}: {where[i]}.instrument")
            limits.check_quantity(qty, f"{source}: {where[i]}.quantity")
        net[name] = net.get(name, 0.0) + qty
    for name, qty in net.items():
        limits.check_quantity(qty, f"{source}: net quantity of {name!r}")
    for ccy, amount in cash.items():
        limits.check_currency(ccy, f"{source}: cash")
        limits.check_balance(amount, f"{source}: cash.{ccy}")


def portfolio_from_dict(data: object, *, source: str = "portfolio") -> Portfolio:
    """Validate a parsed JSON/YAML portfolio document.

    Raises
    ------
    InputError
        ``source: field: reason``, e.g. ``book.json: positions.0.quantity: Input should be a
        valid number`` or ``book.json: positions.2.quantity: 1e+308 is outside [-1e9, 1e9]
        contracts``.
    """
    try:
        doc = _PortfolioFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(source, exc)) from None
    pairs = [(p.instrument.strip(), p.quantity) for p in doc.positions]
    check_book(
        pairs, dict(doc.cash), source=source, where=[f"positions.{i}" for i in range(len(pairs))]
    )
    name = doc.name if doc.name and doc.name.strip() else Path(source).stem
    return Portfolio(tuple(Position(n, q) for n, q in pairs), doc.cash, name)


def _from_csv(path: Path) -> Portfolio:
    from portmargin.io.positions_files import read_book_csv

    book = read_book_csv(path, path.stem or "portfolio")
    positions: list[Position] = []
    cash: dict[str, float] = {}
    rows = book.row_numbers(book.name_code)
    for code, qty, row in zip(
        book.name_code.tolist(), book.quantity.tolist(), rows.tolist(), strict=True
    ):
        name = book.names[code]
        if name.startswith("cash:"):
            ccy = name[5:]
            if not ccy:
                raise InputError(f"{path}: row {row}: instrument: {name!r} names no currency")
            limits.check_currency(ccy, f"{path}: row {row}: instrument")
            cash[ccy] = cash.get(ccy, 0.0) + qty
        else:
            positions.append(Position(name, qty))
    pairs = [(p.instrument, p.quantity) for p in positions]
    check_book(pairs, cash, source=str(path))
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
        return portfolio_from_dict(read_json(p, strict=True), source=str(p))
    if suffix in (".yaml", ".yml"):
        return portfolio_from_dict(read_yaml(p), source=str(p))
    if suffix == ".csv":
        return _from_csv(p)
    raise InputError(f"{p}: unknown portfolio format {suffix!r} (use .json, .yaml or .csv)")
