"""``portmargin monitor``: run the margin monitor on a replayed or simulated feed."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from portmargin.accounts import load_accounts
from portmargin.cli._accounts import check_instruments
from portmargin.cli._common import console
from portmargin.errors import InputError
from portmargin.models import load_model
from portmargin.monitor import JsonlFeed, Monitor, ReplayFeed, SimulatedFeed, load_crash_day
from portmargin.monitor._events import FeedItem
from portmargin.storage import DEFAULT_DB_URL, MONITOR_LEASE, open_store

__all__ = ["DATA_DIR", "register"]

DATA_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "deribit_options_2026-02-04_05"


class FeedKind(StrEnum):
    """Market source."""

    replay = "replay"
    simulated = "simulated"


def _view(m: Monitor) -> Group:
    t = Table(title="accounts by margin ratio (MM / equity)", title_justify="left")
    for col in ("account", "method", "equity", "IM", "MM", "ratio", "status"):
        t.add_column(col, justify="left" if col in ("account", "method", "status") else "right")
    ranked = sorted(m.margins.values(), key=lambda x: -x.margin_ratio)[:15]
    for a in ranked:
        ratio = "inf" if math.isinf(a.margin_ratio) else f"{a.margin_ratio:.1%}"
        color = {"healthy": "green", "margin_call": "yellow", "liquidation": "red"}[a.status.value]
        t.add_row(
            escape(a.account_id),
            a.method,
            f"{a.equity_usd:,.0f}",
            f"{a.initial_margin_usd:,.0f}",
            f"{a.maintenance_margin_usd:,.0f}",
            ratio,
            f"[{color}]{a.status.value}[/]",
        )
    e = Table(title="recent events", title_justify="left")
    for col in ("seq", "market time", "event", "account", "detail"):
        e.add_column(col)
    for ev in list(m.recent)[:10]:
        fig = ev.get("figures", {})
        detail = ev.get("reason") or (
            f"equity {fig.get('equity', 0):,.0f} / IM {fig.get('initial_margin', 0):,.0f}"
        )
        seq = ev.get("cause", {}).get("seq", ev.get("seq", ""))
        # Feed lines are untrusted: an account id or reason like "[/b]" is text, not markup.
        cells = (str(seq), ev.get("market_time", ""), ev["kind"], ev.get("account") or "-", detail)
        e.add_row(*(escape(str(c)) for c in cells))
    feed_time = m.feed_time.isoformat() if m.feed_time else "-"
    head = (
        f"feed time {feed_time}   seq {m.last_seq}   "
        f"{m.stats.updates_per_second:,.1f} updates/s   events {m.stats.emitted}   "
        f"rejected {m.stats.rejected}"
    )
    return Group(head, t, e)


def register(app: typer.Typer) -> None:
    """Attach ``monitor`` to ``app``."""

    @app.command("monitor")
    def monitor_cmd(
        ctx: typer.Context,
        accounts: Path = typer.Option(..., "--accounts", help="Accounts JSON file."),
        feed: str = typer.Option(
            "replay", "--feed", help="replay, simulated, or a JSON-lines feed file."
        ),
        db: str = typer.Option(DEFAULT_DB_URL, "--db", help="Database URL."),
        speed: float = typer.Option(
            0.0, "--speed", help="Feed seconds per wall second (0 = as fast as possible)."
        ),
        headless: bool = typer.Option(False, "--headless", help="No terminal view."),
        max_events: int | None = typer.Option(
            None, "--max-events", help="Stop after N new input events."
        ),
        steps: int = typer.Option(24, "--steps", help="Replay steps across the crash day."),
        seed: int = typer.Option(0, "--seed", help="Simulated feed seed."),
        data: Path = typer.Option(DATA_DIR, "--data", help="Deribit crash-day data folder."),
        model: str = typer.Option("deribit", "--model", help="Model name or model TOML path."),
    ) -> None:
        """Monitor accounts' margin on a market feed; events are committed to the database."""
        accts, settings = load_accounts(accounts)
        check_instruments(accts, str(accounts))
        # Closed, and the lease (one monitor per database) released, when the command ends.
        store = ctx.with_resource(open_store(db))
        ctx.with_resource(store.lease(MONITOR_LEASE))
        stored = store.load_accounts()
        if not stored:
            store.save_accounts(accts)
        else:
            check_instruments(stored, db)
        source: object
        if feed == FeedKind.replay:
            source = ReplayFeed(data, steps=steps)
        elif feed == FeedKind.simulated:
            m0, _, _ = load_crash_day(data)
            source = SimulatedFeed(m0, seed=seed, steps=max_events or 1_000)
        elif Path(feed).is_file():
            source = JsonlFeed(feed)
        else:
            raise InputError(f"--feed {feed!r}: use replay, simulated or a JSON-lines file")
        name = str(getattr(source, "name", feed))
        mon = Monitor(store, load_model(model), settings, feed_name=name)
        items: list[FeedItem] | object = source
        if headless:
            stats = mon.run(items, max_events=max_events, speed=speed)  # type: ignore[arg-type]
        else:
            with Live(_view(mon), console=console, refresh_per_second=4) as live:
                stats = mon.run(
                    items,  # type: ignore[arg-type]
                    max_events=max_events,
                    speed=speed,
                    on_step=lambda m: live.update(_view(m)),
                )
            if not console.is_terminal:
                console.line()  # rich leaves the last frame unterminated on a pipe or file
        console.print(
            f"processed {stats.processed} input events ({stats.skipped} already committed), "
            f"{stats.emitted} events, {stats.rejected} rejected, {stats.seconds:.1f} s"
        )
