"""Shared fixtures: the optional real-data folder ../shared/data next to the repository.

Fixtures used by one test folder live here too: mypy sees every ``conftest.py`` as the same
module, so the suite keeps a single one.

Hypothesis profiles: ``fast`` (the default, what ``make test`` runs) and ``thorough`` (the
fuzz suite's long run: ``pytest -m fuzz``, 10,000 cases per property unless
``PORTMARGIN_FUZZ_EXAMPLES`` says otherwise). ``PORTMARGIN_HYPOTHESIS_PROFILE`` picks the
profile of every test that does not name its own; tests take their number of cases from the
profile rather than an inline ``max_examples``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CRASH = "deribit_options_2026-02-04_05"

settings.register_profile(  # make test: the same examples on every run (CI lands or not
    "fast",  # on the code, not on the draw); the thorough profile explores at random
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=int(os.environ.get("PORTMARGIN_FUZZ_EXAMPLES", "10000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("PORTMARGIN_HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test cleanly when it is absent (a fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def crash_dir(shared_data: Path) -> Path:
    """The two Deribit chains across the 2026-02-05 crash (monitor replay tests)."""
    path = shared_data / CRASH
    if not path.is_dir():
        pytest.skip(f"{CRASH} is not present")
    return path


@pytest.fixture(scope="session")
def small_accounts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 30 accounts of examples/accounts.json, as a file (monitor tests)."""
    doc = json.loads((REPO_ROOT / "examples" / "accounts.json").read_text())
    doc["accounts"] = doc["accounts"][:30]
    out = tmp_path_factory.mktemp("accts") / "accounts.json"
    out.write_text(json.dumps(doc))
    return out


@pytest.fixture
def postgres_url() -> str:
    """``PORTMARGIN_TEST_PG_URL`` with an emptied ``public`` schema; skips if unset/unreachable."""
    url = os.environ.get("PORTMARGIN_TEST_PG_URL")
    if not url:
        pytest.skip("PORTMARGIN_TEST_PG_URL is not set")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    finally:
        engine.dispose()
    return url
