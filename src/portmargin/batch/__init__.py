"""Exchange-scale margin: many accounts per market state, incremental ticks, what-if.

The margin pipeline itself is :mod:`portmargin.models.session` (risk arrays once, accounts
as a sparse matrix, one sparse product per account chunk), the same for one account and
for a million. :func:`run_batch` is one ``portmargin batch`` run over a positions file
(:mod:`portmargin.batch._run`: validation, rejects, the account layer's status); the file
formats are in :mod:`portmargin.io`. :func:`batch` runs a file or a Parquet dataset in this
process or, given a ``distributed.Client``, on a Dask cluster (:class:`ClusterBatch`, its
partitions kept on the workers; :func:`local_cluster` starts one on this machine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portmargin.models.session import AccountBook, BatchResult, MarginSession, cash_column

if TYPE_CHECKING:
    from portmargin.batch._api import batch
    from portmargin.batch._cluster import ClusterBatch, local_cluster
    from portmargin.batch._run import BatchRun, run_batch

__all__ = [
    "AccountBook",
    "BatchResult",
    "BatchRun",
    "ClusterBatch",
    "MarginSession",
    "batch",
    "cash_column",
    "local_cluster",
    "run_batch",
]

_LAZY = {
    "BatchRun": "portmargin.batch._run",
    "run_batch": "portmargin.batch._run",
    "batch": "portmargin.batch._api",
    "ClusterBatch": "portmargin.batch._cluster",
    "local_cluster": "portmargin.batch._cluster",
}


def __getattr__(name: str) -> Any:
    """The runners on first use (they import the accounts layer, pyarrow, Dask)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'portmargin.batch' has no attribute {name!r}")
