"""``portmargin accounts load`` / ``portmargin accounts show``."""

from __future__ import annotations

from pathlib import Path

import typer

from portmargin.accounts import load_accounts
from portmargin.cli._common import console, print_json
from portmargin.errors import InputError
from portmargin.storage import DEFAULT_DB_URL, open_store

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach the ``accounts`` command group to ``app``."""
    group = typer.Typer(help="Load and inspect stored accounts.", no_args_is_help=True)

    @group.command("load")
    def load_cmd(
        file: Path = typer.Argument(..., help="Accounts JSON file."),
        db: str = typer.Option(DEFAULT_DB_URL, "--db", help="Database URL."),
        replace: bool = typer.Option(False, "--replace", help="Overwrite existing accounts."),
    ) -> None:
        """Store the accounts of FILE (migrating the database first)."""
        accounts, _ = load_accounts(file)
        store = open_store(db)
        n = store.save_accounts(accounts, replace=replace)
        console.print(f"stored {n} accounts in {db}")

    @group.command("show")
    def show_cmd(
        account_id: str = typer.Argument(..., help="Account id."),
        db: str = typer.Option(DEFAULT_DB_URL, "--db", help="Database URL."),
    ) -> None:
        """Print an account's balances, positions, status and latest margin snapshot (JSON)."""
        store = open_store(db)
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
