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


# -- migration 0003: approval, account errors, feed positions ----------------------------------


def _at_revision(url: str, revision: str) -> None:
    """A database migrated only up to ``revision`` (an older portmargin's schema)."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("portmargin.storage") / "migrations")
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


def test_pm_approved_is_stored_and_loaded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url) as store:
        store.save_accounts(
            [Account("yes", {}, {"USDC": 1.0}), Account("no", {}, {"USDC": 1.0}, False)]
        )
    with open_store(url) as store:
        got = {a.account_id: a.pm_approved for a in store.load_accounts()}
        assert got == {"yes": True, "no": False}
        # --replace overwrites the flag with the file's
        store.save_accounts([Account("no", {}, {"USDC": 2.0}, True)], replace=True)
        assert all(a.pm_approved for a in store.load_accounts())


def test_migration_0003_keeps_old_rows_approved(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    _at_revision(url, "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (id, status, method) VALUES ('a', 'healthy', 'x')"))
        conn.execute(text("INSERT INTO balances VALUES ('a', 'BTC', 1.5)"))
        conn.execute(text("INSERT INTO monitor_cursor VALUES ('f', 7, '2026-02-05T00:00:00Z', 0)"))
    engine.dispose()
    with open_store(url) as store:  # migrates 0002 -> head
        assert store.load_accounts() == [Account("a", {}, {"BTC": 1.5}, True)]
        assert store.account_errors() == {}
        cur = store.cursor("f")
        assert cur is not None
        assert (cur.last_seq, cur.position) == (7, None)
        # an old cursor without a position: the sequence number decides
        assert not store.commit_step(feed="f", seq=7, market_time="t", position=3)
        assert store.commit_step(feed="f", seq=8, market_time="t", position=3)


def test_account_errors_are_set_and_cleared_in_the_step(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        store.save_accounts([Account("a"), Account("b")])
        store.commit_step(feed="f", seq=1, market_time="t", errors={"a": "expired, no price"})
        assert store.account_errors() == {"a": "expired, no price"}
        store.commit_step(feed="f", seq=2, market_time="t", errors={"a": None, "b": "nan"})
        assert store.account_errors() == {"b": "nan"}


def test_positions_decide_and_anchored_rejections_follow_the_step(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert store.commit_step(
            feed="f", seq=5, position=1, market_time="t", events=[("x", None, {"n": 0})]
        )
        # a line without a usable seq: written at the cursor's seq, after its events
        assert store.commit_step(
            feed="f",
            seq=5,
            position=2,
            market_time="t",
            events=[("rejected", None, {"n": 1})],
            anchored=True,
        )
        assert not store.commit_step(  # that line again (a restart): already committed
            feed="f",
            seq=5,
            position=2,
            market_time="t",
            events=[("rejected", None, {"n": 1})],
            anchored=True,
        )
        assert store.commit_step(
            feed="f", seq=6, position=3, market_time="t", events=[("x", None, {"n": 2})]
        )
        assert [(e.seq, e.ordinal, e.payload["n"]) for e in store.events()] == [
            (5, 0, 0),
            (5, 1, 1),
            (6, 0, 2),
        ]
        cur = store.cursor("f")
        assert cur is not None
        assert (cur.last_seq, cur.position) == (6, 3)
        with pytest.raises(InputError, match="not above the cursor"):
            store.commit_step(feed="f", seq=4, position=9, market_time="t")
