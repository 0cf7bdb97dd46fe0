"""Ticks: the incremental session and the cached book shapes give a full recompute's figures."""

from __future__ import annotations

import os

import numpy as np
import pytest
from batch_books import random_books

import portmargin as pm
from portmargin.batch import AccountBook, BatchResult, MarginSession
from portmargin.market import MarketSnapshot, shift
from portmargin.pricing import use_kernel
from portmargin.pricing._compiled import threads

MARKET = pm.demo_market()
MODELS = [("deribit", False), ("deribit", True), ("span16", None)]
FIGURES = (
    "present",
    "initial_margin",
    "maintenance_margin",
    "equity",
    "binding_pair",
    "binding_scenario",
    "binding_pnl",
)


def _same(a: BatchResult, b: BatchResult) -> None:
    for name in FIGURES:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def _book(session: MarginSession) -> AccountBook:
    positions, cash = random_books(MARKET, 150, seed=11)
    return session.book_from_positions(positions, cash)


@pytest.mark.parametrize(("name", "cross"), MODELS)
@pytest.mark.parametrize("und", ["BTC", "ETH"])
def test_incremental_session_is_the_full_session(name: str, cross: bool | None, und: str) -> None:
    model = pm.load_model(name, cross=cross)
    session = MarginSession(MARKET, model)
    moved = shift(MARKET, spot={und: 0.95}, vol={und: 1.1})
    fast = session.with_market(moved, moved={und})
    full = MarginSession(moved, model, session.instruments)
    for f in ("weights", "_stacked", "_haircut", "_tail_w", "indicators", "short_indicators"):
        assert np.array_equal(getattr(fast, f), getattr(full, f)), f
    for a, b in zip(fast._pair_w, full._pair_w, strict=True):
        assert np.array_equal(a, b)
    for x, y in zip(fast._cash_w, full._cash_w, strict=True):
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert np.array_equal(x, y)
    assert [p.rate for p in fast.pairs] == [p.rate for p in full.pairs]
    assert not fast.weights.flags.writeable


@pytest.mark.parametrize(("name", "cross"), MODELS)
def test_repeated_ticks_reuse_the_book_and_equal_full_recomputes(
    name: str, cross: bool | None
) -> None:
    model = pm.load_model(name, cross=cross)
    session = MarginSession(MARKET, model)
    book = _book(session)
    result = session.margin(book, chunk=40)
    market: MarketSnapshot = MARKET
    for step, (und, factor) in enumerate([("BTC", 0.97), ("BTC", 1.02), ("ETH", 0.9)]):
        market = shift(market, spot={und: factor})
        session = session.with_market(market, moved={und})
        result, idx = session.remargin(book, result, moved={und})
        assert idx.size > 0
        _same(result, MarginSession(market, model, session.instruments).margin(book))
        assert len(book._memo) == (1 if step < 2 else 2)  # one entry per (layout, moved)


def test_book_memo_is_not_pickled() -> None:
    import pickle

    session = MarginSession(MARKET, pm.load_model("deribit"))
    book = _book(session)
    session.with_market(shift(MARKET, spot={"BTC": 0.9}), moved={"BTC"}).remargin(
        book, session.margin(book), moved={"BTC"}
    )
    assert book._memo
    again = pickle.loads(pickle.dumps(book))
    assert not again._memo and again.accounts == book.accounts


def test_session_round_trips_through_pickle() -> None:
    import cloudpickle  # type: ignore[import-untyped]  # what Dask falls back to

    session = MarginSession(MARKET, pm.load_model("deribit", cross=True))
    again = cloudpickle.loads(cloudpickle.dumps(session))
    assert np.array_equal(again.weights, session.weights)
    book = _book(session)
    _same(again.margin(again.book(list(book.accounts), book.quantities)), session.margin(book))


@pytest.mark.parametrize(("name", "cross"), MODELS)
def test_compiled_kernels_equal_the_reference_path(name: str, cross: bool | None) -> None:
    model = pm.load_model(name, cross=cross)
    with use_kernel("numpy"):
        ref_session = MarginSession(MARKET, model)
        book = _book(ref_session)
        ref = ref_session.margin(book, chunk=60)
    with use_kernel("numba"):
        got = MarginSession(MARKET, model).margin(book, chunk=60)
    scale = np.maximum(np.abs(ref.initial_margin), 1.0)
    assert np.all(np.abs(got.initial_margin - ref.initial_margin) <= 1e-12 * scale)
    assert np.all(np.abs(got.equity - ref.equity) <= 1e-12 * np.maximum(np.abs(ref.equity), 1.0))
    assert np.array_equal(got.present, ref.present)


def test_chunk_threads_give_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    session = MarginSession(MARKET, pm.load_model("deribit"))
    book = _book(session)
    monkeypatch.setenv("PORTMARGIN_THREADS", "1")
    one = session.margin(book, chunk=20)
    for n in ("2", "3"):
        monkeypatch.setenv("PORTMARGIN_THREADS", n)
        _same(session.margin(book, chunk=20), one)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_chunk_threads_setting_is_checked(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PORTMARGIN_THREADS", value)
    with pytest.raises(ValueError, match="PORTMARGIN_THREADS"):
        threads()


def test_chunk_threads_default_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTMARGIN_THREADS", raising=False)
    assert 1 <= threads() <= (os.cpu_count() or 1)
