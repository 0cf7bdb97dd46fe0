"""``portmargin serve``: the margin service (REST API, WebSocket stream, risk dashboard)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from portmargin.cli._common import DEFAULT_DB_URL, DbOpt, err_console
from portmargin.errors import InputError

__all__ = ["SWITCH_INTERVAL", "register"]

SWITCH_INTERVAL = 0.0005
"""Seconds between CPython's forced GIL hand-offs in the service process (default 0.005)."""


def register(app: typer.Typer) -> None:
    """Attach ``serve`` to ``app``."""

    @app.command("serve")
    def serve_cmd(
        host: Annotated[
            str, typer.Option("--host", help="Address to bind (127.0.0.1: this machine only).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
        db: DbOpt = DEFAULT_DB_URL,
        market: Annotated[
            Path | None,
            typer.Option(
                "--market", help="Market file (default: the demo market).", show_default=False
            ),
        ] = None,
        feed: Annotated[
            str | None,
            typer.Option(
                "--feed",
                help="Live or replayed market: replay, simulated, jsonl:FILE or deribit.",
                show_default=False,
            ),
        ] = None,
        accounts: Annotated[
            Path | None,
            typer.Option(
                "--accounts",
                help="Accounts file loaded into an empty database (default: the example accounts).",
                show_default=False,
            ),
        ] = None,
        model: Annotated[
            str, typer.Option("--model", help="Scenario model of the monitor.")
        ] = "deribit",
        speed: Annotated[
            float,
            typer.Option("--speed", help="Replayed feed seconds per wall second (0: at once)."),
        ] = 0.0,
        steps: Annotated[
            int, typer.Option("--steps", help="Replay steps across the crash day.")
        ] = 24,
        data: Annotated[
            Path | None,
            typer.Option(
                "--data", help="Crash-day data folder (replay, simulated).", show_default=False
            ),
        ] = None,
        deribit_url: Annotated[
            str, typer.Option("--deribit-url", help="Deribit's WebSocket API.")
        ] = "wss://www.deribit.com/ws/api/v2",
    ) -> None:
        """Serve the margin API, the event stream and the risk dashboard (http://HOST:PORT/)."""
        import uvicorn

        from portmargin.service import ServiceSettings, create_app

        if market is not None and feed is not None:
            raise InputError("give --market or --feed, not both")
        settings = ServiceSettings(
            host=host,
            port=port,
            db_url=db,
            market_file=market,
            feed=feed,
            accounts_file=accounts,
            model=model,
            speed=speed,
            replay_steps=steps,
            data_dir=data,
            deribit_url=deribit_url,
        )
        app = create_app(settings)
        if host not in ("127.0.0.1", "localhost", "::1"):
            err_console.print(
                f"[yellow]warning:[/] binding {host}: put the service behind a TLS reverse proxy "
                "(docs/service.md)",
                markup=True,
            )
        err_console.print(f"portmargin serve: http://{host}:{port}/ (API docs at /docs)")
        # The event loop (HTTP, WebSocket) shares the GIL with the request threads and the
        # monitor's worker: with CPython's default 5 ms switch interval the loop waits up to
        # 5 ms each time a thread holds the GIL, and the service saturated at about 110
        # requests/s on the 2-core machine; at 0.5 ms it served 200/s (BENCHMARKS.md (s)).
        sys.setswitchinterval(SWITCH_INTERVAL)
        uvicorn.run(app, host=host, port=port, log_level="info", ws="websockets-sansio")
