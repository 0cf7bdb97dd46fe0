"""Every shipped model on every example portfolio and on real Deribit chains."""

from __future__ import annotations

from pathlib import Path

import pytest

import portmargin as pm
from portmargin.models import available_models, load_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _is_portfolio(path: Path) -> bool:
    # examples/ also holds market files and multi-account files: keep what loads as a book.
    try:
        pm.load_portfolio(path)
    except (pm.PortmarginError, ValueError, OSError):
        return False
    return True


BOOKS = sorted(
    p
    for p in EXAMPLES.iterdir()
    if p.suffix in (".json", ".yaml", ".csv") and "market" not in p.name and _is_portfolio(p)
)


def _market_for(book: Path) -> pm.MarketSnapshot:
    if book.name.startswith("xyz"):
        return pm.load_market(EXAMPLES / "xyz_market.json")
    return pm.demo_market()


@pytest.mark.parametrize("model", available_models())
@pytest.mark.parametrize("book", BOOKS, ids=lambda p: p.name)
def test_every_model_on_every_example(model: str, book: Path) -> None:
    r = load_model(model).margin(pm.load_portfolio(book), _market_for(book))
    assert r.maintenance_margin >= 0.0
    assert r.initial_margin >= r.maintenance_margin
    d = r.to_dict()
    for key in ("model", "currency", "initial_margin", "maintenance_margin", "equity"):
        assert key in d
    assert set(d["worst_scenario"]) >= {"price_move", "vol_shock", "pnl"}
    for u in r.by_underlying:
        assert u.requirement == pytest.approx(sum(u.components.values()), abs=1e-9)


@pytest.mark.parametrize(
    "snapshot",
    [
        "deribit_options_snapshot_20260204T213308Z.csv",
        "deribit_options_snapshot_20260205T212937Z.csv",
    ],
)
def test_every_model_on_real_deribit_chains(shared_data: Path, snapshot: str) -> None:
    market = pm.load_market(shared_data / "deribit_options_2026-02-04_05" / snapshot)
    book: dict[str, float] = {}
    for und in ("BTC", "ETH"):
        names = market.option_names(und)
        # a short strangle-ish spread of every 40th listed option plus the perpetual
        for i, name in enumerate(names[::40]):
            book[name] = -1.0 if i % 2 else 0.5
        book[f"{und}-PERPETUAL"] = 0.3
    portfolio = pm.Portfolio.of(book, {"BTC": 1.0, "ETH": 10.0})
    for model in available_models():
        r = load_model(model).margin(portfolio, market)
        assert r.maintenance_margin > 0.0
        assert r.initial_margin >= r.maintenance_margin
    cross = load_model("deribit", cross=True).margin(portfolio, market)
    assert cross.currency == "USD"
