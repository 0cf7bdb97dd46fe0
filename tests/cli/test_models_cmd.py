"""CLI: `portmargin models` runs every shipped model side by side; `margin --explain`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portmargin.cli import main
from portmargin.models import available_models

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_models_json_lists_every_shipped_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", str(EXAMPLES / "five_line_book.json"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in data["models"]] == available_models()
    for m in data["models"]:
        assert m["initial_margin"] >= m["maintenance_margin"] >= 0
        assert m["initial_margin_usd"] >= 0


def test_models_table_with_market(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "models",
            str(EXAMPLES / "xyz_book.json"),
            "--market",
            str(EXAMPLES / "xyz_market.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    # Derive PMRM_2 is a method now (the one-pipeline issue): it is listed, not excluded
    for name in ("deribit", "span", "tims", "components", "derive"):
        assert name in out


@pytest.mark.parametrize("model", ["deribit", "span", "tims"])
def test_margin_explain_prints_components_with_meanings(
    model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["margin", str(EXAMPLES / "five_line_book.json"), "--model", model, "--explain"])
    assert code == 0
    out = capsys.readouterr().out
    assert "scanning_risk" in out
    assert "requirement" in out
    assert "worst weighted scenario loss" in out


def test_margin_without_portfolio_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["margin"]) == 2
    assert "PORTFOLIO" in capsys.readouterr().err
