"""Every file format at the edge, each read with one validation and one-line errors.

========================  ===============================================  ==================
file                      loader                                           module
========================  ===============================================  ==================
market (JSON, chain CSV)  :func:`load_market`                              ``market_files``
portfolio (JSON/YAML/CSV) :func:`load_portfolio`                           ``portfolio_files``
accounts (JSON)           :func:`load_accounts`                            ``accounts_files``
positions (Parquet/CSV)   :func:`read_positions`                           ``positions_files``
batch results, rejects    :func:`write_tables`                             ``batch_output``
========================  ===============================================  ==================

The bounds on book inputs are :mod:`portmargin.io.limits`. Names are loaded on first use
(PEP 562), so importing one loader does not import pyarrow or pydantic for the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portmargin.io.accounts_files import accounts_from_dict, load_accounts
    from portmargin.io.batch_output import (
        rejects_table,
        result_table,
        write_table,
        write_tables,
    )
    from portmargin.io.market_files import load_market
    from portmargin.io.names import did_you_mean
    from portmargin.io.portfolio_files import load_portfolio, portfolio_from_dict
    from portmargin.io.positions_files import PositionsFile, Reject, read_positions

__all__ = [
    "PositionsFile",
    "Reject",
    "accounts_from_dict",
    "did_you_mean",
    "load_accounts",
    "load_market",
    "load_portfolio",
    "portfolio_from_dict",
    "read_positions",
    "rejects_table",
    "result_table",
    "write_table",
    "write_tables",
]

_SOURCES = {
    "accounts_from_dict": "accounts_files",
    "load_accounts": "accounts_files",
    "rejects_table": "batch_output",
    "result_table": "batch_output",
    "write_table": "batch_output",
    "write_tables": "batch_output",
    "load_market": "market_files",
    "did_you_mean": "names",
    "load_portfolio": "portfolio_files",
    "portfolio_from_dict": "portfolio_files",
    "PositionsFile": "positions_files",
    "Reject": "positions_files",
    "read_positions": "positions_files",
}


_MODULES = frozenset(
    {
        "accounts_files",
        "batch_output",
        "limits",
        "market_files",
        "names",
        "portfolio_files",
        "positions_files",
    }
)


def __getattr__(name: str) -> Any:
    """Load a public name (or a submodule, ``portmargin.io.market_files``) on first use."""
    if name in _MODULES:
        return importlib.import_module(f"portmargin.io.{name}")
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'portmargin.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"portmargin.io.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
