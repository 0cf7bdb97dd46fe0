"""Fixtures of the monitor tests: a small slice of the example accounts and the crash data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRASH = "deribit_options_2026-02-04_05"


@pytest.fixture(scope="session")
def crash_dir(shared_data: Path) -> Path:
    path = shared_data / CRASH
    if not path.is_dir():
        pytest.skip(f"{CRASH} is not present")
    return path


@pytest.fixture(scope="session")
def small_accounts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = json.loads((REPO / "examples" / "accounts.json").read_text())
    doc["accounts"] = doc["accounts"][:30]
    out = tmp_path_factory.mktemp("accts") / "accounts.json"
    out.write_text(json.dumps(doc))
    return out
