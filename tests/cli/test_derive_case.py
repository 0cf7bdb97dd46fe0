"""CLI: `portmargin margin --derive-case FILE --format json` on every published case file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portmargin.cli import main

FIELDS = {
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


def _cases(shared_data: Path) -> list[Path]:
    folder = shared_data / "derive_pmrm2_cases"
    if not folder.is_dir():
        pytest.skip("no Derive case files")
    return sorted(folder.glob("*.json"))


def test_every_case_file_matches_its_result(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _cases(shared_data)
    assert cases
    failures = []
    for path in cases:
        # Some published cases use skew scenarios the on-chain setter would reject.
        args = ["margin", "--derive-case", str(path), "--format", "json", "--allow-offchain-skew"]
        assert main(args) == 0, path.name
        data = json.loads(capsys.readouterr().out)
        assert set(data) >= FIELDS
        assert data["model"] == "derive"
        expected = json.loads(path.read_text(encoding="utf-8"))["Result"]
        for key, want in (
            ("maintenance_excess", expected["MM"]),
            ("initial_excess", expected["IM"]),
        ):
            got = data[key]
            if got != pytest.approx(float(want), rel=1e-6, abs=1e-6):
                failures.append(f"{path.name}: {key} {got} != {want}")
    assert not failures, "\n".join(failures)


def test_derive_case_table(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _cases(shared_data)[0]
    assert main(["margin", "--derive-case", str(path)]) == 0
    assert "maintenance_excess" in capsys.readouterr().out
