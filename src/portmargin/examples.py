"""The seed document's example portfolios (../shared/seed/), on the demo market's expiries.

Front month is 27MAR26 (30 days from the demo valuation time), the back month 24APR26
(58 days; Deribit's monthly nearest the seed's "60 DTE"). The same books are in the
repository's ``examples/`` folder as JSON files (a test keeps the two in step).
"""

from __future__ import annotations

from portmargin.portfolio import Portfolio

__all__ = ["seed_portfolios"]


def seed_portfolios() -> list[tuple[str, Portfolio]]:
    """(title, portfolio) for each of the seed's example books, in the seed's order."""
    return [
        (
            "Short put spread (sell 70k put, buy 69k put)",
            Portfolio.of(
                {"BTC-27MAR26-70000-P": -1, "BTC-27MAR26-69000-P": 1}, name="short_put_spread"
            ),
        ),
        (
            "Iron condor (short 72k/73k call spread and 68k/67k put spread)",
            Portfolio.of(
                {
                    "BTC-27MAR26-72000-C": -1,
                    "BTC-27MAR26-73000-C": 1,
                    "BTC-27MAR26-68000-P": -1,
                    "BTC-27MAR26-67000-P": 1,
                },
                name="iron_condor",
            ),
        ),
        (
            "Long calendar (sell front-month 70k call, buy back-month 70k call)",
            Portfolio.of(
                {"BTC-27MAR26-70000-C": -1, "BTC-24APR26-70000-C": 1}, name="long_calendar"
            ),
        ),
        (
            "Short straddle (70k call + 70k put) hedged with long futures",
            Portfolio.of(
                {"BTC-27MAR26-70000-C": -1, "BTC-27MAR26-70000-P": -1, "BTC-27MAR26": 0.08},
                name="hedged_straddle",
            ),
        ),
        (
            "Five-line BTC/ETH book (seed's quantitative example)",
            Portfolio.of(
                {
                    "BTC-27MAR26-75000-C": -1,
                    "ETH-24APR26-3000-P": 2,
                    "ETH-27MAR26-3800-C": -1,
                    "ETH-27MAR26-3900-C": 1,
                    "ETH-27MAR26-3200-P": -1,
                    "ETH-27MAR26-3100-P": 1,
                },
                {"BTC": 1.0, "ETH": 1.0},
                name="five_line_book",
            ),
        ),
    ]
