"""Back-testing margin methods on the daily history, and calibrating grid models from it.

* :mod:`portmargin.backtest.market`: each historical day as a market snapshot (spot and a
  DVOL-based smile);
* :mod:`portmargin.backtest.strategies`: books defined relative to the day's market;
* :mod:`portmargin.backtest.runner`: margin at ``t`` against the realised loss to ``t + h``;
* :mod:`portmargin.backtest.stats`: Kupiec, Christoffersen, the Basel traffic light,
  peak-to-trough;
* :mod:`portmargin.backtest.calibrate`: scan ranges and vol shocks of grid models from
  history;
* :mod:`portmargin.backtest.crash`: the two real Deribit chains across the 2026-02-05 crash.

The report built on them is ``docs/backtest.md``.
"""

from __future__ import annotations

from portmargin.backtest.runner import BacktestResult, ModelBacktest, run_backtest
from portmargin.backtest.stats import christoffersen, coverage, kupiec, traffic_light
from portmargin.backtest.strategies import STRATEGIES, build_book, strategy

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "ModelBacktest",
    "build_book",
    "christoffersen",
    "coverage",
    "kupiec",
    "run_backtest",
    "strategy",
    "traffic_light",
]
