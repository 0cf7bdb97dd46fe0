"""CLI: `portmargin rules`, `portmargin compare` (with the gate and the chart) and the demo tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import portmargin as pm
from portmargin.cli import main
from portmargin.compare import compare
from portmargin.examples import seed_portfolios

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MARGIN_FIELDS = {
    "initial_margin",
    "maintenance_margin",
    "equity",
    "initial_excess",
    "maintenance_excess",
}


def test_rules_json_has_margin_fields_strategies_and_greedy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", str(EXAMPLES / "iron_condor.json"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= MARGIN_FIELDS
    assert "strategies" in doc
    assert doc["greedy_initial_margin"] >= doc["initial_margin"] - 1e-12


@pytest.mark.parametrize(
    "book",
    ["short_put_spread", "iron_condor", "long_calendar", "hedged_straddle", "five_line_book"],
)
def test_compare_json(capsys: pytest.CaptureFixture[str], book: str) -> None:
    assert main(["compare", str(EXAMPLES / f"{book}.json"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for regime in ("standard", "strategy", "portfolio"):
        assert {"initial_margin", "maintenance_margin"} <= set(doc[regime])
    s, p = doc["strategy"]["initial_margin_usd"], doc["portfolio"]["initial_margin_usd"]
    assert doc["efficiency_gain"] == pytest.approx(1 - p / s if s > 0 else 0.0)
    # The demo books hold little equity: below the default gate they fall back to strategy rules.
    assert doc["qualification"]["qualified"] is False
    assert doc["qualification"]["applied_regime"] == "strategy"


def test_gate_can_be_lowered(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "compare",
                str(EXAMPLES / "five_line_book.json"),
                "--format",
                "json",
                "--min-equity",
                "1000",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["qualification"]["applied_regime"] == "portfolio"


def test_optimal_never_worse_than_standard_per_leg() -> None:
    market = pm.demo_market()
    for _, book in seed_portfolios():
        c = compare(book, market)
        assert c.strategy.initial_margin_usd <= c.standard.initial_margin_usd * (1 + 1e-12) + 1e-9


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_compare_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    out = tmp_path / f"chart{suffix}"
    assert main(["compare", str(EXAMPLES / "iron_condor.json"), "--plot", str(out)]) == 0
    assert out.stat().st_size > 1000
    assert "chart written" in capsys.readouterr().out


def test_bad_plot_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["compare", str(EXAMPLES / "iron_condor.json"), "--plot", str(tmp_path / "x.gif")])
        == 2
    )
    assert ".png or .html" in capsys.readouterr().err


def test_demo_prints_the_strategy_and_book_tables(capsys: pytest.CaptureFixture[str]) -> None:
    # The demo speaks to a risk manager: the tables say what they show, not where they came from.
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Four strategies on BTC at 70,000" in out
    assert "Five-line BTC/ETH book" in out
    assert "seed" not in out.replace("docs/seed-comparison.md", "").lower()


def test_rules_time_limit_is_checked_and_zero_is_exact(
    capsys: pytest.CaptureFixture[str],
) -> None:
    book = str(EXAMPLES / "iron_condor.json")
    for bad in ("-1", "nan", "inf"):
        assert main(["rules", book, "--time-limit", bad]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--time-limit" in err[0] and "Traceback" not in err[0]
    assert main(["rules", book, "--time-limit", "0", "--format", "json"]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert exact["optimality_gap"] == 0.0
    assert main(["rules", book, "--format", "json"]) == 0  # the default limit: a small book
    limited = json.loads(capsys.readouterr().out)  # is solved well within it
    assert limited["initial_margin"] == pytest.approx(exact["initial_margin"], rel=1e-12)


def test_methods_and_accounts_bound_the_pairing_search() -> None:
    from portmargin.methods import RulesMethod, load_method
    from portmargin.rules import SEARCH_TIME_LIMIT

    method = load_method("strategy")
    assert isinstance(method, RulesMethod)
    assert method.time_limit == SEARCH_TIME_LIMIT > 0
