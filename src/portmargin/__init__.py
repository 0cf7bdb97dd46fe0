"""portmargin: portfolio-margin and rules-based margin for crypto derivatives."""

from portmargin.errors import InputError, InstrumentError, MarketDataError, PortmarginError
from portmargin.instruments import Instrument, ProductSpec, parse_instrument

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "Instrument",
    "InstrumentError",
    "MarketDataError",
    "PortmarginError",
    "ProductSpec",
    "__version__",
    "parse_instrument",
]
