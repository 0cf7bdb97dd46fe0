"""``portmargin batch``: margin every account of a positions file (Parquet or CSV).

The run is :func:`portmargin.batch.run_batch`; the files are :mod:`portmargin.io`. The
output (and, with ``--on-error skip``, the rejects) is written all or nothing after the
whole file is margined; a one-line summary goes to stderr, on a terminal or not.
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path

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
            ..., help="Positions: .parquet or .csv with account,instrument,quantity."
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
        out: Path = typer.Option(..., "--out", help="Output .parquet or .csv (one row per pool)."),
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
        if rejects is not None and not skip:
            raise InputError(f"--rejects {rejects}: only with --on-error skip")
        targets = [check_target(out)]
        if skip:
            targets.append(check_target(rejects or rejects_path(out), what="rejects"))
        for t in targets:
            if _same_file(t, positions):
                raise InputError(f"{t}: is the positions file itself; choose another name")
        if len(targets) == 2 and _same_file(targets[0], targets[1]):
            raise InputError(f"{targets[1]}: the rejects file cannot be the output file")
        stale = [p for t in targets for p in clean_stale(t, before=started)]
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
        where = str(targets[0]) if not skip else f"{targets[0]} (rejects: {targets[1]})"
        err_console.print(run.summary(where), markup=False, highlight=False, soft_wrap=True)
