"""Every ```python block of README.md and docs/**/*.md runs as written.

Each block runs in a fresh namespace (blocks of one page share none of their names) with an
empty temporary directory as the working directory and the repository's ``examples/``
folder beside it as ``examples``. A block that reads the optional real data next to the
repository (``../shared/...``) runs from the repository's root, and is skipped when that
folder is absent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHARED = ROOT.parent / "shared"
_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)

# Blocks of pages owned elsewhere that do not run as written yet; the XPASS tells when.
KNOWN_BROKEN: dict[str, str] = {}


def _blocks() -> list[pytest.ParameterSet]:
    out = []
    for page in PAGES:
        for i, match in enumerate(_BLOCK.finditer(page.read_text(encoding="utf-8")), start=1):
            name = f"{page.relative_to(ROOT)}#{i}"
            marks = []
            if name in KNOWN_BROKEN:
                marks.append(pytest.mark.xfail(reason=KNOWN_BROKEN[name], strict=False))
            out.append(pytest.param(name, match.group(1), id=name, marks=marks))
    return out


def test_there_are_snippets() -> None:
    assert any(p.values[0] == "README.md#1" for p in _blocks())


@pytest.mark.parametrize(("name", "code"), _blocks())
def test_snippet_runs(
    name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "../shared" in code:
        if not SHARED.is_dir():
            pytest.skip("needs ../shared next to the repository")
        monkeypatch.chdir(ROOT)
    else:
        (tmp_path / "examples").symlink_to(ROOT / "examples")
        monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(os.environ, "PORTMARGIN_DOCS_TEST", "1")
    exec(compile(code, name, "exec"), {"__name__": "__docs__"})
