"""``portmargin backtest`` and ``portmargin calibrate``: the JSON contract, charts, errors."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import typer

import portmargin.cli as cli
from portmargin.backtest.market import day_market, day_state
from portmargin.backtest.runner import run_backtest
from portmargin.backtest.strategies import STRATEGIES, build_book, strategy
from portmargin.cli import _backtest, _calibrate
from portmargin.errors import InputError
from portmargin.methods import load_method
from portmargin.var.history import shipped_history

CONTRACT = {
    "model",
    "days",
    "exceedances",
    "coverage",
    "kupiec_pvalue",
    "christoffersen_pvalue",
    "zone",
    "mean_margin",
    "peak_to_trough",
}


@pytest.fixture(autouse=True)
def _app(monkeypatch: pytest.MonkeyPatch) -> None:
    """``portmargin.cli.main`` on an app holding only the two commands (the global app is not
    touched: registering the commands in ``portmargin.cli`` is the CLI's own business)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    _backtest.register(app)
    _calibrate.register(app)
    monkeypatch.setattr(cli, "app", app)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "backtest",
        "--strategy", "short-straddle",
        "--underlying", "BTC",
        "--model", "span16",
        "--model", "var-hs",
        "--from", "2025-01-01",
        "--to", "2025-01-20",
        "--horizon", "2",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert {"strategy", "underlying", "horizon_days", "from", "to", "models"} <= set(doc)
    assert (doc["strategy"], doc["underlying"], doc["horizon_days"]) == ("short-straddle", "BTC", 2)
    assert (doc["from"], doc["to"]) == ("2025-01-01", "2025-01-20")
    assert [m["model"] for m in doc["models"]] == ["span16", "var-hs"]
    for m in doc["models"]:
        assert set(m) >= CONTRACT
        assert m["days"] == 20
        assert m["coverage"] == pytest.approx(1 - m["exceedances"] / m["days"])
        assert m["zone"] in ("green", "yellow", "red")
        assert 0.0 <= m["kupiec_pvalue"] <= 1.0
        assert m["confidence"] == 0.99


def test_table_and_charts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for suffix in (".png", ".html"):
        chart = tmp_path / f"bt{suffix}"
        code, out, _ = run(
            capsys,
            "backtest",
            "--strategy", "put-spread",
            "--model", "deribit",
            "--from", "2024-03-01",
            "--to", "2024-03-10",
            "--plot", str(chart),
        )  # fmt: skip
        assert code == 0
        assert "put-spread on BTC" in out and "deribit" in out
        assert chart.stat().st_size > 1000
    assert chart.read_text(encoding="utf-8").startswith("<!doctype html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "strangle"], "--strategy 'strangle': unknown (known: short-straddle"),
        (
            ["--strategy", "short-put", "--from", "2024-13-01"],
            "--from '2024-13-01': must be a date",
        ),
        (["--strategy", "short-put", "--tenor", "2", "--horizon", "2"], "--tenor 2: must exceed"),
        (
            ["--strategy", "short-put", "--from", "2019-01-01"],
            "--from 2019-01-01: before the first",
        ),
        (["--strategy", "short-put", "--to", "2026-03-16"], "after the history's last day"),
        (["--strategy", "short-put", "--model", "nope"], "unknown model 'nope'"),
        (["--strategy", "short-put", "--plot", "x.pdf"], "x.pdf: --plot needs a .png or .html"),
        (["--strategy", "short-put", "--underlying", "SOL"], "no underlying 'SOL'"),
        (
            ["--strategy", "short-put", "--requirement", "vm"],
            "--requirement 'vm': must be im or mm",
        ),
    ],
)
def test_one_line_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run(capsys, "backtest", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_user_history_errors_name_row_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "h.csv"
    bad.write_text("date,btc_close,btc_dvol\n2024-01-01,100,50\n2024-01-02,abc,50\n")
    code, _, err = run(capsys, "backtest", "--strategy", "short-put", "--history", str(bad))
    assert code == 2
    assert f"{bad}: row 3: btc_close: must be a number, got 'abc'" in err


def test_every_strategy_builds_and_margins() -> None:
    h = shipped_history()
    state = day_state(h, date(2025, 6, 1), ["BTC", "ETH"])
    deribit = load_method("deribit")
    for name, strat in STRATEGIES.items():
        book = build_book(strat, state, ("BTC", "ETH"), tenor_days=30, size=2.0, horizon_days=1)
        assert book.positions, name
        market = day_market(state, [n for n in book.positions if "PERPETUAL" not in n])
        from portmargin.portfolio import Portfolio

        res = deribit.margin(Portfolio.of(book.positions, book.cash), market)
        assert np.isfinite(res.initial_margin) and res.initial_margin >= 0.0
    hedged = build_book(
        strategy("delta-hedged-short-gamma"), state, ("BTC",), tenor_days=30, size=1.0,
        horizon_days=1,
    )  # fmt: skip
    assert abs(hedged.positions["BTC-PERPETUAL"]) < 0.2  # an ATM straddle is nearly flat
    assert build_book(strategy("covered-call"), state, ("BTC",), tenor_days=30, size=1.0,
                      horizon_days=1).cash == {"BTC": 1.0}  # fmt: skip


def test_random_books_are_seeded() -> None:
    h = shipped_history()
    state = day_state(h, date(2025, 6, 1), ["BTC"])
    a = build_book(strategy("random"), state, ("BTC",), tenor_days=30, size=1, horizon_days=2)
    b = build_book(strategy("random"), state, ("BTC",), tenor_days=30, size=1, horizon_days=2)
    c = build_book(strategy("random"), state, ("BTC",), tenor_days=30, size=1, horizon_days=2,
                   seed=1)  # fmt: skip
    assert a == b and a != c


def test_non_overlapping_steps_and_mm() -> None:
    h = shipped_history()
    res = run_backtest(
        strategy("short-strangle"),
        ["ETH"],
        [("span16", load_method("span16"))],
        history=h,
        start=date(2024, 1, 1),
        end=date(2024, 1, 31),
        horizon_days=2,
        step_days=2,
        requirement="mm",
    )
    m = res.models[0]
    assert m.days[:3] == (date(2024, 1, 1), date(2024, 1, 3), date(2024, 1, 5))
    assert m.stats.days == 16
    with pytest.raises(InputError, match="--step 0"):
        run_backtest(strategy("short-put"), ["BTC"], [], history=h, step_days=0)


def test_calibrate_writes_a_params_file_and_backtests_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_file = tmp_path / "span16-cal.toml"
    code, out, _ = run(
        capsys,
        "calibrate",
        "--model", "span16",
        "--output", str(out_file),
        "--as-of", "2025-12-31",
        "--from", "2025-12-01",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    cal = doc["calibration"]
    assert cal["model"] == "span16" and cal["horizon_days"] == 2
    assert set(cal["calibrated"]) == {"BTC", "ETH"}
    assert set(cal["calibrated"]["BTC"]) == {"price_range", "vol_up", "vol_down"}
    assert [m["model"] for m in doc["backtest"]["models"]] == ["span16", "span16 calibrated"]
    from portmargin.models.config import load_model_params

    params = load_model_params("span16", overrides=out_file)
    assert params.underlying("BTC").price_range == cal["calibrated"]["BTC"]["price_range"]
    ev = {(e["underlying"], e["factor"]): e for e in cal["evidence"]}
    btc = ev[("BTC", "spot")]
    tails = [btc["long_lookback"], btc["ewma"], btc["stress"]]
    assert btc["down"] == pytest.approx(-np.expm1(min(t["low"] for t in tails)))
    assert params.underlying("BTC").price_range >= max(btc["down"], btc["up"])
