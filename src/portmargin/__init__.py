"""portmargin: portfolio-margin and rules-based margin for crypto derivatives.

>>> import portmargin as pm
>>> book = pm.Portfolio.of({"BTC-27MAR26-70000-C": -1}, {"BTC": 1.0})
>>> result = pm.margin(book, pm.demo_market(), "deribit")
>>> result.currency
'BTC'
"""

from portmargin.errors import (
    InputError,
    InstrumentError,
    MarketDataError,
    ParameterError,
    PortmarginError,
)
from portmargin.instruments import Instrument, ProductSpec, parse_instrument
from portmargin.io import load_market, load_portfolio
from portmargin.margin import margin
from portmargin.market import MarketSnapshot, build_market, demo_market
from portmargin.models import MarginModel, MarginResult, available_models, load_model
from portmargin.portfolio import Portfolio, Position
from portmargin.risk import RiskArray, instrument_table, risk_array
from portmargin.scenarios import ScenarioSet

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "Instrument",
    "InstrumentError",
    "MarginModel",
    "MarginResult",
    "MarketDataError",
    "MarketSnapshot",
    "ParameterError",
    "Portfolio",
    "PortmarginError",
    "Position",
    "ProductSpec",
    "RiskArray",
    "ScenarioSet",
    "__version__",
    "available_models",
    "build_market",
    "demo_market",
    "instrument_table",
    "load_market",
    "load_model",
    "load_portfolio",
    "margin",
    "parse_instrument",
    "risk_array",
]
