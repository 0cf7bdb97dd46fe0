"""docs/service.md's first request runs as written, with curl, against a served app."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import REPO, served


def _registered(command: str) -> bool:
    from portmargin.cli import app

    return any(getattr(g, "name", None) == command for g in app.registered_groups) or any(
        c.name == command for c in app.registered_commands
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_example_runs(tmp_path: Path) -> None:
    if not _registered("keys"):
        pytest.skip("`portmargin keys` is not registered in portmargin.cli yet")
    text = (REPO / "docs" / "service.md").read_text()
    block = re.search(r"<!-- service-example.*?-->\n```bash\n(.*?)```", text, re.S)
    assert block is not None
    with served(tmp_path) as (base, desk, _keys):
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["DB"] = desk.settings.db_url
        env["URL"] = base
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.group(1)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["model"] == "deribit" and doc["initial_margin"] > 0


def test_keys_create_prints_the_key_last(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from portmargin.cli import _keys

    app = typer.Typer()
    _keys.register(app)
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = CliRunner().invoke(app, ["keys", "create", "--role", "admin", "--db", db])
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert re.fullmatch(r"pm_[0-9a-f]{12}_[A-Za-z0-9_\-]{43}", last)
    bad = CliRunner().invoke(app, ["keys", "create", "--role", "trader", "--db", db])
    assert bad.exit_code != 0
