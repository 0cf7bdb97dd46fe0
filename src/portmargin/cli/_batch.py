"""``portmargin batch``: margin every account of a positions file (Parquet or CSV).

The run is :func:`portmargin.batch.run_batch`; the files are :mod:`portmargin.io`. The
output (and, with ``--on-error skip``, the rejects) is written all or nothing after the
whole file is margined; a one-line summary goes to stderr, on a terminal or not.

``--workers N`` runs on a local Dask cluster of N worker processes and ``--scheduler
ADDRESS`` on an existing cluster (:mod:`portmargin.batch._cluster`): the workers read their
partitions of the file (row groups) or of a dataset (a directory of Parquet files), margin
them and write their own output parts; ``--out`` is then one file, assembled atomically in
the single-process order, or a directory for a Parquet dataset. The figures are those of the
single-process run, bit for bit.
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from portmargin.cli._common import err_console, get_market
from portmargin.errors import InputError

__all__ = ["OnErrorChoice", "register"]


class OnErrorChoice(StrEnum):
    """What ``batch`` does with a bad row."""

    refuse = "refuse"
    skip = "skip"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def rejects_path(out: Path) -> Path:
    """The default rejects file of ``out``: ``margins.parquet`` → ``margins.rejects.parquet``."""
    return out.with_name(f"{out.stem}.rejects{out.suffix}")


def register(app: typer.Typer) -> None:
    """Attach ``batch`` to ``app``."""

    @app.command("batch")
    def batch_cmd(
        positions: Path = typer.Argument(
            ...,
            help="Positions: .parquet or .csv with account,instrument,quantity, or a "
            "directory of .parquet files (a dataset).",
        ),
        market: Path | None = typer.Option(
            None, "--market", help="Market file (JSON or Deribit CSV); default: demo market."
        ),
        model: str = typer.Option("deribit", "--model", help="Model name or model TOML path."),
        params: Path | None = typer.Option(
            None, "--params", help="TOML file merged over the model's parameters."
        ),
        cross: bool = typer.Option(
            False, "--cross", help="One USD pool with coin collateral (cross margin)."
        ),
        out: Path = typer.Option(
            ...,
            "--out",
            help="Output .parquet or .csv (one row per pool); with --workers/--scheduler a "
            "name without a suffix is a directory for a Parquet dataset (one part each).",
        ),
        on_error: OnErrorChoice = typer.Option(
            OnErrorChoice.refuse,
            "--on-error",
            help="refuse: a bad row refuses the whole file (default); skip: bad rows, and "
            "the accounts they belong to, go to the rejects file.",
        ),
        rejects: Path | None = typer.Option(
            None,
            "--rejects",
            help="Rejects file with --on-error skip (default: OUT's name + .rejects).",
        ),
        workers: int | None = typer.Option(
            None, "--workers", min=1, help="Run on a local Dask cluster of N worker processes."
        ),
        scheduler: str | None = typer.Option(
            None, "--scheduler", help="Run on the Dask cluster at ADDRESS (tcp://host:8786)."
        ),
        partitions: int | None = typer.Option(
            None,
            "--partitions",
            min=1,
            help="With --workers/--scheduler: parts to cut the input into (default: one per "
            "worker).",
        ),
    ) -> None:
        """Margin every account of POSITIONS; rows with instrument cash:CCY are balances."""
        from rich.progress import Progress

        from portmargin.batch import run_batch
        from portmargin.io.batch_output import (
            check_target,
            clean_stale,
            rejects_table,
            result_table,
            write_tables,
        )
        from portmargin.io.positions_files import read_positions
        from portmargin.models import load_model

        started = time.time()
        skip = on_error is OnErrorChoice.skip
        cluster = workers is not None or scheduler is not None
        if workers is not None and scheduler is not None:
            raise InputError("--workers and --scheduler: choose one")
        if partitions is not None and not cluster:
            raise InputError("--partitions: only with --workers or --scheduler")
        if rejects is not None and not skip:
            raise InputError(f"--rejects {rejects}: only with --on-error skip")
        dataset_out = cluster and out.suffix == ""
        targets = [out if dataset_out else check_target(out)]
        if skip:
            default = out.with_name(f"{out.name}.rejects.parquet") if dataset_out else None
            targets.append(check_target(rejects or default or rejects_path(out), what="rejects"))
        for t in targets:
            if _same_file(t, positions):
                raise InputError(f"{t}: is the positions file itself; choose another name")
        if len(targets) == 2 and _same_file(targets[0], targets[1]):
            raise InputError(f"{targets[1]}: the rejects file cannot be the output file")
        if positions.is_dir() and not cluster and out.suffix.lower() not in (".parquet", ".csv"):
            raise InputError(f"{out}: use a .parquet or .csv file")
        stale = [p for t in targets if t.suffix for p in clean_stale(t, before=started)]
        if stale:
            err_console.print(
                f"removed {len(stale)} temporary file(s) of an interrupted run beside {out}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        snap = get_market(market)
        mdl = load_model(
            model,
            params_file=None if params is None else str(params),
            cross=True if cross else None,
        )
        where = str(targets[0]) if not skip else f"{targets[0]} (rejects: {targets[1]})"
        if cluster:
            _run_cluster(
                positions, snap, mdl, on_error.value, targets, workers, scheduler, partitions, where
            )
            return
        if positions.is_dir():
            from portmargin.batch import batch

            done = batch(
                positions,
                snap,
                mdl,
                out=targets[0],
                rejects=targets[1] if skip else None,
                on_error=on_error.value,
            )
            err_console.print(done.summary(where), markup=False, highlight=False, soft_wrap=True)
            return
        pos = read_positions(positions, on_error=on_error.value)
        with Progress(console=err_console, transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("margining accounts", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            run = run_batch(pos, snap, mdl, on_error=on_error.value, progress=advance)
        files = [(result_table(run.accounts, run.result, run.session, run.decisions), targets[0])]
        if skip:
            files.append((rejects_table(run.rejects), targets[1]))
        write_tables(files)
        err_console.print(run.summary(where), markup=False, highlight=False, soft_wrap=True)


def _run_cluster(
    positions: Path,
    market: Any,
    model: Any,
    on_error: Any,
    targets: list[Path],
    workers: int | None,
    scheduler: str | None,
    partitions: int | None,
    where: str,
) -> None:
    """``batch`` on a Dask cluster: a local one of ``workers`` processes, or ``scheduler``'s."""
    import contextlib

    from portmargin.batch._cluster import local_cluster, run_on_cluster

    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workers is not None:
            client: Any = stack.enter_context(local_cluster(workers))
        else:
            import distributed

            connect: Any = distributed.Client
            try:
                client = stack.enter_context(connect(scheduler, timeout="10s"))
            except OSError as exc:
                raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        started = time.perf_counter() - t0
        run = run_on_cluster(
            positions,
            market,
            model,
            client,
            on_error=on_error,
            partitions=partitions,
        )
        run.write(targets[0], targets[1] if len(targets) > 1 else None)
        kind = f"local cluster of {workers}" if workers is not None else f"cluster {scheduler}"
        err_console.print(
            f"{kind}: started in {started:.2f} s",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        err_console.print(run.summary(where), markup=False, highlight=False, soft_wrap=True)
