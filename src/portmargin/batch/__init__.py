"""Exchange-scale margin: many accounts per market state, incremental ticks, what-if.

The margin pipeline itself is :mod:`portmargin.models.session` (risk arrays once, accounts
as a sparse matrix, one sparse product per account chunk), the same for one account and
for a million; :mod:`portmargin.batch._io` holds the file formats of ``portmargin batch``.
"""

from portmargin.models.session import AccountBook, BatchResult, MarginSession, cash_column

__all__ = ["AccountBook", "BatchResult", "MarginSession", "cash_column"]
