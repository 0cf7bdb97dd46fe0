"""CLI: the JSON contract of `portmargin margin`, the demo, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from portmargin.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONTRACT = {
    "model",
    "currency",
    "initial_margin",
    "maintenance_margin",
    "equity",
    "initial_excess",
    "maintenance_excess",
    "components",
    "worst_scenario",
    "scenarios",
    "positions",
    "by_underlying",
}


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main([*args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("model", ["deribit", "span16"])
@pytest.mark.parametrize(
    "book",
    sorted(
        p.name
        for p in EXAMPLES.glob("*.json")
        if "market" not in p.name and "accounts" not in p.name and "xyz" not in p.name
    ),
)
def test_margin_json_contract(capsys: pytest.CaptureFixture[str], model: str, book: str) -> None:
    doc = _run_json(capsys, "margin", str(EXAMPLES / book), "--model", model)
    assert set(doc) >= CONTRACT
    assert doc["model"] == model
    im, mm, eq = doc["initial_margin"], doc["maintenance_margin"], doc["equity"]
    assert isinstance(im, float) and isinstance(mm, float) and isinstance(eq, float)
    assert im >= mm >= 0
    assert doc["initial_excess"] == pytest.approx(eq - im)
    ws = doc["worst_scenario"]
    assert isinstance(ws, dict) and {"price_move", "vol_shock", "pnl"} <= set(ws)
    scenarios = doc["scenarios"]
    assert isinstance(scenarios, list) and all(
        {"price_move", "vol_shock", "pnl"} <= set(s) for s in scenarios
    )
    positions = doc["positions"]
    assert isinstance(positions, list) and all(
        {"instrument", "quantity", "mark_value"} <= set(p) for p in positions
    )


def test_linear_product_market(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _run_json(
        capsys,
        "margin",
        str(EXAMPLES / "xyz_book.json"),
        "--market",
        str(EXAMPLES / "xyz_market.json"),
        "--model",
        "span16",
    )
    assert doc["currency"] == "USD"
    raw = doc["positions"]
    assert isinstance(raw, list)
    positions = {p["instrument"]: p for p in raw}
    # mark_value = quantity × multiplier × mark: −2 × 100 × 0.35.
    assert positions["XYZ-20MAR26-80-P"]["mark_value"] == pytest.approx(-70.0)


def test_params_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = str(EXAMPLES / "short_put_spread.json")
    base = _run_json(capsys, "margin", book, "--model", "span16")
    over = tmp_path / "wide.toml"
    over.write_text("[underlyings.BTC]\nprice_range = 0.30\n")
    wide = _run_json(capsys, "margin", book, "--model", "span16", "--params", str(over))
    assert wide["initial_margin"] > base["initial_margin"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["margin", "nope.json"], "file not found"),
        (["margin", "EXAMPLES/short_put_spread.json", "--model", "nosuch"], "unknown model"),
        (["margin", "EXAMPLES/short_put_spread.json", "--market", "nope.json"], "file not found"),
    ],
)
def test_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    argv = [a.replace("EXAMPLES", str(EXAMPLES)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_param_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    over = tmp_path / "bad.toml"
    over.write_text("[underlyings.BTC]\nprice_range = -1\n")
    assert main(["margin", str(EXAMPLES / "short_put_spread.json"), "--params", str(over)]) == 2
    assert "underlyings.BTC.price_range" in capsys.readouterr().err


def test_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Short put spread" in out
    assert "Five-line" in out


def test_console_script_installed() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "portmargin.cli",
            "margin",
            str(EXAMPLES / "iron_condor.json"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["currency"] == "BTC"


def test_margin_matrix_prints_the_grid_with_the_binding_cell(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chart = tmp_path / "m.png"
    assert (
        main(["margin", str(EXAMPLES / "iron_condor.json"), "--matrix", "--plot", str(chart)]) == 0
    )
    out = capsys.readouterr().out
    assert "price move × vol shock" in out
    assert "*-" in out  # the binding cell is starred: a loss
    assert chart.stat().st_size > 1000
    assert main(["margin", str(EXAMPLES / "iron_condor.json"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (grid,) = doc["risk_matrix"].values()
    assert grid["binding"]["pnl"] == pytest.approx(doc["worst_scenario"]["pnl"])
