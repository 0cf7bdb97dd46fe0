"""Batch files and the session glue of ``portmargin batch``.

The file formats live in :mod:`portmargin.io` (positions in
:mod:`portmargin.io.positions_files`, results and rejects in
:mod:`portmargin.io.batch_output`) and are re-exported here under their old names; the
whole run (validation, rejects, the account layer's decisions) is
:func:`portmargin.batch.run_batch`. :func:`session_for` and :func:`quantities_for` are the
two steps of a run without the account layer (the benchmarks time them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from portmargin._types import IntArray
from portmargin.batch._run import resolve_names
from portmargin.io.batch_output import result_table, write_table, write_tables
from portmargin.io.positions_files import PositionsFile, Reject, read_positions
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.session import MarginSession, build_quantities

__all__ = [
    "PositionsFile",
    "Reject",
    "quantities_for",
    "read_positions",
    "result_table",
    "session_for",
    "write_table",
    "write_tables",
]


def session_for(
    positions: PositionsFile,
    market: MarketSnapshot,
    make: Callable[[list[str]], MarginSession],
) -> tuple[MarginSession, IntArray]:
    """Build a session over the file's instruments; map the file's name codes to its columns.

    Names are resolved to the market's canonical names (``btc-perpetual`` is
    ``BTC-PERPETUAL``).

    Raises
    ------
    InputError
        ``file: row N: instrument: reason`` for an unknown instrument or currency (with a
        suggestion when a known name is close).
    """
    names = resolve_names(positions, market, "refuse")
    session = make(names.instruments)
    mapping = np.array([session.column(str(c)) for c in names.columns], dtype=np.int64)
    return session, mapping


def quantities_for(
    positions: PositionsFile, session: MarginSession, mapping: IntArray
) -> sp.csr_array:
    """The CSR quantity matrix of the file in the session's column space."""
    return build_quantities(
        positions.account_code,
        mapping[positions.name_code],
        positions.quantity,
        (len(positions.accounts), len(session.columns)),
        session.cash_cols,
    )
