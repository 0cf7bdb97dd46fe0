"""Exchange-scale margin: many accounts per market state, incremental ticks, what-if.

See :mod:`portmargin.batch._session` for the architecture (risk arrays once, accounts as a
sparse matrix, one sparse product per account chunk) and :mod:`portmargin.batch._io` for the
file formats of ``portmargin batch``.
"""

from portmargin.batch._session import AccountBook, BatchResult, MarginSession, cash_column

__all__ = ["AccountBook", "BatchResult", "MarginSession", "cash_column"]
