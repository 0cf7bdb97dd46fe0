r"""One ``portmargin batch`` run: a positions file in, margin rows, decisions and rejects out.

The steps, each written once:

1. the file is read and each row validated (:func:`portmargin.io.read_positions`);
2. each distinct name is resolved against the market (:func:`portmargin.io.names.resolve`,
   ``btc-perpetual`` → ``BTC-PERPETUAL``, with a suggestion for an unknown name); a
   ``cash:CCY`` row needs an index for ``CCY`` (or a USD stable coin);
3. the rows become a sparse quantity matrix on a session over the file's instruments, and
   each account's net position per instrument is held to the same bounds as a row
   (:mod:`portmargin.io.limits`);
4. the accounts are margined by the session in chunks, and the account layer finishes each
   chunk (:meth:`portmargin.accounts.BatchMargin.figures`): haircuts, then the status of
   each pool and of the account (the worst pool). Every account is margined under the
   model (``method="portfolio"``): a positions file says nothing of the venue's approval,
   so the qualification gate is not applied.

With ``on_error="refuse"`` (the default) the first problem raises one
:class:`~portmargin.errors.InputError` line naming the file, the row and the field. With
``"skip"`` every problem becomes a :class:`~portmargin.io.Reject` and **an account with a
rejected row is left out entirely** (its other rows are rejects too, saying which row was
the cause): margining what remains of a book would report a wrong requirement. Every row of
the file is then either in a margined account or in the rejects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.errors import InputError, PortmarginError
from portmargin.io.batch_output import PoolDecisions
from portmargin.io.limits import BALANCE_MAX, QUANTITY_MAX, fmt, fmt_limit
from portmargin.io.names import resolve
from portmargin.io.positions_files import OnError, PositionsFile, Reject
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.session import (
    AccountBook,
    BatchResult,
    MarginSession,
    build_quantities,
    cash_column,
)
from portmargin.units import STABLE_CURRENCIES, USD

if TYPE_CHECKING:  # the accounts layer imports portmargin.batch: import it when running
    from portmargin.accounts import AccountSettings
    from portmargin.models import MarginModel

__all__ = [
    "CHUNK",
    "BatchRun",
    "Margined",
    "Names",
    "Refusal",
    "Rows",
    "mapping_of",
    "margin_rows",
    "resolve_names",
    "run_batch",
    "summary_line",
]

CHUNK = 65_536
"""Accounts margined (and finished by the account layer) per step."""


@dataclass(frozen=True, slots=True)
class Names:
    """The file's names resolved against a market.

    ``columns[k]`` is the session column name of name code ``k`` (the canonical instrument
    name or ``cash:CCY``), or ``None`` when it cannot be used; ``problems`` maps such codes
    to their reason (``instrument: ...``).
    """

    columns: tuple[str | None, ...]
    problems: dict[int, str]

    @property
    def instruments(self) -> list[str]:
        """Canonical instrument names, in order of first appearance (no cash columns)."""
        seen = dict.fromkeys(c for c in self.columns if c is not None and not _is_cash(c))
        return list(seen)


def _is_cash(column: str) -> bool:
    return column.startswith("cash:")


def resolve_names(positions: PositionsFile, market: MarketSnapshot, on_error: OnError) -> Names:
    """Resolve every distinct name of ``positions`` (see the module docstring, step 2).

    Raises
    ------
    InputError
        With ``on_error="refuse"``, for the name whose first row comes first:
        ``file: row N: instrument: reason``.
    """
    cash_ok = {*market.underlyings, *STABLE_CURRENCIES, USD}
    columns: list[str | None] = []
    problems: dict[int, str] = {}
    for k, name in enumerate(positions.names):
        if _is_cash(name):
            ccy = name[5:]
            if not ccy:
                problems[k] = f"instrument: {name!r} names no currency"
            elif ccy not in cash_ok:
                problems[k] = f"instrument: no {ccy} index in the market"
            columns.append(None if k in problems else cash_column(ccy))
            continue
        try:
            columns.append(resolve(name, market))
        except PortmarginError as exc:
            problems[k] = f"instrument: {exc}"
            columns.append(None)
    if problems and on_error == "refuse":
        k = min(problems, key=lambda c: positions.first_row[c])
        raise InputError(f"{positions.source}: row {positions.first_row[k]}: {problems[k]}")
    return Names(tuple(columns), problems)


@dataclass(frozen=True, slots=True)
class BatchRun:
    """The outcome of one run: margined accounts, their figures and decisions, rejects.

    ``result`` rows are the accounts of ``accounts`` (in order of first appearance in the
    file); ``decisions`` has one entry per (account, pool present), the rows of
    :func:`~portmargin.io.batch_output.result_table`.
    """

    source: str
    accounts: tuple[str, ...]
    session: MarginSession
    result: BatchResult
    decisions: PoolDecisions
    rejects: tuple[Reject, ...]
    left_out: int
    margin_calls: int
    liquidations: int
    deficit_usd: float
    seconds: float

    @property
    def deficits(self) -> int:
        """Accounts whose status is not healthy (margin call or liquidation)."""
        return self.margin_calls + self.liquidations

    def summary(self, target: str | None = None) -> str:
        """One line: accounts, deficits, rejects, time (and where the results went)."""
        line = summary_line(
            self.source,
            len(self.accounts),
            self.margin_calls,
            self.liquidations,
            self.deficit_usd,
            len(self.rejects),
            self.left_out,
            self.seconds,
        )
        return line if target is None else f"{line} -> {target}"


def summary_line(
    source: str,
    accounts: int,
    margin_calls: int,
    liquidations: int,
    deficit_usd: float,
    rejects: int,
    left_out: int,
    seconds: float,
) -> str:
    """The one-line summary of a run (see :meth:`BatchRun.summary`)."""
    line = (
        f"{source}: {_count(accounts, 'account')} margined in {seconds:.2f} s; "
        f"{margin_calls + liquidations:,} with a deficit ({margin_calls:,} margin call, "
        f"{liquidations:,} liquidation; {deficit_usd:,.2f} USD short of initial margin)"
    )
    if rejects:
        line += f"; {_count(rejects, 'row')} rejected ({_count(left_out, 'account')} left out)"
    return line


@dataclass(frozen=True, slots=True)
class Rows:
    """The kept rows of a positions file, or of one partition of it, as integer codes.

    ``name_code`` indexes ``names`` (the codes the names were resolved under); ``rows`` maps
    a kept row to its file row: the reader's :class:`~portmargin.io.RowNumbers`-like map
    (``PositionsFile.row_numbers``) or an explicit array (a partition gathered from several
    parts). ``rejects`` are the reader's rejects of these accounts.
    """

    source: str
    accounts: Sequence[str]
    names: Sequence[str]
    account_code: IntArray
    name_code: IntArray
    quantity: FloatArray
    rows: Any
    rejects: tuple[Reject, ...] = ()

    @classmethod
    def of(cls, positions: PositionsFile) -> Rows:
        """The rows of a whole file as read."""
        return cls(
            positions.source,
            positions.accounts,
            positions.names,
            positions.account_code,
            positions.name_code,
            positions.quantity,
            positions.rows,
            positions.rejects,
        )

    def row_numbers(self, kept: IntArray) -> IntArray:
        """File rows of kept rows (indices into :attr:`account_code`)."""
        k = np.asarray(kept, dtype=np.int64)
        if self.rows is None:
            return k + 1
        if isinstance(self.rows, np.ndarray):
            out: IntArray = self.rows[k]
            return out
        rows: IntArray = self.rows.rows(k)
        return rows


@dataclass(frozen=True, slots=True)
class Margined:
    """What one pass of :func:`margin_rows` produced: accounts, figures, decisions, rejects.

    ``book`` is the accounts' quantity matrix on the session (kept for incremental ticks).
    """

    accounts: tuple[str, ...]
    book: AccountBook
    result: BatchResult
    decisions: PoolDecisions
    rejects: tuple[Reject, ...]
    left_out: int
    margin_calls: int
    liquidations: int
    deficit_usd: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """The first problem of a refused run: its file row and the one-line message."""

    row: int
    message: str


def _net_problems(
    positions: Rows,
    q: sp.csr_array,
    session: MarginSession,
    acc_rows: IntArray,
    cols: IntArray,
    keep: IntArray,
) -> dict[int, tuple[int, str]]:
    """Accounts whose net position in a column is out of bounds: account → (row, reason)."""
    is_cash = np.zeros(len(session.columns), dtype=np.bool_)
    is_cash[session.cash_cols] = True
    limit = np.where(is_cash[q.indices], BALANCE_MAX, QUANTITY_MAX)
    bad = np.flatnonzero(~(np.abs(q.data) <= limit))
    if bad.size == 0:
        return {}
    row_of = np.repeat(np.arange(q.shape[0]), np.diff(q.indptr))
    out: dict[int, tuple[int, str]] = {}
    for e in bad.tolist():
        a, c, v = int(row_of[e]), int(q.indices[e]), float(q.data[e])
        if a in out:
            continue
        hit = np.flatnonzero((acc_rows == a) & (cols == c))
        first = int(positions.row_numbers(keep[hit[:1]])[0]) if hit.size else 0
        name = session.columns[c]
        unit = "units" if is_cash[c] else "contracts"
        lim = fmt_limit(BALANCE_MAX if is_cash[c] else QUANTITY_MAX)
        out[a] = (
            first,
            f"quantity: net {'balance' if is_cash[c] else 'position'} of account "
            f"{positions.accounts[a]!r} in {name} is {fmt(v)}, outside [-{lim}, {lim}] {unit}",
        )
    return out


def _rejects(
    positions: Rows,
    problems: Mapping[int, str],
    net: dict[int, tuple[int, str]],
) -> tuple[list[Reject], BoolArray]:
    """Rejects of a skip run beyond the reader's, and the mask of accounts left out."""
    out = list(positions.rejects)
    n_acc = len(positions.accounts)
    index = {a: i for i, a in enumerate(positions.accounts)}
    cause: dict[int, int] = {}  # account -> the row that caused it to be left out
    for r in positions.rejects:
        a = index.get(r.account) if r.account is not None else None
        if a is not None:
            cause[a] = min(cause.get(a, r.row), r.row)
    acc, codes, qty = positions.account_code, positions.name_code, positions.quantity
    bad_name = np.zeros(len(positions.names) + 1, dtype=np.bool_)
    bad_name[list(problems)] = True
    rows_bad = bad_name[codes]
    idx = np.flatnonzero(rows_bad)
    file_rows = positions.row_numbers(idx)
    for i, row in zip(idx.tolist(), file_rows.tolist(), strict=True):
        a, k = int(acc[i]), int(codes[i])
        out.append(Reject(row, positions.accounts[a], positions.names[k], fmt(qty[i]), problems[k]))
        cause[a] = min(cause.get(a, row), row)
    net_rows: dict[int, str] = {}
    for a, (row, reason) in net.items():
        cause[a] = min(cause.get(a, row), row)
        net_rows[a] = reason
    left = np.zeros(n_acc, dtype=np.bool_)
    left[list(cause)] = True
    idx = np.flatnonzero(left[acc] & ~rows_bad)
    file_rows = positions.row_numbers(idx)
    for i, row in zip(idx.tolist(), file_rows.tolist(), strict=True):
        a = int(acc[i])
        name = positions.accounts[a]
        reason = (
            net_rows[a]
            if a in net_rows and cause[a] == row
            else f"account: {name!r} left out, its row {cause[a]} was rejected"
        )
        out.append(Reject(row, name, positions.names[int(codes[i])], fmt(qty[i]), reason))
    out.sort(key=lambda r: r.row)
    return out, left


def run_batch(
    positions: PositionsFile,
    market: MarketSnapshot,
    model: MarginModel,
    *,
    on_error: OnError = "refuse",
    settings: AccountSettings | None = None,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> BatchRun:
    """Margin every account of ``positions`` (see the module docstring).

    Parameters
    ----------
    positions
        The file read by :func:`~portmargin.io.read_positions` (with the same ``on_error``).
    market, model
        The market state and a :class:`~portmargin.models.MarginModel`.
    on_error
        ``"refuse"`` or ``"skip"``.
    settings
        :class:`~portmargin.accounts.AccountSettings` of the status rule (haircuts, levels);
        the package's defaults when ``None``.
    chunk
        Accounts per step.
    progress
        Called with (accounts done, accounts in all) after each step.

    Raises
    ------
    InputError
        With ``on_error="refuse"``: ``file: row N: field: reason``.
    """
    t0 = time.perf_counter()
    names = resolve_names(positions, market, on_error)
    session = MarginSession(market, model, tuple(names.instruments))
    out = margin_rows(
        Rows.of(positions),
        session,
        mapping_of(names, session),
        names.problems,
        on_error=on_error,
        settings=settings,
        chunk=chunk,
        progress=progress,
    )
    if isinstance(out, Refusal):
        raise InputError(out.message)
    return BatchRun(
        positions.source,
        out.accounts,
        session,
        out.result,
        out.decisions,
        out.rejects,
        out.left_out,
        out.margin_calls,
        out.liquidations,
        out.deficit_usd,
        time.perf_counter() - t0,
    )


def mapping_of(names: Names, session: MarginSession) -> IntArray:
    """The session column of each name code (−1 for a name that cannot be used)."""
    out: IntArray = np.array(
        [-1 if c is None else session.column(c) for c in names.columns], dtype=np.int64
    )
    return out


def margin_rows(
    positions: Rows,
    session: MarginSession,
    mapping: IntArray,
    problems: Mapping[int, str],
    *,
    on_error: OnError = "refuse",
    settings: AccountSettings | None = None,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> Margined | Refusal:
    """Steps 3 and 4 of a run on rows whose names are resolved (module docstring).

    ``mapping`` gives the session column of each name code (−1: unusable, its reason in
    ``problems``). An account's rows must all be here (a partition by account). Returns
    the figures, or the first problem (by file row) with ``on_error="refuse"``.
    """
    from portmargin.accounts import STATUSES, AccountSettings, BatchMargin
    from portmargin.units import usd_rate

    st = settings or AccountSettings()
    market, model = session.market, session.model
    keep = np.flatnonzero(mapping[positions.name_code] >= 0)
    acc_rows = positions.account_code[keep]
    cols = mapping[positions.name_code[keep]]
    shape = (len(positions.accounts), len(session.columns))
    q = build_quantities(acc_rows, cols, positions.quantity[keep], shape, session.cash_cols)
    net = _net_problems(positions, q, session, acc_rows, cols, keep)
    if net and on_error == "refuse":
        a = min(net, key=lambda x: net[x][0])
        row, reason = net[a]
        return Refusal(row, f"{positions.source}: row {row}: {reason}")
    accounts = list(positions.accounts)
    rejects: list[Reject] = []
    left_out = 0
    if on_error == "skip":
        rejects, left = _rejects(positions, problems, net)
        if left.any():
            kept_acc = np.flatnonzero(~left)
            q = sp.csr_array(q[kept_acc])
            accounts = [accounts[i] for i in kept_acc.tolist()]
        # accounts named in rejects, including those that had no good row at all
        left_out = len({r.account for r in rejects if r.account is not None} - set(accounts))
    batch = BatchMargin(model, st)
    n = len(accounts)
    parts: list[BatchResult] = []
    haircut: list[float] = []
    status: list[str] = []
    account_status: list[str] = []
    rate: list[float] = []
    im_usd: list[float] = []
    deficit: list[float] = []
    calls = liquidations = 0
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        qk = sp.csr_array(q[lo:hi])
        book = session.book(accounts[lo:hi], qk)
        part = session.margin(book)
        parts.append(part)
        dec = batch.decide(session, book, part)  # the account layer's rules, vectorised
        a_idx, p_idx = np.nonzero(part.present)
        calls += int(np.count_nonzero(dec.account_status == 1))
        liquidations += int(np.count_nonzero(dec.account_status == 2))
        account_status.extend(STATUSES[c].value for c in dec.account_status[a_idx].tolist())
        status.extend(STATUSES[c].value for c in dec.status[a_idx, p_idx].tolist())
        haircut.extend(dec.haircut[a_idx, p_idx].tolist())
        rates = np.array([usd_rate(p, market) for p in part.pools])[p_idx]
        rate.extend(rates.tolist())
        im_usd.extend((part.initial_margin[a_idx, p_idx] * rates).tolist())
        short = np.maximum(part.initial_margin - dec.equity, 0.0)[a_idx, p_idx]
        deficit.extend((short * rates).tolist())
        if progress is not None:
            progress(hi, n)
    result = BatchResult.concat(parts) if parts else session.margin(session.book([], q[:0]))
    decisions = PoolDecisions(
        _array(haircut),
        tuple(status),
        tuple(account_status),
        _array(rate),
        _array(im_usd),
        _array(deficit),
    )
    return Margined(
        tuple(accounts),
        AccountBook(tuple(accounts), q),
        result,
        decisions,
        tuple(rejects),
        left_out,
        calls,
        liquidations,
        float(sum(deficit)),
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _array(values: Sequence[float]) -> FloatArray:
    out: FloatArray = np.asarray(values, dtype=np.float64)
    out.flags.writeable = False
    return out
