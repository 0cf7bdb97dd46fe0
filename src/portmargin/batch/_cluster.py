r"""``portmargin batch`` on a Dask cluster: workers read, margin and write their own partitions.

The run (the steps of :mod:`portmargin.batch._parts`):

1. the driver plans parts from the Parquet footers and each worker reads its parts
   (:func:`~portmargin.batch._parts.read_part`: the positions reader's validation, file
   rows as a single-process run numbers them);
2. the driver gathers only the parts' names and account hashes, resolves the names, builds
   one :class:`~portmargin.models.session.MarginSession` over their union (risk arrays
   once) and broadcasts it (``client.scatter(..., broadcast=True)``: market, model and risk
   arrays, 1.6 MB for the whole Deribit chain; each worker rebuilds the block matrices);
3. accounts that span parts move to their owner (``hash mod n``), the others stay where
   they were read; each partition is margined by
   :func:`~portmargin.batch._run.margin_rows` and **kept on its worker**
   (:class:`ClusterBatch` holds the futures);
4. :meth:`ClusterBatch.write` has each worker write its partition's output part: the
   result is a Parquet dataset (a directory), or one file assembled atomically in the
   single-process order (accounts by first appearance).

A tick (:meth:`ClusterBatch.tick`): the driver recomputes the moved underlying's risk arrays
once and broadcasts them with the new market; each worker advances its session
(:meth:`MarginSession.with_market` with those arrays) and re-margins only its exposed
accounts (:meth:`MarginSession.remargin`), keeping the new results.

Each account's arithmetic is that of a single-process run, so the figures are identical,
bit for bit (``tests/scale/test_dask_batch.py``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from portmargin._types import IntArray
from portmargin.batch._parts import (
    PartInfo,
    Piece,
    as_rows,
    merge_pieces,
    order_keys,
    part_info,
    plan,
    read_part,
    split_part,
)
from portmargin.batch._run import (
    BatchRun,
    Margined,
    Names,
    Refusal,
    Rows,
    mapping_of,
    margin_rows,
    resolve_names,
    summary_line,
)
from portmargin.errors import InputError
from portmargin.io.batch_output import (
    PoolDecisions,
    check_target,
    rejects_table,
    result_table,
    write_tables,
)
from portmargin.io.positions_files import OnError, PositionsFile, Reject
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.session import BatchResult, MarginSession

if TYPE_CHECKING:
    from distributed import Client, Future

    from portmargin.accounts import AccountSettings
    from portmargin.models import MarginModel

__all__ = ["ClusterBatch", "local_cluster", "run_on_cluster"]


@dataclass(frozen=True, slots=True)
class PartState:
    """A margined partition, kept on its worker: figures, book, and each account's order key.

    ``keys`` is the file row where each account first appears (the single-process order).
    """

    margined: Margined
    keys: IntArray
    exposed: int = 0


@dataclass(frozen=True, slots=True)
class PartSummary:
    """What the driver keeps of a partition: counts, rejects, accounts re-margined."""

    accounts: int
    margin_calls: int
    liquidations: int
    deficit_usd: float
    left_out: int
    rejects: tuple[Reject, ...]
    exposed: int


def _margin_task(
    rows: Rows,
    session: MarginSession,
    mapping: IntArray,
    problems: Mapping[int, str],
    on_error: OnError,
    settings: AccountSettings | None,
) -> PartState | Refusal:
    out = margin_rows(rows, session, mapping, problems, on_error=on_error, settings=settings)
    if isinstance(out, Refusal):
        return out
    return PartState(out, order_keys(rows, out.accounts))


def _summary(state: PartState | Refusal) -> PartSummary | Refusal:
    if isinstance(state, Refusal):
        return state
    m = state.margined
    return PartSummary(
        len(m.accounts),
        m.margin_calls,
        m.liquidations,
        m.deficit_usd,
        m.left_out,
        m.rejects,
        state.exposed,
    )


def _advance(
    session: MarginSession, market: MarketSnapshot, arrays: Mapping[str, Any]
) -> MarginSession:
    """The worker's session after a move: the broadcast risk arrays, blocks rebuilt."""
    return session.with_market(market, moved=set(arrays), arrays=arrays)


def _tick_task(
    state: PartState,
    session: MarginSession,
    moved: Sequence[str],
    settings: AccountSettings | None,
) -> PartState:
    from portmargin.accounts import AccountSettings, BatchMargin

    m = state.margined
    result, idx = session.remargin(m.book, m.result, moved=set(moved))
    batch = BatchMargin(session.model, settings or AccountSettings())
    decided = _decisions(session, m.book, result, batch)
    return PartState(
        Margined(
            m.accounts,
            m.book,
            result,
            decided[0],
            m.rejects,
            m.left_out,
            decided[1],
            decided[2],
            decided[3],
        ),
        state.keys,
        int(idx.size),
    )


def _decisions(
    session: MarginSession, book: Any, result: BatchResult, batch: Any
) -> tuple[PoolDecisions, int, int, float]:
    """The account layer's decisions on a whole result (as :func:`margin_rows` makes them)."""
    from portmargin.accounts import STATUSES
    from portmargin.units import usd_rate

    dec = batch.decide(session, book, result)
    a_idx, p_idx = np.nonzero(result.present)
    rates = np.array([usd_rate(p, session.market) for p in result.pools])[p_idx]
    short = np.maximum(result.initial_margin - dec.equity, 0.0)[a_idx, p_idx]
    deficit = short * rates
    out = PoolDecisions(
        _ro(dec.haircut[a_idx, p_idx]),
        tuple(STATUSES[c].value for c in dec.status[a_idx, p_idx].tolist()),
        tuple(STATUSES[c].value for c in dec.account_status[a_idx].tolist()),
        _ro(rates),
        _ro(result.initial_margin[a_idx, p_idx] * rates),
        _ro(deficit),
    )
    calls = int(np.count_nonzero(dec.account_status == 1))
    liquidations = int(np.count_nonzero(dec.account_status == 2))
    return out, calls, liquidations, float(sum(deficit.tolist()))


def _ro(a: Any) -> Any:
    out = np.ascontiguousarray(a, dtype=np.float64)
    out.flags.writeable = False
    return out


def _table(state: PartState, session: MarginSession) -> tuple[pa.Table, IntArray]:
    """The partition's output rows and each row's order key."""
    m = state.margined
    table = result_table(m.accounts, m.result, session, m.decisions)
    per_account = np.count_nonzero(m.result.present, axis=1)
    return table, np.repeat(state.keys, per_account)


def _write_part(state: PartState, session: MarginSession, path: str) -> IntArray:
    """Write the partition's rows to ``path`` (Parquet, flushed); their order keys."""
    table, keys = _table(state, session)
    with open(path, "xb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    return keys


def _pieces(
    positions: PositionsFile, index: int, n: int, owned: Any, to_global: IntArray
) -> tuple[Piece, ...]:
    return split_part(positions, index, n, owned[0], owned[1], to_global)


def _piece(pieces: tuple[Piece, ...], p: int) -> Piece:
    return pieces[p]


@dataclass(frozen=True, eq=False)
class ClusterBatch:
    """A batch margined on a Dask cluster; each partition stays on its worker.

    Built by :func:`run_on_cluster` (or ``pm.batch(..., client=client)``). The figures are
    those of a single-process :class:`~portmargin.batch.BatchRun`; :meth:`gather` brings
    them to the driver, :meth:`write` has the workers write them, :meth:`tick` moves one
    underlying.
    """

    client: Client
    source: str
    session: MarginSession
    sessions: Mapping[str, Future[Any]]  # worker address -> that worker's session
    states: tuple[Future[Any], ...]
    summaries: tuple[PartSummary, ...]
    settings: AccountSettings | None
    seconds: float

    @property
    def accounts(self) -> int:
        """Accounts margined."""
        return sum(s.accounts for s in self.summaries)

    @property
    def margin_calls(self) -> int:
        """Accounts in margin call."""
        return sum(s.margin_calls for s in self.summaries)

    @property
    def liquidations(self) -> int:
        """Accounts to liquidate."""
        return sum(s.liquidations for s in self.summaries)

    @property
    def deficit_usd(self) -> float:
        """USD short of initial margin, over all accounts."""
        return float(sum(s.deficit_usd for s in self.summaries))

    @property
    def rejects(self) -> tuple[Reject, ...]:
        """Rows left out (``on_error="skip"``), in file order."""
        return tuple(sorted((r for s in self.summaries for r in s.rejects), key=lambda r: r.row))

    @property
    def exposed(self) -> int:
        """Accounts re-margined by the last :meth:`tick` (0 for a full run)."""
        return sum(s.exposed for s in self.summaries)

    def summary(self, target: str | None = None) -> str:
        """One line, as :meth:`BatchRun.summary`, naming the partitions and workers."""
        line = summary_line(
            self.source,
            self.accounts,
            self.margin_calls,
            self.liquidations,
            self.deficit_usd,
            len(self.rejects),
            sum(s.left_out for s in self.summaries),
            self.seconds,
        )
        extra = f" on {len(self.sessions)} worker(s), {len(self.states)} partition(s)"
        line = line.replace(" margined in ", f" margined{extra} in ", 1)
        return line if target is None else f"{line} -> {target}"

    def _session_on(self, worker: str | None) -> Future[Any]:
        """The session future of ``worker`` (any worker's if it has none)."""
        if worker is not None and worker in self.sessions:
            return self.sessions[worker]
        return next(iter(self.sessions.values()))

    def gather(self) -> BatchRun:
        """The whole batch on the driver, accounts in the single-process order."""
        client: Any = self.client
        states: list[PartState] = client.gather(list(self.states))
        keys = np.concatenate([s.keys for s in states]) if states else np.zeros(0, np.int64)
        order = np.argsort(keys, kind="stable")
        accounts = [a for s in states for a in s.margined.accounts]
        results = [s.margined.result for s in states]
        result = BatchResult.concat(results).take(order)
        decisions = _reorder([s.margined for s in states], order)
        return BatchRun(
            self.source,
            tuple(accounts[i] for i in order.tolist()),
            self.session,
            result,
            decisions,
            self.rejects,
            sum(s.left_out for s in self.summaries),
            self.margin_calls,
            self.liquidations,
            float(sum(decisions.deficit_usd.tolist())),  # summed in the single-process order
            self.seconds,
        )

    def write(self, out: Path | str, rejects: Path | str | None = None) -> None:
        """Write the results: a Parquet dataset (``out`` without a suffix) or one file.

        A dataset is a directory of ``part-NNNNN.parquet`` files, one per partition, each
        written by its worker; it replaces ``out`` only once every part is written. One
        ``.parquet``/``.csv`` file is assembled from the parts in the single-process order
        and written atomically (:func:`portmargin.io.write_tables`). The workers must see
        the output directory (a shared file system on a multi-machine cluster).
        ``rejects`` (one file) is written with the results.
        """
        target = Path(out)
        dataset = target.suffix == ""
        if not dataset:
            check_target(target)
        elif not target.parent.is_dir():
            raise InputError(f"{target}: directory {target.parent} does not exist")
        tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        tmp.mkdir()
        client: Any = self.client
        try:
            futs = []
            holders = client.who_has(list(self.states))
            for i, st in enumerate(self.states):
                w = _holder(holders, st)
                futs.append(
                    client.submit(
                        _write_part,
                        st,
                        self._session_on(w),
                        str(tmp / f"part-{i:05d}.parquet"),
                        pure=False,
                        workers=None if w is None else [w],
                    )
                )
            keys: list[IntArray] = client.gather(futs)
            extra = []
            if rejects is not None:
                extra.append((rejects_table(self.rejects), Path(rejects)))
            if dataset:
                if extra:
                    write_tables(extra)
                _replace_dir(tmp, target)
                return
            tables = [pq.read_table(tmp / f"part-{i:05d}.parquet") for i in range(len(futs))]
            table = pa.concat_tables(tables) if tables else pa.table({})
            order = np.argsort(np.concatenate(keys) if keys else np.zeros(0), kind="stable")
            write_tables([(table.take(pa.array(order)), target), *extra])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def tick(self, market: MarketSnapshot, underlying: str) -> ClusterBatch:
        """The batch after ``underlying`` moved to ``market``: exposed accounts re-margined.

        The driver computes the moved underlying's risk arrays once and broadcasts them
        with the market; each worker advances its own session and re-margins its exposed
        accounts, keeping the new figures (:attr:`exposed` says how many).
        """
        t0 = time.perf_counter()
        client: Any = self.client
        new = self.session.with_market(market, moved={underlying})
        delta = client.scatter(
            (market, {underlying: new.arrays[underlying]}), broadcast=True, hash=False
        )
        sessions = {
            w: client.submit(_advance_packed, s, delta, pure=False, workers=[w])
            for w, s in self.sessions.items()
        }
        holders = client.who_has(list(self.states))
        states = []
        for st in self.states:
            w = _holder(holders, st)
            sess = sessions.get(w) if w is not None else None
            states.append(
                client.submit(
                    _tick_task,
                    st,
                    sess if sess is not None else next(iter(sessions.values())),
                    (underlying,),
                    self.settings,
                    pure=False,
                    workers=None if w is None else [w],
                )
            )
        summaries = client.gather([client.submit(_summary, s, pure=False) for s in states])
        return ClusterBatch(
            client,
            self.source,
            new,
            sessions,
            tuple(states),
            tuple(_ok(s) for s in summaries),
            self.settings,
            time.perf_counter() - t0,
        )


def _advance_packed(session: MarginSession, delta: tuple[MarketSnapshot, Any]) -> MarginSession:
    return _advance(session, delta[0], delta[1])


def _ok(s: PartSummary | Refusal) -> PartSummary:
    if isinstance(s, Refusal):
        raise InputError(s.message)
    return s


def _holder(holders: Mapping[Any, Sequence[str]], fut: Future[Any]) -> str | None:
    where = holders.get(fut.key) or ()
    return sorted(where)[0] if where else None


def _replace_dir(tmp: Path, target: Path) -> None:
    """Put the finished directory ``tmp`` at ``target`` (an old dataset is removed after)."""
    old = None
    if target.exists():
        if not target.is_dir():
            raise InputError(f"{target}: exists and is not a directory (a dataset is one)")
        old = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.old"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _reorder(parts: Sequence[Margined], order: IntArray) -> PoolDecisions:
    """Decisions of ``parts`` concatenated, their accounts permuted by ``order``."""
    counts = np.concatenate(
        [np.count_nonzero(m.result.present, axis=1) for m in parts]
        if parts
        else [np.zeros(0, np.int64)]
    )
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    c = counts[order]
    idx = np.repeat(starts[order] - np.concatenate([[0], np.cumsum(c)])[:-1], c) + np.arange(
        int(c.sum())
    )

    def cat(name: str) -> Any:
        vals = [getattr(m.decisions, name) for m in parts]
        if isinstance(vals[0] if vals else (), tuple):
            flat = [x for v in vals for x in v]
            return tuple(flat[i] for i in idx.tolist())
        arr = np.concatenate(vals) if vals else np.zeros(0)
        return _ro(arr[idx])

    return PoolDecisions(
        cat("haircut"),
        cat("status"),
        cat("account_status"),
        cat("usd_rate"),
        cat("initial_margin_usd"),
        cat("deficit_usd"),
    )


def _stub(source: str, infos: Sequence[PartInfo]) -> tuple[PositionsFile, list[IntArray]]:
    """The union of the parts' names (in file order) and each part's local → global codes."""
    index: dict[str, int] = {}
    first: list[int] = []
    to_global = []
    for info in infos:
        codes = []
        for name, row in zip(info.names, info.first_rows, strict=True):
            k = index.get(name)
            if k is None:
                k = index[name] = len(index)
                first.append(row)
            codes.append(k)
        to_global.append(np.array(codes, dtype=np.int64))
    empty = np.zeros(0, dtype=np.int64)
    stub = PositionsFile(source, [], list(index), empty, empty, np.zeros(0), first)
    return stub, to_global


def run_on_cluster(
    path: Path | str,
    market: MarketSnapshot,
    model: MarginModel,
    client: Client,
    *,
    on_error: OnError = "refuse",
    settings: AccountSettings | None = None,
    partitions: int | None = None,
) -> ClusterBatch:
    """Margin every account of a positions file or Parquet dataset on ``client``'s cluster.

    Parameters
    ----------
    path
        A ``.parquet`` file (split by row groups), a directory of ``.parquet`` files (a
        dataset, read as one table in name order) or a ``.csv`` file (one part). Every
        worker must be able to read it.
    market, model
        As in :func:`~portmargin.batch.run_batch`.
    client
        A ``distributed.Client``.
    on_error, settings
        As in :func:`~portmargin.batch.run_batch`; the first refused row is the one a
        single-process run reports.
    partitions
        Parts to cut the input into (default: the number of workers; at most one per
        row group).

    Raises
    ------
    InputError
        As a single-process run: ``file: row N: field: reason``.
    """
    t0 = time.perf_counter()
    cl: Any = client
    workers = sorted(cl.scheduler_info()["workers"])
    if not workers:
        raise InputError("the Dask cluster has no workers")
    specs = plan(path, partitions or len(workers))
    source = specs[0].label if specs else str(path)
    reads = [cl.submit(read_part, sp, on_error, pure=False) for sp in specs]
    checks = cl.gather([cl.submit(_check, r, pure=False) for r in reads])
    for c in checks:
        if isinstance(c, InputError):
            raise c
    infos: list[PartInfo] = [c for c in checks if isinstance(c, PartInfo)]
    if sum(i.kept for i in infos) == 0 and sum(i.rejects for i in infos) == 0:
        raise InputError(f"{source}: no positions")
    stub, to_global = _stub(source, infos)
    names: Names = resolve_names(stub, market, on_error)
    session = MarginSession(market, model, tuple(names.instruments))
    mapping = mapping_of(names, session)
    shared = cl.scatter(session, broadcast=True, hash=False)
    n = len(specs)
    spanning, owners = _owners(infos, n)
    name_list = list(stub.names)
    if spanning.size and n > 1:
        span_f = cl.scatter((spanning, owners), broadcast=True, hash=False)
        cut = [
            cl.submit(_pieces, r, i, n, span_f, to_global[i], pure=False)
            for i, r in enumerate(reads)
        ]
        parts = []
        for p in range(n):
            got = [cl.submit(_piece, c, p, pure=False) for c in cut]
            parts.append(cl.submit(_merge, source, got, name_list, pure=False))
    else:
        parts = [
            cl.submit(as_rows, r, to_global[i], name_list, pure=False) for i, r in enumerate(reads)
        ]
    states = [
        cl.submit(
            _margin_task, rows, shared, mapping, names.problems, on_error, settings, pure=False
        )
        for rows in parts
    ]
    summaries = cl.gather([cl.submit(_summary, s, pure=False) for s in states])
    refused = [s for s in summaries if isinstance(s, Refusal)]
    if refused:
        raise InputError(min(refused, key=lambda r: r.row).message)
    del reads, parts
    return ClusterBatch(
        client,
        source,
        session,
        dict.fromkeys(workers, shared),
        tuple(states),
        tuple(_ok(s) for s in summaries),
        settings,
        time.perf_counter() - t0,
    )


FEW_SPANNING = 0.01
"""Below this share of accounts spanning parts, each goes to the first part it is in."""


def _owners(infos: Sequence[PartInfo], n: int) -> tuple[Any, IntArray]:
    """The accounts (hashes, sorted) that appear in several parts, and the part owning each.

    A file written by account has a few, at the row-group boundaries: each stays with the
    first part it appears in (the later parts hand over a few rows). A shuffled file has
    nearly all: each goes to part ``hash mod n``, which balances the partitions.
    """
    if not infos:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    per = [np.unique(i.hashes) for i in infos]
    every = np.concatenate(per)
    part = np.repeat(np.arange(len(per)), [p.size for p in per])
    order = np.argsort(every, kind="stable")  # parts ascending within one hash
    every, part = every[order], part[order]
    first = np.ones(every.size, dtype=np.bool_)
    first[1:] = every[1:] != every[:-1]
    counts = np.diff(np.append(np.flatnonzero(first), every.size))
    uniq, first_part = every[first], part[first]
    span = counts > 1
    spanning = uniq[span]
    if spanning.size <= FEW_SPANNING * uniq.size:
        owners: IntArray = first_part[span].astype(np.int64)
    else:
        owners = (spanning % np.uint64(n)).astype(np.int64)
    return spanning, owners


def _check(read: PositionsFile | InputError) -> PartInfo | InputError:
    return read if isinstance(read, InputError) else part_info(read)


def _merge(source: str, pieces: Sequence[Piece], names: Sequence[str]) -> Rows:
    return merge_pieces(source, pieces, names)


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[Client]:
    """A client of a local Dask cluster of ``workers`` single-threaded worker processes.

    Each worker margins its chunks on one thread and runs the compiled kernels on one
    thread (``PORTMARGIN_THREADS=1``, ``NUMBA_NUM_THREADS=1``): the processes are the
    parallelism.
    """
    from distributed import Client, LocalCluster

    make_cluster: Any = LocalCluster
    make_client: Any = Client
    import dask

    env = {
        "NUMBA_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "PORTMARGIN_THREADS": "1",
    }
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 by default, which (as any explicit
    # malloc tuning) turns off glibc's dynamic mmap threshold: every temporary above 128 kB
    # is then mmap'd and unmapped, page-faulting afresh each time (measured 2-3x slower
    # margining). The workers keep glibc's defaults instead.
    spawn = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    spawn.pop("MALLOC_TRIM_THRESHOLD_", None)
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}),
        make_cluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=env,
        ) as cluster,
        make_client(cluster) as client,
    ):
        yield client
