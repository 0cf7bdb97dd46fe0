"""Exception tree of portmargin.

::

    PortmarginError                 base of everything the package raises on purpose
    ├── InputError                  bad user input: a file, row or field that cannot be used
    │   └── InstrumentError         a malformed or unknown instrument name
    ├── MarketDataError             market data missing or inconsistent for a calculation
    ├── ParameterError              an invalid model or rule-set parameter file
    └── StorageError                the database cannot be opened, read or written

Every message is one line that names where the problem is (file, row/field) and why, so
the CLI can print it as is and exit non-zero without a traceback.
"""

from __future__ import annotations

__all__ = [
    "InputError",
    "InstrumentError",
    "MarketDataError",
    "ParameterError",
    "PortmarginError",
    "StorageError",
]


class PortmarginError(Exception):
    """Base class of the errors portmargin raises deliberately."""


class InputError(PortmarginError, ValueError):
    """Bad user input; the message names the file/row/field and the reason."""


class InstrumentError(InputError):
    """A malformed or unknown instrument name."""


class MarketDataError(PortmarginError):
    """Market data needed for a calculation is missing or inconsistent."""


class ParameterError(PortmarginError, ValueError):
    """An invalid model, rule-set or product parameter."""


class StorageError(PortmarginError):
    """The database cannot be opened, read or written; the message says which and what to do.

    Raised by :mod:`portmargin.storage` for a bad URL, a missing or read-only file or
    directory, a corrupt file, a full disk, an unreachable server or a database in use by
    another monitor. A URL's password is never part of the message.
    """
