"""What-if (pre-trade) checks and margin attribution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import portmargin as pm
from portmargin.accounts import (
    Account,
    attribute,
    evaluate_account,
    margin_usd,
    parse_trade,
    what_if,
)
from portmargin.cli import main
from portmargin.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def market() -> pm.MarketSnapshot:
    return pm.demo_market()


@pytest.fixture(scope="module")
def model() -> pm.MarginModel:
    return pm.load_model("deribit")


def _acct() -> Account:
    return Account("w", {"BTC-27MAR26-70000-P": -1.0}, {"BTC": 1.0, "USDC": 10_000.0})


def test_whatif_leaves_the_account_unchanged_and_equals_margin_after(
    market: pm.MarketSnapshot, model: pm.MarginModel
) -> None:
    acct = _acct()
    before = dict(acct.positions), dict(acct.balances)
    res = what_if(acct, {"BTC-27MAR26-60000-P": -2.0}, market, model)
    assert (dict(acct.positions), dict(acct.balances)) == before
    after = acct.with_trades(
        {"BTC-27MAR26-60000-P": -2.0},
        {"BTC": 2.0 * market.mark_price(market.instrument("BTC-27MAR26-60000-P"))},
    )
    direct = evaluate_account(after, market, model)
    assert res.after.initial_margin_usd == pytest.approx(direct.initial_margin_usd, rel=1e-12)
    assert res.incremental_im_usd > 0
    # Filled at the mark: equity is unchanged by the trade.
    assert res.after.margin_equity_usd == pytest.approx(res.before.margin_equity_usd, rel=1e-9)
    assert res.accepted


def test_oversized_trade_is_rejected_with_the_shortfall(
    market: pm.MarketSnapshot, model: pm.MarginModel
) -> None:
    res = what_if(_acct(), {"BTC-27MAR26-80000-C": -500.0}, market, model)
    assert not res.accepted
    assert "insufficient margin" in res.reason


def test_risk_reducing_trade_is_accepted_even_in_deficit(
    market: pm.MarketSnapshot, model: pm.MarginModel
) -> None:
    acct = Account("d", {"BTC-27MAR26-70000-P": -40.0}, {"BTC": 0.5, "USDC": 20_000})
    res = what_if(acct, {"BTC-27MAR26-70000-P": 20.0}, market, model)
    assert res.after.excess_usd < 0
    assert res.incremental_im_usd < 0
    assert res.accepted


def test_unknown_instrument_is_rejected(market: pm.MarketSnapshot, model: pm.MarginModel) -> None:
    with pytest.raises(InputError, match="unknown instrument"):
        what_if(_acct(), {"BTC-27MAR26-12345-C": 1.0}, market, model)
    with pytest.raises(InputError, match="INSTRUMENT:QTY"):
        parse_trade("BTC-27MAR26-70000-C")
    with pytest.raises(InputError, match="non-zero"):
        parse_trade("BTC-27MAR26-70000-C:0")


def test_attribution_shares_and_remove_one(
    market: pm.MarketSnapshot, model: pm.MarginModel
) -> None:
    book = pm.Portfolio.of(
        {"BTC-27MAR26-70000-P": -2, "BTC-27MAR26-65000-P": 2, "ETH-27MAR26-3500-C": -3},
        {"BTC": 1.0, "ETH": 5.0},
    )
    att = attribute(book, market, model)
    by_und: dict[str, float] = {}
    for p in att.positions:
        by_und[p.underlying] = by_und.get(p.underlying, 0.0) + p.binding_share
    assert by_und == pytest.approx({"BTC": 1.0, "ETH": 1.0})
    hedge = next(p for p in att.positions if p.instrument == "BTC-27MAR26-65000-P")
    assert hedge.binding_share < 0
    assert hedge.marginal_im_usd < 0
    without = pm.Portfolio.of(
        {"BTC-27MAR26-70000-P": -2, "BTC-27MAR26-65000-P": 2}, {"BTC": 1.0, "ETH": 5.0}
    )
    eth = next(p for p in att.positions if p.underlying == "ETH")
    im_wo = margin_usd(model.margin(without, market))[0]
    assert eth.marginal_im_usd == pytest.approx(att.initial_margin_usd - im_wo, rel=1e-12)
    # The engine's own per-position figure is passed through unchanged.
    eng = {p.instrument: p.binding_pnl for p in att.result.positions}
    assert {p.instrument: p.binding_scenario_pnl for p in att.positions} == eng


def test_cli_whatif_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "whatif",
            str(EXAMPLES / "short_put_spread.json"),
            "--trade",
            "BTC-27MAR26-60000-P:-1",
            "--format",
            "json",
            "--min-equity",
            "0",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["trades"] == {"BTC-27MAR26-60000-P": -1.0}
    im_before, im_after = doc["before"]["initial_margin"], doc["after"]["initial_margin"]
    assert doc["incremental_initial_margin"] == pytest.approx(im_after - im_before)
    assert doc["before"]["method"] in ("portfolio", "rules")


def test_cli_whatif_unknown_instrument(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["whatif", str(EXAMPLES / "short_put_spread.json"), "--trade", "BTC-1JAN20:1"])
    assert code == 2
    assert "unknown instrument" in capsys.readouterr().err
