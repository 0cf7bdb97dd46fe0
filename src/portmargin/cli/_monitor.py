"""``portmargin monitor``: run the margin monitor on a replayed, simulated or JSON-lines feed.

The default feed replays the 2026-02-04/05 Deribit crash day from the data shipped in the
package (``--data DIR`` reads the raw files instead). ``--market FILE`` seeds the market: its
state is the first state of every underlying, so a JSON-lines feed may send index-only
lines. On a terminal the live view shows the index prices and their move since the start,
the accounts per status, the accounts closest to liquidation and the recent events; ``q``
quits (the summary is printed). ``--headless`` prints one line per emitted event and the
summary. The engine is imported in the command's body: ``portmargin --help`` stays light.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import threading
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from portmargin.cli._common import DEFAULT_DB_URL, console
from portmargin.errors import InputError

if TYPE_CHECKING:
    from portmargin.monitor import Monitor

__all__ = ["event_line", "register"]


class FeedKind(StrEnum):
    """Market source."""

    replay = "replay"
    simulated = "simulated"


STATUS_LABELS = (
    ("healthy", "healthy", "green"),
    ("margin_call", "margin call", "yellow"),
    ("liquidation", "liquidation", "red"),
    ("error", "excluded (error)", "magenta"),
)


def _money(x: object) -> str:
    return f"{x:,.0f}" if isinstance(x, int | float) and math.isfinite(x) else "-"


def _markets(m: Monitor) -> str:
    """``BTC 63,858 (-12.6%)   ETH 1,874 (-12.4%)``: index now and move since the start."""
    parts = []
    for u in sorted(m.states):
        now = m.states[u].index
        start = m.start_index.get(u, now)
        move = now / start - 1.0 if start > 0 else 0.0
        price = f"{now:,.2f}" if now < 100 else f"{now:,.0f}"
        parts.append(f"{u} {price} ({move:+.1%})")
    return "   ".join(parts) if parts else "no market data yet"


def _counts(m: Monitor) -> str:
    counts = m.status_counts()
    return "   ".join(f"[{c}]{label} {counts[k]}[/]" for k, label, c in STATUS_LABELS)


def _detail(ev: dict[str, Any]) -> str:
    """One cell (or line) saying what an event is about."""
    kind = ev.get("kind")
    if kind == "rejected":
        return str(ev.get("reason", ""))
    if kind == "account_error":
        return f"excluded from margining: {ev.get('reason', '')}"
    if kind == "expiry":
        lines = ev.get("settled", [])
        return "; ".join(
            f"{x['instrument']} x{x['quantity']:g} settled at {x['settlement_price']:,.2f}: "
            f"{x['cash']:+.6g} {x['currency']}"
            for x in lines
        )
    fig = ev.get("figures") or {}
    text = (
        f"equity {_money(fig.get('equity'))} / IM {_money(fig.get('initial_margin'))}"
        f" / MM {_money(fig.get('maintenance_margin'))} USD"
    )
    if kind in ("trade", "deposit", "withdrawal"):
        change = ev.get("change", {})
        what = (
            f"{change.get('instrument')} {change.get('quantity'):+g}"
            if kind == "trade"
            else f"{change.get('amount')} {change.get('currency')}"
        )
        return f"{text} after {kind} {what}"
    return text


def event_line(ev: dict[str, Any]) -> str:
    """The headless line of one emitted event.

    ``market-time  seq N  kind  account  detail``; a rejection names the input it refused
    and the reason; a rejected line that had no usable sequence number shows ``-``.
    """
    cause = ev.get("cause") or {}
    seq = cause.get("seq", ev.get("seq"))
    if ev.get("kind") == "rejected":
        seq = ev.get("seq")
        where = f" line {ev['position']}" if ev.get("position") is not None else ""
        head = f"rejected {ev.get('input')}{where}"
    else:
        head = str(ev.get("kind"))
    seq_text = "-" if seq is None else str(seq)
    when = ev.get("market_time") or "-"
    return f"{when}  seq {seq_text}  {head}  {ev.get('account') or '-'}  {_detail(ev)}"


def _view(m: Monitor) -> Group:
    t = Table(title="accounts by margin ratio (MM / equity, worst pool)", title_justify="left")
    for col in ("account", "method", "equity", "IM", "MM", "ratio", "status"):
        t.add_column(col, justify="left" if col in ("account", "method", "status") else "right")
    ranked = sorted(m.margins.values(), key=lambda x: -x.worst_pool_ratio)[:15]
    for a in ranked:
        worst = a.worst_pool_ratio
        ratio = "inf" if math.isinf(worst) else f"{worst:.1%}"
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
        seq = ev.get("cause", {}).get("seq", ev.get("seq", ""))
        # Feed lines are untrusted: an account id or reason like "[/b]" is text, not markup.
        cells = (
            "-" if seq is None else str(seq),
            ev.get("market_time", ""),
            ev["kind"],
            ev.get("account") or "-",
            _detail(ev),
        )
        e.add_row(*(escape(str(c)) for c in cells))
    feed_time = m.feed_time.isoformat() if m.feed_time else "-"
    head = (
        f"feed time {feed_time}   seq {m.last_seq}   "
        f"{m.stats.updates_per_second:,.1f} updates/s   events {m.stats.emitted}   "
        f"rejected {m.stats.rejected}"
    )
    return Group(
        head,
        f"index (move since the start)   {escape(_markets(m))}",
        f"accounts   {_counts(m)}   [dim](q quits)[/]",
        t,
        e,
    )


def _key_fd() -> int | None:
    """The file descriptor to read keys from: stdin when it is a terminal, else None."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if os.isatty(fd) else None


@contextlib.contextmanager
def _quit_key(fd: int | None) -> Iterator[Callable[[], bool]]:
    """``stop()`` turns true once ``q`` is read from ``fd`` (a terminal in cbreak mode)."""
    pressed = threading.Event()
    if fd is None:
        yield pressed.is_set
        return
    done = threading.Event()
    saved: list[Any] | None = None
    if os.isatty(fd):
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

    def watch() -> None:
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            key = os.read(fd, 1)
            if key == b"":  # end of input: nobody can press q any more
                return
            if key in (b"q", b"Q"):
                pressed.set()
                return

    thread = threading.Thread(target=watch, name="portmargin-keys", daemon=True)
    thread.start()
    try:
        yield pressed.is_set
    finally:
        done.set()
        thread.join(timeout=1.0)
        if saved is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


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
        headless: bool = typer.Option(
            False, "--headless", help="No terminal view: one line per event, then a summary."
        ),
        max_events: int | None = typer.Option(
            None, "--max-events", help="Stop after N new input events."
        ),
        steps: int = typer.Option(24, "--steps", help="Replay steps across the crash day."),
        seed: int = typer.Option(0, "--seed", help="Simulated feed seed."),
        data: Path | None = typer.Option(
            None,
            "--data",
            help="Folder of the raw crash-day files; default: the copy shipped in the package.",
            show_default=False,
        ),
        market: Path | None = typer.Option(
            None,
            "--market",
            help="Market file seeding the feed's market (JSON-lines or simulated feeds).",
            show_default=False,
        ),
        model: str = typer.Option("deribit", "--model", help="Model name or model TOML path."),
    ) -> None:
        """Monitor accounts' margin on a market feed; events are committed to the database."""
        from portmargin.accounts import load_accounts
        from portmargin.cli._accounts import check_instruments
        from portmargin.cli._common import get_market
        from portmargin.models import load_model
        from portmargin.monitor import (
            JsonlFeed,
            Monitor,
            ReplayFeed,
            SimulatedFeed,
            load_crash_day,
        )
        from portmargin.storage import MONITOR_LEASE, open_store

        if data is not None and not data.is_dir():
            raise InputError(f"--data {data}: not a folder of the crash-day files")
        accts, settings = load_accounts(accounts)
        check_instruments(accts, str(accounts))
        seed_market = None if market is None else get_market(market)
        source: Any
        if feed == FeedKind.replay:
            if seed_market is not None:
                raise InputError(
                    "--market seeds a JSON-lines or simulated feed; the replay brings its own "
                    "market (use --data for other crash-day files)"
                )
            source = ReplayFeed(data, steps=steps)
        elif feed == FeedKind.simulated:
            base = seed_market if seed_market is not None else load_crash_day(data)[0]
            source = SimulatedFeed(base, seed=seed, steps=max_events or 1_000)
        elif Path(feed).is_file():
            source = JsonlFeed(feed)
        else:
            raise InputError(f"--feed {feed!r}: use replay, simulated or a JSON-lines file")
        # Closed, and the lease (one monitor per database) released, when the command ends.
        store = ctx.with_resource(open_store(db))
        ctx.with_resource(store.lease(MONITOR_LEASE))
        stored = store.load_accounts()
        if not stored:
            store.save_accounts(accts)
        else:
            check_instruments(stored, db)
        name = str(getattr(source, "name", feed))
        mon = Monitor(store, load_model(model), settings, feed_name=name, market=seed_market)
        if headless:

            def show(events: list[dict[str, Any]]) -> None:
                for e in events:  # feed text is untrusted: printed literally, not as markup
                    console.print(escape(event_line(e)), soft_wrap=True)

            stats = mon.run(source, max_events=max_events, speed=speed, on_events=show)
        else:
            from rich.live import Live

            with (
                _quit_key(_key_fd()) as stop,
                Live(_view(mon), console=console, refresh_per_second=4) as live,
            ):
                stats = mon.run(
                    source,
                    max_events=max_events,
                    speed=speed,
                    on_step=lambda m: live.update(_view(m)),
                    stop=stop,
                )
            if not console.is_terminal:
                console.line()  # rich leaves the last frame unterminated on a pipe or file
        console.print(
            f"processed {stats.processed} input events ({stats.skipped} already committed), "
            f"{stats.emitted} events, {stats.rejected} rejected, {stats.seconds:.1f} s"
        )
