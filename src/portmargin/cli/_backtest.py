"""``portmargin backtest``: a strategy's margin under each method against its realised loss."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from portmargin.cli._common import FormatOpt, OutputFormat, console, err_console, print_json
from portmargin.errors import InputError

if TYPE_CHECKING:
    from portmargin.backtest.runner import BacktestResult

__all__ = ["parse_day", "register", "render_backtest"]

DEFAULT_MODELS = ("deribit", "span16", "tims", "var")
_ZONE_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red"}
_PROGRESS_MIN_DAYS = 100


def parse_day(text: str | None, flag: str) -> date | None:
    """``YYYY-MM-DD`` → date (``None`` stays ``None``).

    Raises
    ------
    InputError
        ``--from '2024-13-01': must be a date YYYY-MM-DD``.
    """
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{flag} {text!r}: must be a date YYYY-MM-DD") from None


def render_backtest(result: BacktestResult) -> None:
    """The per-model table and the worst exceedances."""
    r = result
    t = Table(
        title=(
            f"{r.strategy} on {'+'.join(r.underlyings)}, tenor {r.tenor_days} d, size "
            f"{r.size:g}: margin at t vs loss to t + {r.horizon_days} d, {r.start} to {r.end}"
        ),
        title_justify="left",
        header_style="bold",
    )
    for col in ("model", "days", "exceed.", "coverage", "conf.", "Kupiec p", "Christ. p", "zone"):
        t.add_column(col, justify="left" if col in ("model", "zone") else "right")
    t.add_column("mean margin USD", justify="right")
    t.add_column("peak/trough", justify="right")
    for m in r.models:
        s = m.stats
        t.add_row(
            m.model,
            str(s.days),
            str(s.exceedances),
            f"{s.coverage:.2%}",
            f"{m.confidence:.1%}",
            f"{s.kupiec_pvalue:.3f}",
            f"{s.christoffersen_pvalue:.3f}",
            f"[{_ZONE_STYLE[s.zone]}]{s.zone}[/]",
            f"{m.mean_margin:,.0f}",
            f"{m.peak_to_trough:.2f}",
        )
    console.print(t)
    w = Table(title="worst exceedances (USD at day t)", title_justify="left", header_style="bold")
    for col in ("model", "date", "margin", "loss", "loss/margin"):
        w.add_column(col, justify="left" if col in ("model", "date") else "right")
    any_row = False
    for m in r.models:
        for e in m.worst(3):
            any_row = True
            ratio = e.loss / e.margin if e.margin > 0 else float("inf")
            w.add_row(
                m.model, e.day.isoformat(), f"{e.margin:,.0f}", f"{e.loss:,.0f}", f"{ratio:.2f}"
            )
    if any_row:
        console.print(w)
    for m in r.models:
        if m.skipped:
            console.print(
                f"  [dim]{m.model}: {m.skipped} day(s) not margined, first: {m.skip_reason}[/]"
            )
    console.print(
        f"  [dim]exceedance: loss from t to t + h above the {r.models[0].requirement.upper()} "
        f"at t, in each pool's currency; history {r.history}[/]"
    )


def register(app: typer.Typer) -> None:
    """Attach ``backtest`` to ``app``."""

    @app.command("backtest")
    def backtest_cmd(
        strategy: Annotated[
            str,
            typer.Option(
                "--strategy",
                help="short-straddle, long-straddle, short-strangle, short-put, put-spread, "
                "covered-call, iron-condor, risk-reversal, delta-hedged-short-gamma, random.",
            ),
        ],
        underlying: Annotated[
            list[str] | None,
            typer.Option("--underlying", help="BTC or ETH (repeat for a book on both)."),
        ] = None,
        model: Annotated[
            list[str] | None,
            typer.Option(
                "--model",
                help="Method to test (repeat): deribit, span16, tims, var, var-hs, ..., a rule "
                "set, or a model / VaR model TOML path. Default: deribit, span16, tims, var.",
            ),
        ] = None,
        start: Annotated[
            str | None, typer.Option("--from", help="First day YYYY-MM-DD.", show_default=False)
        ] = None,
        end: Annotated[
            str | None, typer.Option("--to", help="Last day YYYY-MM-DD.", show_default=False)
        ] = None,
        horizon: Annotated[int, typer.Option("--horizon", help="Days from margin to loss.")] = 1,
        tenor: Annotated[int, typer.Option("--tenor", help="Days to expiry of the legs.")] = 30,
        size: Annotated[
            float, typer.Option("--size", help="Contracts (coins) per leg unit.")
        ] = 1.0,
        step: Annotated[int, typer.Option("--step", help="Days between books.")] = 1,
        requirement: Annotated[
            str, typer.Option("--requirement", help="im or mm: the requirement tested.")
        ] = "im",
        confidence: Annotated[
            float | None,
            typer.Option(
                "--confidence",
                help="Test every model at this level (default: its own; 0.99 for grids).",
                show_default=False,
            ),
        ] = None,
        history: Annotated[
            Path | None,
            typer.Option(
                "--history",
                help="Daily history CSV (date,<code>_close,<code>_dvol); default: shipped.",
                show_default=False,
            ),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the random strategy.")] = 0,
        fmt: FormatOpt = OutputFormat.table,
        plot: Annotated[
            Path | None,
            typer.Option("--plot", help="Chart file (.png or .html).", show_default=False),
        ] = None,
    ) -> None:
        """Back-test margin methods on a strategy over the daily BTC/ETH history."""
        from portmargin.backtest.methods import resolve_methods
        from portmargin.backtest.runner import run_backtest
        from portmargin.backtest.strategies import strategy as get_strategy
        from portmargin.var.history import load_history

        if requirement not in ("im", "mm"):
            raise InputError(f"--requirement {requirement!r}: must be im or mm")
        if confidence is not None and not 0.5 <= confidence < 1.0:
            raise InputError(f"--confidence {confidence!r}: must be in [0.5, 1)")
        if plot is not None and plot.suffix.lower() not in (".png", ".html"):
            raise InputError(f"{plot}: --plot needs a .png or .html file")
        strat = get_strategy(strategy)
        hist = load_history(history)
        unds = tuple(u.strip().upper() for u in (underlying or ["BTC"]))
        methods = resolve_methods(list(model or DEFAULT_MODELS), hist)
        t_from, t_to = parse_day(start, "--from"), parse_day(end, "--to")
        req: Literal["im", "mm"] = "im" if requirement == "im" else "mm"

        def run(progress: Callable[[int, int], None] | None) -> BacktestResult:
            return run_backtest(
                strat,
                unds,
                methods,
                history=hist,
                start=t_from,
                end=t_to,
                horizon_days=horizon,
                tenor_days=tenor,
                size=size,
                step_days=step,
                seed=seed,
                requirement=req,
                confidence=confidence,
                progress=progress,
            )

        if err_console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(
                TextColumn("backtest"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} days"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            ) as bar:
                task = bar.add_task("days", total=None)

                def tick(done: int, total: int) -> None:
                    if total >= _PROGRESS_MIN_DAYS:
                        bar.update(task, completed=done, total=total)

                result = run(tick)
        else:
            result = run(None)
        if plot is not None:
            from portmargin.backtest.plot import backtest_chart

            backtest_chart(result, plot)
        if fmt is OutputFormat.json:
            print_json(result.to_dict())
            return
        render_backtest(result)
        if plot is not None:
            console.print(f"  chart: {plot}")
