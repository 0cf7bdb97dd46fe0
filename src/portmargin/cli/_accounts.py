"""``portmargin accounts load`` / ``portmargin accounts show``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from portmargin.accounts import Account, load_accounts
from portmargin.cli._common import console, print_json
from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import parse_instrument
from portmargin.storage import DEFAULT_DB_URL, MONITOR_LEASE, open_store

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
        file: Path = typer.Argument(..., help="Accounts JSON file."),
        db: str = typer.Option(DEFAULT_DB_URL, "--db", help="Database URL."),
        replace: bool = typer.Option(False, "--replace", help="Overwrite existing accounts."),
    ) -> None:
        """Store the accounts of FILE (migrating the database first)."""
        accounts, _ = load_accounts(file)
        check_instruments(accounts, str(file))
        store = ctx.with_resource(open_store(db))  # closed when the command ends
        ctx.with_resource(store.lease(MONITOR_LEASE))  # refused while a monitor writes
        n = store.save_accounts(accounts, replace=replace)
        console.print(f"stored {n} accounts in {db}")

    @group.command("show")
    def show_cmd(
        ctx: typer.Context,
        account_id: str = typer.Argument(..., help="Account id."),
        db: str = typer.Option(DEFAULT_DB_URL, "--db", help="Database URL."),
    ) -> None:
        """Print an account's balances, positions, status and latest margin snapshot (JSON)."""
        store = ctx.with_resource(open_store(db, create=False))  # refuses a mistyped path
        found = [a for a in store.load_accounts() if a.account_id == account_id]
        if not found:
            raise InputError(f"account {account_id!r} not found in {db}")
        doc = found[0].to_dict()
        doc["status"] = store.statuses().get(account_id)
        doc["latest_margin"] = store.latest_snapshot(account_id)
        doc["events"] = [
            {"seq": e.seq, "kind": e.kind, "market_time": e.market_time}
            for e in store.events()
            if e.account_id == account_id
        ]
        print_json(doc)

    app.add_typer(group, name="accounts")
