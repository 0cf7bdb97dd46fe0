"""``portmargin calibrate``: a grid model's scan ranges from history, back-tested beside it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from portmargin.cli._backtest import parse_day, render_backtest
from portmargin.cli._common import FormatOpt, OutputFormat, console, print_json
from portmargin.errors import InputError

if TYPE_CHECKING:
    from portmargin.backtest.calibrate import Calibration

__all__ = ["register", "render_calibration"]


def render_calibration(cal: Calibration, path: Path) -> None:
    """The evidence per factor and the values written, beside the shipped ones."""
    t = Table(
        title=(
            f"{cal.model} ({cal.grid}): {cal.horizon_days}-day log-move quantiles at "
            f"{1 - cal.confidence:.2%} / {cal.confidence:.2%}, as of {cal.as_of}"
        ),
        title_justify="left",
        header_style="bold",
    )
    for col in ("underlying", "factor", "long look-back", "EWMA", "stress window", "down", "up"):
        t.add_column(col, justify="left" if col in ("underlying", "factor") else "right")
    for e in cal.evidence:
        t.add_row(
            e.underlying,
            e.factor,
            f"{e.long.low:+.3f} / {e.long.high:+.3f} ({e.long.start}..)",
            f"{e.ewma.low:+.3f} / {e.ewma.high:+.3f} (σ {e.sigma_forecast:.4f})",
            f"{e.stress.low:+.3f} / {e.stress.high:+.3f} ({e.stress.start}..{e.stress.end})",
            f"{e.down:.1%}",
            f"{e.up:.1%}",
        )
    console.print(t)
    v = Table(title=f"written to {path}", title_justify="left", header_style="bold")
    for col in ("underlying", "key", "shipped", "calibrated"):
        v.add_column(col, justify="left" if col in ("underlying", "key") else "right")
    for und, keys in cal.values.items():
        for key, value in keys.items():
            v.add_row(und, key, f"{cal.shipped[und][key]:g}", f"{value:g}")
    console.print(v)


def register(app: typer.Typer) -> None:
    """Attach ``calibrate`` to ``app``."""

    @app.command("calibrate")
    def calibrate_cmd(
        model: Annotated[
            str,
            typer.Option("--model", help="Grid model to calibrate: span, span16, tims, deribit."),
        ],
        output: Annotated[
            Path,
            typer.Option("--output", "-o", help="Override TOML to write (for --params)."),
        ],
        confidence: Annotated[
            float, typer.Option("--confidence", help="Quantile of each tail (0.99 = 1 %/99 %).")
        ] = 0.99,
        horizon: Annotated[int, typer.Option("--horizon", help="Days of each move.")] = 2,
        as_of: Annotated[
            str | None,
            typer.Option("--as-of", help="Last day of data used (YYYY-MM-DD).", show_default=False),
        ] = None,
        lookback: Annotated[
            int, typer.Option("--lookback", help="Look-back in days (stress included).")
        ] = 3650,
        ewma_lambda: Annotated[float, typer.Option("--lambda", help="EWMA decay.")] = 0.94,
        method: Annotated[
            str,
            typer.Option("--method", help="Tails from: max (of the three), long, ewma or stress."),
        ] = "max",
        underlying: Annotated[
            list[str] | None, typer.Option("--underlying", help="Underlyings (repeat).")
        ] = None,
        history: Annotated[
            Path | None,
            typer.Option(
                "--history", help="Daily history CSV; default: shipped.", show_default=False
            ),
        ] = None,
        strategy: Annotated[
            str, typer.Option("--strategy", help="Strategy of the back-test beside it.")
        ] = "short-strangle",
        bt_from: Annotated[
            str | None,
            typer.Option(
                "--from",
                help="First back-test day (default: 2 years before as-of).",
                show_default=False,
            ),
        ] = None,
        bt_to: Annotated[
            str | None,
            typer.Option(
                "--to", help="Last back-test day (default: as-of − horizon).", show_default=False
            ),
        ] = None,
        no_backtest: Annotated[
            bool, typer.Option("--no-backtest", help="Only write the file.")
        ] = False,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Set a grid model's price ranges and vol shocks from history; back-test both."""
        from datetime import timedelta

        from portmargin.backtest.calibrate import METHODS, calibrate, write_calibration
        from portmargin.backtest.runner import run_backtest
        from portmargin.backtest.strategies import strategy as get_strategy
        from portmargin.models import load_model
        from portmargin.var.history import load_history

        if method not in METHODS:
            raise InputError(f"--method {method!r}: must be max, long, ewma or stress")
        hist = load_history(history)
        unds = tuple(u.strip().upper() for u in (underlying or ["BTC", "ETH"]))
        day = parse_day(as_of, "--as-of")
        if day is not None and not hist.has(day):
            raise InputError(f"--as-of {day}: outside the history ({hist.first} to {hist.last})")
        cal = calibrate(
            model,
            hist,
            confidence=confidence,
            horizon_days=horizon,
            as_of=day,
            lookback_days=lookback,
            ewma_lambda=ewma_lambda,
            underlyings=unds,
            method=METHODS[method],
        )
        write_calibration(cal, output, source=hist.source)
        result = None
        if not no_backtest:
            strat = get_strategy(strategy)
            end = parse_day(bt_to, "--to") or (cal.as_of - timedelta(days=horizon))
            start = parse_day(bt_from, "--from") or max(
                end - timedelta(days=730), hist.joint_start(unds[:1])
            )
            methods = [
                (model, load_model(model)),
                (f"{model} calibrated", load_model(model, params_file=str(output))),
            ]
            result = run_backtest(
                strat,
                unds[:1],
                methods,
                history=hist,
                start=start,
                end=end,
                horizon_days=horizon,
            )
        if fmt is OutputFormat.json:
            print_json(
                {
                    "calibration": cal.to_dict(),
                    "output": str(output),
                    "backtest": None if result is None else result.to_dict(),
                }
            )
            return
        render_calibration(cal, output)
        if result is not None:
            render_backtest(result)
