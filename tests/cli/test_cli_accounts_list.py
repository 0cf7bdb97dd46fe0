"""`portmargin accounts list` and `accounts show` before and after the monitor margins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portmargin.cli import main

ACCOUNTS = Path(__file__).resolve().parents[2] / "examples" / "accounts.json"


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_unmargined_accounts_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _url(tmp_path / "m.db")
    assert main(["accounts", "load", str(ACCOUNTS), "--db", url]) == 0
    capsys.readouterr()
    assert main(["accounts", "show", "acct-000", "--db", url]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "not yet margined"
    assert doc["latest_margin"] is None
    assert main(["accounts", "list", "--db", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["accounts"]
    assert len(rows) == len(json.loads(ACCOUNTS.read_text())["accounts"])
    assert {r["status"] for r in rows} == {"unmargined"}


def test_list_filters_by_status_and_ranks_by_the_worst_pool_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(ACCOUNTS), "--db", url, "--headless"]
    assert main([*args, "--max-events", "30"]) == 0  # the crash-day replay, into the morning
    capsys.readouterr()
    assert main(["accounts", "list", "--db", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["accounts"]
    ratios = [r["margin_ratio"] for r in rows if r["margin_ratio"] is not None]
    assert ratios == sorted(ratios, reverse=True)
    assert all(r["status"] != "unmargined" for r in rows)
    for status in ("margin_call", "healthy"):
        assert main(["accounts", "list", "--db", url, "--status", status, "--format", "json"]) == 0
        picked = json.loads(capsys.readouterr().out)["accounts"]
        assert picked == [r for r in rows if r["status"] == status]
    assert main(["accounts", "list", "--db", url, "--sort", "excess", "--format", "json"]) == 0
    excess = [r["excess"] for r in json.loads(capsys.readouterr().out)["accounts"]]
    assert excess == sorted(excess)
    assert main(["accounts", "list", "--db", url, "--status", "broke"]) == 2
    assert "--status 'broke'" in capsys.readouterr().err
