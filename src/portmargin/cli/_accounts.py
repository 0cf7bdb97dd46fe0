"""``portmargin accounts load`` / ``portmargin accounts show``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from portmargin.cli._common import (
    DEFAULT_DB_URL,
    DbOpt,
    FormatOpt,
    OutputFormat,
    console,
    print_json,
)
from portmargin.errors import InputError, PortmarginError

if TYPE_CHECKING:
    from portmargin.accounts import Account

__all__ = ["check_instruments", "register"]


def check_instruments(accounts: Sequence[Account], source: str) -> None:
    """Refuse accounts holding an instrument the monitor cannot name (built-in products only).

    The accounts file loader accepts any string as an instrument; one such account would
    make the monitor reject every market update of every account, so it is refused up front.

    Raises
    ------
    InputError
        ``source: accounts.I: account ID: positions: instrument ...: reason``.
    """
    from portmargin.instruments import parse_instrument

    for i, a in enumerate(accounts):
        for name in a.positions:
            try:
                parse_instrument(name)
            except PortmarginError as exc:
                raise InputError(
                    f"{source}: accounts.{i}: account {a.account_id}: positions: {exc}"
                ) from None


def register(app: typer.Typer) -> None:
    """Attach the ``accounts`` command group to ``app``."""
    group = typer.Typer(help="Load and inspect stored accounts.", no_args_is_help=True)

    @group.command("load")
    def load_cmd(
        ctx: typer.Context,
        file: Annotated[Path, typer.Argument(help="Accounts JSON file.", show_default=False)],
        db: DbOpt = DEFAULT_DB_URL,
        replace: Annotated[
            bool, typer.Option("--replace", help="Overwrite existing accounts.")
        ] = False,
    ) -> None:
        """Store the accounts of FILE (migrating the database first)."""
        from portmargin.accounts import load_accounts
        from portmargin.storage import MONITOR_LEASE, open_store

        accounts, _ = load_accounts(file)
        check_instruments(accounts, str(file))
        store = ctx.with_resource(open_store(db))  # closed when the command ends
        ctx.with_resource(store.lease(MONITOR_LEASE))  # refused while a monitor writes
        n = store.save_accounts(accounts, replace=replace)
        console.print(f"stored {n} accounts in {db}")

    @group.command("show")
    def show_cmd(
        ctx: typer.Context,
        account_id: Annotated[str, typer.Argument(help="Account id.", show_default=False)],
        db: DbOpt = DEFAULT_DB_URL,
    ) -> None:
        """Print an account's balances, positions, status and latest margin snapshot (JSON)."""
        from portmargin.storage import open_store

        store = ctx.with_resource(open_store(db, create=False))  # refuses a mistyped path
        found = [a for a in store.load_accounts() if a.account_id == account_id]
        if not found:
            raise InputError(f"account {account_id!r} not found in {db}")
        doc = found[0].to_dict()
        latest = store.latest_snapshot(account_id)
        # an account the monitor has not margined yet has no status: say so
        doc["status"] = store.statuses().get(account_id) if latest else "not yet margined"
        doc["latest_margin"] = latest
        doc["events"] = [
            {"seq": e.seq, "kind": e.kind, "market_time": e.market_time}
            for e in store.events()
            if e.account_id == account_id
        ]
        print_json(doc)

    @group.command("list")
    def list_cmd(
        ctx: typer.Context,
        db: DbOpt = DEFAULT_DB_URL,
        status: Annotated[
            str | None,
            typer.Option(
                "--status",
                help="Only accounts in this status: healthy, margin_call, liquidation or "
                "unmargined.",
                show_default=False,
            ),
        ] = None,
        sort: Annotated[
            str,
            typer.Option(
                "--sort",
                help="margin_ratio (worst pool's MM / equity, highest first), "
                "excess (lowest first) or id.",
            ),
        ] = "margin_ratio",
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """List the stored accounts with their latest status and figures (USD)."""
        from portmargin.storage import open_store

        known = {"healthy", "margin_call", "liquidation", "unmargined"}
        if status is not None and status not in known:
            raise InputError(f"--status {status!r}: use one of {', '.join(sorted(known))}")
        if sort not in ("margin_ratio", "excess", "id"):
            raise InputError(f"--sort {sort!r}: use margin_ratio, excess or id")
        store = ctx.with_resource(open_store(db, create=False))
        latest = store.latest_snapshots()
        rows = []
        for a in store.load_accounts():
            snap = latest.get(a.account_id)
            row: dict[str, object] = {
                "account": a.account_id,
                "status": snap["status"] if snap else "unmargined",
                "method": snap["method"] if snap else None,
                "equity": snap["equity"] if snap else None,
                "initial_margin": snap["initial_margin"] if snap else None,
                "maintenance_margin": snap["maintenance_margin"] if snap else None,
                "excess": snap["equity"] - snap["initial_margin"] if snap else None,
                "margin_ratio": snap["margin_ratio"] if snap else None,
                "market_time": snap["market_time"] if snap else None,
            }
            if status is None or row["status"] == status:
                rows.append(row)

        def key(r: dict[str, object]) -> tuple[int, float | str]:
            if sort == "id":
                return (0, str(r["account"]))
            value = r[sort]
            if value is None:  # no figure (never margined, or an infinite ratio) last/first
                missing = r["status"] == "unmargined"
                return (2 if missing else 0, 0.0 if missing else -math.inf)
            number = float(value)  # type: ignore[arg-type]
            return (1, -number if sort == "margin_ratio" else number)

        rows.sort(key=key)
        if fmt is OutputFormat.json:
            print_json({"database": db, "accounts": rows})
            return
        t = Table(title=f"accounts in {db} ({len(rows)})", title_justify="left")
        for col in ("account", "status", "method", "equity", "IM", "excess", "ratio"):
            t.add_column(col, justify="left" if col in ("account", "status", "method") else "right")
        for r in rows:

            def money(v: object) -> str:
                return "-" if v is None else f"{float(v):,.0f}"  # type: ignore[arg-type]

            ratio = r["margin_ratio"]
            t.add_row(
                escape(str(r["account"])),
                str(r["status"]),
                str(r["method"] or "-"),
                money(r["equity"]),
                money(r["initial_margin"]),
                money(r["excess"]),
                "inf"
                if ratio is None and r["status"] != "unmargined"
                else ("-" if ratio is None else f"{float(ratio):.1%}"),  # type: ignore[arg-type]
            )
        console.print(t)

    app.add_typer(group, name="accounts")
