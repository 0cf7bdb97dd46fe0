"""``pm.batch``: margin a positions file or dataset, in this process or on a Dask cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from portmargin.errors import InputError
from portmargin.io.positions_files import OnError, read_positions

if TYPE_CHECKING:
    from distributed import Client

    from portmargin.accounts import AccountSettings
    from portmargin.batch._cluster import ClusterBatch
    from portmargin.batch._run import BatchRun
    from portmargin.market.snapshot import MarketSnapshot
    from portmargin.models import MarginModel

__all__ = ["batch"]


@overload
def batch(
    positions: Path | str,
    market: MarketSnapshot | None = ...,
    model: str | MarginModel = ...,
    *,
    out: Path | str | None = ...,
    rejects: Path | str | None = ...,
    client: None = ...,
    on_error: OnError = ...,
    settings: AccountSettings | None = ...,
    partitions: int | None = ...,
) -> BatchRun: ...


@overload
def batch(
    positions: Path | str,
    market: MarketSnapshot | None = ...,
    model: str | MarginModel = ...,
    *,
    out: Path | str | None = ...,
    rejects: Path | str | None = ...,
    client: Client,
    on_error: OnError = ...,
    settings: AccountSettings | None = ...,
    partitions: int | None = ...,
) -> ClusterBatch: ...


def batch(
    positions: Path | str,
    market: MarketSnapshot | None = None,
    model: str | MarginModel = "deribit",
    *,
    out: Path | str | None = None,
    rejects: Path | str | None = None,
    client: Client | None = None,
    on_error: OnError = "refuse",
    settings: AccountSettings | None = None,
    partitions: int | None = None,
) -> BatchRun | ClusterBatch:
    """Margin every account of a positions file (or Parquet dataset) and optionally write it.

    Parameters
    ----------
    positions
        A ``.parquet`` or ``.csv`` file with ``account, instrument, quantity`` (a row
        ``cash:CCY`` is a balance), or a directory of ``.parquet`` files read as one table
        in name order.
    market
        The market state (default: the built-in demo market).
    model
        A model name (``pm.available_methods()``) or a :class:`~portmargin.models.MarginModel`.
    out
        Where to write one row per account and pool: a ``.parquet``/``.csv`` file, or (with
        ``client``) a directory for a Parquet dataset of one part per partition.
    rejects
        Where to write the rejected rows (``on_error="skip"``).
    client
        A ``distributed.Client``: the run happens on its cluster, each worker reading and
        margining its partitions (:mod:`portmargin.batch._cluster`); the result is a
        :class:`~portmargin.batch.ClusterBatch` kept on the workers (``.gather()``,
        ``.write()``, ``.tick()``). Without it, one process: a
        :class:`~portmargin.batch.BatchRun`.
    on_error
        ``"refuse"`` (the first bad row raises) or ``"skip"`` (bad rows and their accounts
        become rejects).
    settings
        The account layer's settings (haircuts, status levels).
    partitions
        With ``client``: parts to cut the input into (default: one per worker).

    Returns
    -------
    BatchRun or ClusterBatch
        The same figures either way, bit for bit.

    Raises
    ------
    InputError
        ``file: row N: field: reason`` for a refused row, or a bad output path.
    """
    from portmargin.io.batch_output import rejects_table, result_table, write_tables
    from portmargin.market import demo_market
    from portmargin.models import MarginModel, load_model

    if rejects is not None and on_error != "skip":
        raise InputError(f"rejects {rejects}: only with on_error='skip'")
    snap = market if market is not None else demo_market()
    mdl: Any = model if isinstance(model, MarginModel) else load_model(model)
    if client is not None:
        from portmargin.batch._cluster import run_on_cluster

        run = run_on_cluster(
            positions,
            snap,
            mdl,
            client,
            on_error=on_error,
            settings=settings,
            partitions=partitions,
        )
        if out is not None:
            run.write(out, rejects)
        return run
    from portmargin.batch._run import run_batch

    path = Path(positions)
    if path.is_dir():
        return _run_dataset(path, snap, mdl, out, rejects, on_error, settings)
    single = run_batch(
        read_positions(path, on_error=on_error), snap, mdl, on_error=on_error, settings=settings
    )
    if out is not None:
        files = [
            (result_table(single.accounts, single.result, single.session, single.decisions), out)
        ]
        if rejects is not None:
            files.append((rejects_table(single.rejects), rejects))
        write_tables(files)
    return single


def _run_dataset(
    path: Path,
    market: MarketSnapshot,
    model: MarginModel,
    out: Path | str | None,
    rejects: Path | str | None,
    on_error: OnError,
    settings: AccountSettings | None,
) -> BatchRun:
    """A dataset directory in one process: its files read as one table, then one run."""
    import time

    from portmargin.batch._parts import plan, read_part
    from portmargin.batch._run import BatchRun, Refusal, Rows, mapping_of, margin_rows
    from portmargin.batch._run import resolve_names as resolve
    from portmargin.io.batch_output import rejects_table, result_table, write_tables
    from portmargin.models.session import MarginSession

    t0 = time.perf_counter()
    (spec,) = plan(path, 1)
    read = read_part(spec, on_error)
    if isinstance(read, InputError):
        raise read
    if read.quantity.size == 0 and not read.rejects:
        raise InputError(f"{path}: no positions")
    names = resolve(read, market, on_error)
    session = MarginSession(market, model, tuple(names.instruments))
    got = margin_rows(
        Rows.of(read),
        session,
        mapping_of(names, session),
        names.problems,
        on_error=on_error,
        settings=settings,
    )
    if isinstance(got, Refusal):
        raise InputError(got.message)
    run = BatchRun(
        read.source,
        got.accounts,
        session,
        got.result,
        got.decisions,
        got.rejects,
        got.left_out,
        got.margin_calls,
        got.liquidations,
        got.deficit_usd,
        time.perf_counter() - t0,
    )
    if out is not None:
        files = [(result_table(run.accounts, run.result, session, run.decisions), out)]
        if rejects is not None:
            files.append((rejects_table(run.rejects), rejects))
        write_tables(files)
    return run
