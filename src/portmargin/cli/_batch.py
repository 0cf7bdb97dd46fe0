"""``portmargin batch``: margin every account of a positions file (Parquet or CSV)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import Progress

from portmargin.batch import AccountBook, BatchResult, MarginSession
from portmargin.batch._io import (
    quantities_for,
    read_positions,
    result_table,
    session_for,
    write_table,
)
from portmargin.cli._common import err_console, get_market
from portmargin.models import load_model

__all__ = ["register"]

_CHUNK = 65_536


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
    ) -> None:
        """Margin every account of POSITIONS; rows with instrument cash:CCY are balances."""
        snap = get_market(market)
        mdl = load_model(
            model,
            params_file=None if params is None else str(params),
            cross=True if cross else None,
        )
        pos = read_positions(positions)
        session, mapping = session_for(
            pos, snap, lambda names: MarginSession(snap, mdl, tuple(names))
        )
        q = quantities_for(pos, session, mapping)
        n = q.shape[0]
        parts: list[BatchResult] = []
        with Progress(console=err_console, transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("margining accounts", total=n)
            for a in range(0, n, _CHUNK):
                b = min(a + _CHUNK, n)
                parts.append(session.margin(AccountBook(pos.accounts[a:b], q[a:b])))
                bar.advance(task, b - a)
        result = BatchResult.concat(parts)
        write_table(result_table(pos.accounts, result, session), out)
        if sys.stderr.isatty():
            err_console.print(f"{n:,} accounts -> {out}")
