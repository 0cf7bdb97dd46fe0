"""Instrument names at the edge: resolving a name against a market, with a suggestion.

A name the market cannot resolve (``BTC-PERP``) gets the closest name the market knows
(``BTC-PERPETUAL``) by :func:`difflib.get_close_matches` (Ratcliff/Obershelp similarity,
https://docs.python.org/3/library/difflib.html#difflib.get_close_matches), among the
market's quoted options, its futures and a perpetual per underlying. The suggestion is
computed only when a name fails, never on the normal path.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from portmargin.errors import PortmarginError

if TYPE_CHECKING:
    from portmargin.market.snapshot import MarketSnapshot

__all__ = ["SUGGEST_CUTOFF", "did_you_mean", "known_names", "resolve"]

SUGGEST_CUTOFF = 0.6
"""Smallest similarity ratio (0 to 1) of a suggestion (difflib's default)."""


def known_names(market: MarketSnapshot) -> list[str]:
    """Every name the market lists: options, futures and a perpetual per underlying."""
    names = list(market.option_iv) + list(market.futures)
    names += [f"{u}-PERPETUAL" for u in market.underlyings]
    return sorted(set(names))


def did_you_mean(name: str, market: MarketSnapshot) -> str:
    """`` (did you mean 'BTC-PERPETUAL'?)`` for the closest known name, or ``""``."""
    key = name.strip().upper()
    close = difflib.get_close_matches(key, known_names(market), n=1, cutoff=SUGGEST_CUTOFF)
    return f" (did you mean {close[0]!r}?)" if close and close[0] != key else ""


def resolve(name: str, market: MarketSnapshot) -> str:
    """The market's canonical name of ``name`` (``btc-perpetual`` → ``BTC-PERPETUAL``).

    Raises
    ------
    PortmarginError
        The market's own error (an :class:`~portmargin.errors.InstrumentError` for a
        malformed or unknown name), its message followed by a suggestion when one is close.
    """
    try:
        return market.instrument(name).name
    except PortmarginError as exc:
        raise type(exc)(f"{exc}{did_you_mean(name, market)}") from None
