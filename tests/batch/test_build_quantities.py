"""build_quantities: duplicates summed, zero nets dropped, cash zeros kept, inputs untouched."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portmargin.models.session import build_quantities


@pytest.mark.parametrize("grouped", [True, False])  # the direct CSR path and the COO path
def test_build_quantities_equals_dense_reference(grouped: bool) -> None:
    rng = np.random.default_rng(3)
    n_acc, n_cols, n = 50, 12, 400
    cash_cols = np.array([10, 11], dtype=np.int64)
    rows = rng.integers(0, n_acc, n).astype(np.int64)
    cols = rng.integers(0, n_cols, n).astype(np.int64)
    vals = rng.choice([-1.0, 1.0, 0.5, 0.0], n)
    # netting pairs: +x and -x on the same (account, instrument) and a zero cash balance
    rows = np.concatenate([rows, [7, 7, 9]])
    cols = np.concatenate([cols, [3, 3, 10]])
    vals = np.concatenate([vals, [2.0, -2.0, 0.0]])
    if grouped:
        order = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
    copies = rows.copy(), cols.copy(), vals.copy()
    q = build_quantities(rows, cols, vals, (n_acc, n_cols), cash_cols)

    dense = np.zeros((n_acc, n_cols))
    np.add.at(dense, (rows, cols), vals)
    given = np.zeros((n_acc, n_cols), dtype=np.bool_)
    given[rows, cols] = True
    is_cash = np.zeros(n_cols, dtype=np.bool_)
    is_cash[cash_cols] = True
    stored = np.zeros((n_acc, n_cols), dtype=np.bool_)
    coo = q.tocoo()
    stored[coo.row, coo.col] = True

    np.testing.assert_array_equal(q.toarray(), dense)
    np.testing.assert_array_equal(stored, (dense != 0) | (given & is_cash[None, :]))
    assert q.has_canonical_format
    for before, after in zip(copies, (rows, cols, vals), strict=True):
        np.testing.assert_array_equal(before, after)


N_ROWS, N_COLS, CASH = 6, 5, np.array([4])


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.integers(0, N_ROWS - 1),
            st.integers(0, N_COLS - 1),
            st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]),
        ),
        max_size=40,
    ),
    grouped=st.booleans(),
)
def test_build_quantities_property(entries: list[tuple[int, int, float]], grouped: bool) -> None:
    if grouped:  # a file sorted by account takes the direct CSR path
        entries = sorted(entries, key=lambda e: e[0])
    rows = np.array([e[0] for e in entries], dtype=np.int64)
    cols = np.array([e[1] for e in entries], dtype=np.int64)
    vals = np.array([e[2] for e in entries], dtype=np.float64)
    q = build_quantities(rows, cols, vals, (N_ROWS, N_COLS), CASH)
    dense = np.zeros((N_ROWS, N_COLS))
    np.add.at(dense, (rows, cols), vals)
    assert np.array_equal(q.toarray(), dense)
    # stored: every non-zero net, and every cash balance given (even a zero one); nothing else
    given_cash = {(r, c) for r, c, _ in entries if c in CASH}
    want = {(r, c) for r in range(N_ROWS) for c in range(N_COLS) if dense[r, c] != 0}
    coo = q.tocoo()
    assert set(zip(coo.row.tolist(), coo.col.tolist(), strict=True)) == want | given_cash
    assert q.has_sorted_indices and bool(np.all(np.diff(q.indptr) >= 0))
