"""Example books: the classic option strategies and a five-line BTC/ETH book, on the demo market.

Front month is 27MAR26 (30 days from the demo valuation time), the back month 24APR26
(58 days; Deribit's monthly nearest a "60 DTE" option). Each book holds in cash the premium
its short options received at the demo market's marks, so it starts with the equity a trader
who sold them would have; the short straddle also holds a deposit, as its premium alone does
not cover its margin. The same books are in the repository's ``examples/`` folder as JSON
files (a test keeps the two in step, and another checks the premiums against the marks).

:func:`example_portfolios` are Deribit's inverse options, settled in coin;
:func:`linear_portfolios` are the same strategies on USDC-settled linear options
(``BTC_USDC-27MAR26-70000-P``), where a spread's loss is capped at its width in USD.
"""

from __future__ import annotations

from portmargin.portfolio import Portfolio

__all__ = ["STRADDLE_DEPOSIT", "example_portfolios", "linear_portfolios", "seed_portfolios"]

STRADDLE_DEPOSIT = {"BTC": 0.3, "USDC": 14_000.0}
"""Collateral the short straddles hold beyond their premium (inverse book, linear book)."""


def example_portfolios() -> list[tuple[str, Portfolio]]:
    """(title, portfolio) of each example book on inverse (coin-settled) options."""
    return [
        (
            "Short put spread (sell 70k put, buy 69k put)",
            Portfolio.of(
                {"BTC-27MAR26-70000-P": -1, "BTC-27MAR26-69000-P": 1},
                {"BTC": 0.06228569},
                name="short_put_spread",
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
                {"BTC": 0.10230177},
                name="iron_condor",
            ),
        ),
        (
            "Long calendar (sell front-month 70k call, buy back-month 70k call)",
            Portfolio.of(
                {"BTC-27MAR26-70000-C": -1, "BTC-24APR26-70000-C": 1},
                {"BTC": 0.0663868},
                name="long_calendar",
            ),
        ),
        (
            "Short straddle (70k call + 70k put) hedged with long futures",
            Portfolio.of(
                {"BTC-27MAR26-70000-C": -1, "BTC-27MAR26-70000-P": -1, "BTC-27MAR26": 0.08},
                {"BTC": 0.42867249},
                name="hedged_straddle",
            ),
        ),
        (
            "Five-line BTC/ETH book (spot BTC and ETH, short call, long puts, ETH condor)",
            Portfolio.of(
                {
                    "BTC-27MAR26-75000-C": -1,
                    "ETH-24APR26-3000-P": 2,
                    "ETH-27MAR26-3800-C": -1,
                    "ETH-27MAR26-3900-C": 1,
                    "ETH-27MAR26-3200-P": -1,
                    "ETH-27MAR26-3100-P": 1,
                },
                {"BTC": 1.03703249, "ETH": 1.08999847},
                name="five_line_book",
            ),
        ),
    ]


def seed_portfolios() -> list[tuple[str, Portfolio]]:
    """The example books (the name the tests and benchmarks use)."""
    return example_portfolios()


def linear_portfolios() -> list[tuple[str, Portfolio]]:
    """The four strategies on USDC-settled linear options, premium in USDC cash."""
    return [
        (
            "Short put spread, USDC-settled",
            Portfolio.of(
                {"BTC_USDC-27MAR26-70000-P": -1, "BTC_USDC-27MAR26-69000-P": 1},
                {"USDC": 4377.95276102},
                name="short_put_spread_usdc",
            ),
        ),
        (
            "Iron condor, USDC-settled",
            Portfolio.of(
                {
                    "BTC_USDC-27MAR26-72000-C": -1,
                    "BTC_USDC-27MAR26-73000-C": 1,
                    "BTC_USDC-27MAR26-68000-P": -1,
                    "BTC_USDC-27MAR26-67000-P": 1,
                },
                {"USDC": 7190.61320867},
                name="iron_condor_usdc",
            ),
        ),
        (
            "Long calendar, USDC-settled",
            Portfolio.of(
                {"BTC_USDC-27MAR26-70000-C": -1, "BTC_USDC-24APR26-70000-C": 1},
                {"USDC": 4666.21276102},
                name="long_calendar_usdc",
            ),
        ),
        (
            "Short straddle, USDC-settled, hedged with the linear perpetual",
            Portfolio.of(
                {
                    "BTC_USDC-27MAR26-70000-C": -1,
                    "BTC_USDC-27MAR26-70000-P": -1,
                    "BTC_USDC-PERPETUAL": 0.08,
                },
                {"USDC": 23044.16552205},
                name="hedged_straddle_usdc",
            ),
        ),
    ]
