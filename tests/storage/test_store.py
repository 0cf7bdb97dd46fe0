"""The store: migrations on open, atomic steps, idempotency by sequence number."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from portmargin.accounts import Account
from portmargin.errors import InputError
from portmargin.storage import Store, open_store


def _check(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"accounts", "balances", "positions", "events", "monitor_cursor"} <= tables
    a = Account("a", {"BTC-PERPETUAL": 1.0}, {"BTC": 2.0, "USDC": 5.0})
    store.save_accounts([a])
    with pytest.raises(InputError, match="already stored"):
        store.save_accounts([a])
    assert store.load_accounts() == [a]
    assert store.commit_step(feed="f", seq=1, market_time="t", events=[("x", "a", {"v": 1})])
    assert not store.commit_step(feed="f", seq=1, market_time="t", events=[("x", "a", {})])
    assert [e.payload for e in store.events()] == [{"v": 1}]
    cur = store.cursor("f")
    assert cur is not None
    assert cur.last_seq == 1


def test_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    _check(store)
    store.close()
    reopened = open_store(url)  # migrations are idempotent
    assert reopened.load_accounts()[0].account_id == "a"
    reopened.close()


def test_failed_step_writes_nothing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(TypeError):
        store.commit_step(feed="f", seq=1, market_time="t", events=[("x", "a", {"bad": {1, 2}})])
    assert store.events() == []
    assert store.cursor("f") is None


@pytest.mark.postgres
def test_postgres_store(postgres_url: str) -> None:
    store = open_store(postgres_url)
    _check(store)
    store.close()
