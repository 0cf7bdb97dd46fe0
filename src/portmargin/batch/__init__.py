"""Exchange-scale margin: many accounts per market state, incremental ticks, what-if.

The margin pipeline itself is :mod:`portmargin.models.session` (risk arrays once, accounts
as a sparse matrix, one sparse product per account chunk), the same for one account and
for a million. :func:`run_batch` is one ``portmargin batch`` run over a positions file
(:mod:`portmargin.batch._run`: validation, rejects, the account layer's status); the file
formats are in :mod:`portmargin.io`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portmargin.models.session import AccountBook, BatchResult, MarginSession, cash_column

if TYPE_CHECKING:
    from portmargin.batch._run import BatchRun, run_batch

__all__ = [
    "AccountBook",
    "BatchResult",
    "BatchRun",
    "MarginSession",
    "cash_column",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    """``run_batch`` and ``BatchRun`` on first use (they import the accounts layer)."""
    if name in ("BatchRun", "run_batch"):
        from portmargin.batch import _run

        value = getattr(_run, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'portmargin.batch' has no attribute {name!r}")
