"""portmargin: portfolio-margin and rules-based margin for crypto derivatives.

>>> import portmargin as pm
>>> book = pm.Portfolio.of({"BTC-27MAR26-70000-C": -1}, {"BTC": 1.0})
>>> result = pm.margin(book, pm.demo_market(), "deribit")
>>> result.currency
'BTC'

The public names below are loaded on first use (PEP 562 module ``__getattr__``), so that
``import portmargin`` and ``portmargin --help`` do not pay for NumPy, SciPy's optimiser or
the storage layer until a calculation needs them; ``tests/test_public_api.py`` pins the list.
"""

import typing as _typing
from importlib import import_module as _import_module
from sys import modules as _modules
from types import ModuleType as _ModuleType

if _typing.TYPE_CHECKING:
    from portmargin.compare import Comparison, compare
    from portmargin.errors import (
        InputError,
        InstrumentError,
        MarketDataError,
        ParameterError,
        PortmarginError,
    )
    from portmargin.exchange import portfolio_from_deribit
    from portmargin.frames import to_frame
    from portmargin.instruments import Instrument, ProductSpec, parse_instrument
    from portmargin.io import load_market, load_portfolio
    from portmargin.margin import margin
    from portmargin.market import MarketSnapshot, QuoteSource, build_market, demo_market
    from portmargin.methods import Method, available_methods, load_method
    from portmargin.models import MarginModel, MarginResult, available_models, load_model
    from portmargin.portfolio import Portfolio, Position
    from portmargin.risk import RiskArray, instrument_table, risk_array
    from portmargin.scenarios import ScenarioSet

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "InputError",
    "Instrument",
    "InstrumentError",
    "MarginModel",
    "MarginResult",
    "MarketDataError",
    "MarketSnapshot",
    "Method",
    "ParameterError",
    "Portfolio",
    "PortmarginError",
    "Position",
    "ProductSpec",
    "QuoteSource",
    "RiskArray",
    "ScenarioSet",
    "__version__",
    "available_methods",
    "available_models",
    "build_market",
    "compare",
    "demo_market",
    "instrument_table",
    "load_market",
    "load_method",
    "load_model",
    "load_portfolio",
    "margin",
    "parse_instrument",
    "portfolio_from_deribit",
    "risk_array",
    "to_frame",
]

# Public name -> the module that defines it.
_SOURCES = {
    "Comparison": "portmargin.compare",
    "compare": "portmargin.compare",
    "InputError": "portmargin.errors",
    "InstrumentError": "portmargin.errors",
    "MarketDataError": "portmargin.errors",
    "ParameterError": "portmargin.errors",
    "PortmarginError": "portmargin.errors",
    "portfolio_from_deribit": "portmargin.exchange",
    "to_frame": "portmargin.frames",
    "Instrument": "portmargin.instruments",
    "ProductSpec": "portmargin.instruments",
    "parse_instrument": "portmargin.instruments",
    "load_market": "portmargin.io",
    "load_portfolio": "portmargin.io",
    "margin": "portmargin.margin",
    "MarketSnapshot": "portmargin.market",
    "QuoteSource": "portmargin.market",
    "build_market": "portmargin.market",
    "demo_market": "portmargin.market",
    "Method": "portmargin.methods",
    "available_methods": "portmargin.methods",
    "load_method": "portmargin.methods",
    "MarginModel": "portmargin.models",
    "MarginResult": "portmargin.models",
    "available_models": "portmargin.models",
    "load_model": "portmargin.models",
    "Portfolio": "portmargin.portfolio",
    "Position": "portmargin.portfolio",
    "RiskArray": "portmargin.risk",
    "instrument_table": "portmargin.risk",
    "risk_array": "portmargin.risk",
    "ScenarioSet": "portmargin.scenarios",
}


# Subpackages reachable as attributes before anything imported them (``pm.io.market_files``).
_SUBPACKAGES = frozenset(
    {"accounts", "batch", "derive", "io", "market", "models", "monitor", "rules", "storage"}
)


def __getattr__(name: str) -> _typing.Any:
    """Load a public name from its module on first use (then it is a plain attribute)."""
    if name in _SUBPACKAGES:
        return _import_module(f"portmargin.{name}")
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'portmargin' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# ``margin`` and ``compare`` name both a function and the submodule defining it. Importing
# the submodule binds the package attribute to the module object; the package keeps the
# function instead, so ``pm.margin(...)`` works whichever was imported first.
_SHADOWED = frozenset({"margin", "compare"})


class _Package(_ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        if name in _SHADOWED and isinstance(value, _ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


_modules[__name__].__class__ = _Package
