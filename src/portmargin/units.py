r"""Units written once: the year, the margin pools of currencies, and USD conversion.

Time is ACT/365 from exact timestamps (``τ = seconds / 31,536,000``; never whole days or
365.25), the convention of Deribit and of Derive's PMRM_2 (``derivexyz/v2-core:src/libraries/
Black76.sol`` prices on ``secToExpiry / 365 days``).

Currencies, as every margin method of the package reads them:

* **Margin pool** of a currency in segregated mode: the coin itself for BTC and ETH (inverse
  products are margined in coin, as Deribit's S:PM), and ``USD`` for USD and the stable
  coins USDC and USDT, pooled at par.
* **USD rate** of a currency: 1 for the USD pool, else the underlying's index price::

      usd_rate(c) = 1          if c ∈ {USD, USDC, USDT}
                  = S_c        (the index of coin c in USD) otherwise

  Every USD figure of the package (pool totals, account figures, comparisons) is
  ``Σ_pools amount_pool · usd_rate(pool)``, computed by :func:`to_usd`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from portmargin.errors import MarketDataError

__all__ = [
    "DAYS_PER_YEAR",
    "SECONDS_PER_YEAR",
    "STABLE_CURRENCIES",
    "USD",
    "IndexSource",
    "PoolAmounts",
    "iso_z",
    "pool_currency",
    "usd_rate",
    "usd_totals",
]

DAYS_PER_YEAR = 365.0
"""ACT/365: days in a year fraction of 1."""

SECONDS_PER_YEAR = DAYS_PER_YEAR * 86_400.0
"""ACT/365 year in seconds (31,536,000)."""

USD = "USD"
"""The USD margin pool (USD and the stable coins, at par)."""

STABLE_CURRENCIES = frozenset({"USD", "USDC", "USDT"})
"""Currencies pooled as USD at par."""


def iso_z(t: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``: ``2026-02-25T08:00:00Z`` (the format of every output)."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class IndexSource(Protocol):
    """Anything that quotes a USD index per underlying (a market snapshot)."""

    def index_price(self, underlying: str) -> float:
        """USD index of ``underlying``."""
        ...


def pool_currency(currency: str) -> str:
    """Margin pool of ``currency`` in segregated mode: stable coins pool as ``USD``."""
    code = currency.upper()
    return USD if code in STABLE_CURRENCIES else code


def usd_rate(currency: str, market: IndexSource) -> float:
    """USD per unit of ``currency``: 1 for USD-like stable coins, else the index price.

    Raises
    ------
    MarketDataError
        If the market has no index for the currency (the message names it).
    """
    pool = pool_currency(currency)
    if pool == USD:
        return 1.0
    try:
        return market.index_price(pool)
    except MarketDataError:
        raise MarketDataError(
            f"currency {currency!r}: no {pool} index in the market to value it in USD"
        ) from None


class PoolAmounts(Protocol):
    """A margin pool's figures in its own currency, with its USD rate."""

    @property
    def initial_margin(self) -> float:
        """IM, pool currency."""
        ...

    @property
    def maintenance_margin(self) -> float:
        """MM, pool currency."""
        ...

    @property
    def equity(self) -> float:
        """Equity, pool currency."""
        ...

    @property
    def usd_rate(self) -> float:
        """USD per unit of the pool currency (:func:`usd_rate`)."""
        ...


def usd_totals(pools: Iterable[PoolAmounts]) -> tuple[float, float, float]:
    """``(IM, MM, equity)`` in USD: ``Σ_pools x_pool·usd_rate_pool``, summed in pool order.

    The one pool → USD total of the package (results, accounts, comparisons); summed in a
    fixed order so that a figure never depends on how many other accounts share a pass.
    """
    im = mm = eq = 0.0
    for p in pools:
        rate = p.usd_rate
        im += p.initial_margin * rate
        mm += p.maintenance_margin * rate
        eq += p.equity * rate
    return im, mm, eq
