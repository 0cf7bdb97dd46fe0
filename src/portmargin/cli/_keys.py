"""``portmargin keys create|list|revoke``: API keys of ``portmargin serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from portmargin.cli._common import DEFAULT_DB_URL, DbOpt, console
from portmargin.errors import InputError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach the ``keys`` command group to ``app``."""
    group = typer.Typer(help="API keys of the margin service.", no_args_is_help=True)

    @group.command("create")
    def create_cmd(
        ctx: typer.Context,
        role: Annotated[str, typer.Option("--role", help="admin, risk or trader.")],
        account: Annotated[
            str | None,
            typer.Option(
                "--account", help="The account a trader key reads and trades.", show_default=False
            ),
        ] = None,
        rate: Annotated[
            float | None,
            typer.Option(
                "--rate", help="Requests per second (default: the service's).", show_default=False
            ),
        ] = None,
        label: Annotated[
            str | None, typer.Option("--label", help="A note.", show_default=False)
        ] = None,
        db: DbOpt = DEFAULT_DB_URL,
    ) -> None:
        """Create a key; the key itself is printed alone on the last line (shown once)."""
        from portmargin.storage import open_store
        from portmargin.storage._api import create_key

        store = ctx.with_resource(open_store(db))
        if account is not None and account not in {a.account_id for a in store.load_accounts()}:
            raise InputError(f"--account {account!r}: no such account in {db}")
        key, token = create_key(
            store, role=role, account_id=account, rate_per_second=rate, label=label
        )
        scope = f" for account {account}" if account else ""
        console.print(f"created {key.role} key {key.key_id}{scope}; it is shown only now:")
        print(token)

    @group.command("list")
    def list_cmd(ctx: typer.Context, db: DbOpt = DEFAULT_DB_URL) -> None:
        """List the keys (never their secrets)."""
        from portmargin.storage import open_store
        from portmargin.storage._api import list_keys

        store = ctx.with_resource(open_store(db, create=False))
        for k in list_keys(store):
            state = f"revoked {k.revoked_at}" if k.revoked_at else "live"
            console.print(
                f"{k.key_id}  {k.role:7}  {k.account_id or '-':12}  {k.created_at}  {state}"
            )

    @group.command("revoke")
    def revoke_cmd(
        ctx: typer.Context,
        key_id: Annotated[
            str, typer.Argument(help="The key's id (pm_<id>_...).", show_default=False)
        ],
        db: DbOpt = DEFAULT_DB_URL,
    ) -> None:
        """Revoke a key (a running service stops accepting it within seconds)."""
        from portmargin.storage import open_store
        from portmargin.storage._api import revoke_key

        store = ctx.with_resource(open_store(db, create=False))
        if not revoke_key(store, key_id):
            raise InputError(f"no live key {key_id!r} in {db}")
        console.print(f"revoked {key_id}")

    app.add_typer(group, name="keys")
