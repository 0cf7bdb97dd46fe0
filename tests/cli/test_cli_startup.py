"""The command line starts light: --help and --version, and the shared defaults in step."""

from __future__ import annotations

import subprocess
import sys

import pytest

from portmargin.cli import main

HEAVY = ("numpy", "scipy", "sqlalchemy", "alembic", "matplotlib", "pyarrow", "psycopg", "polars")


def _loaded_after(args: list[str]) -> list[str]:
    code = (
        f"import sys\nfrom portmargin.cli import main\ncode = main({args!r})\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1:]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import portmargin

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"portmargin {portmargin.__version__}"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "margin", "rules", "compare", "models", "whatif", "batch", "monitor"):
        assert name in out


def test_help_imports_no_heavy_dependency() -> None:
    assert _loaded_after(["--help"]) == ["[]"]


def test_shared_defaults_match_the_engine() -> None:
    from portmargin.accounts import DEFAULT_MIN_PM_EQUITY_USD
    from portmargin.cli import _common, _rules, _whatif
    from portmargin.compare import DEFAULT_MIN_EQUITY_USD
    from portmargin.storage import DEFAULT_DB_URL

    assert _common.DEFAULT_DB_URL == DEFAULT_DB_URL
    assert _whatif._DEFAULT_MIN_EQUITY == DEFAULT_MIN_PM_EQUITY_USD
    assert _rules._DEFAULT_MIN_EQUITY == DEFAULT_MIN_EQUITY_USD
