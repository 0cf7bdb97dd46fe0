"""``portmargin accounts load`` / ``portmargin accounts show``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from portmargin.cli._common import DEFAULT_DB_URL, DbOpt, console, print_json
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
        doc["status"] = store.statuses().get(account_id)
        doc["latest_margin"] = store.latest_snapshot(account_id)
        doc["events"] = [
            {"seq": e.seq, "kind": e.kind, "market_time": e.market_time}
            for e in store.events()
            if e.account_id == account_id
        ]
        print_json(doc)

    app.add_typer(group, name="accounts")
