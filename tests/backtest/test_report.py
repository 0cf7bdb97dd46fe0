"""The report's generated blocks are replaced in place; the prose around them is kept."""

from __future__ import annotations

from pathlib import Path

from portmargin.backtest.report import CALIBRATED, calibrated_file, replace_blocks
from portmargin.models.config import load_model_params


def test_replace_blocks_keeps_the_prose() -> None:
    text = "intro\n<!-- generated:a -->\nold\n<!-- /generated:a -->\nmiddle\n<!-- generated:b -->\nkeep\n<!-- /generated:b -->\n"
    out = replace_blocks(text, {"a": "new\nlines\n"})
    assert (
        out
        == "intro\n<!-- generated:a -->\nnew\nlines\n<!-- /generated:a -->\nmiddle\n<!-- generated:b -->\nkeep\n<!-- /generated:b -->\n"
    )


def test_the_calibrated_files_load_over_their_models() -> None:
    for model in CALIBRATED:
        path = calibrated_file(model)
        assert path.is_file()
        params = load_model_params(model, overrides=path)
        assert params.overrides == (str(path),)
        # calibrated at 99 % of 2-day moves with stress: wider than the 2026.1 BTC range
        assert (
            params.underlying("BTC").price_range
            > load_model_params(f"{model}-2026.1").underlying("BTC").price_range
        )


def test_the_report_documents_every_block() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "backtest.md").read_text(encoding="utf-8")
    for name in ("stamp", "main", "variants", "crash", "calibration", "calibrated-backtest"):
        assert f"<!-- generated:{name} -->" in doc and f"<!-- /generated:{name} -->" in doc
