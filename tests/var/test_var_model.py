"""The VaR model file, its loading by name or path, and the one pipeline (margin = batch)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

import portmargin as pm
from portmargin.errors import ParameterError
from portmargin.methods import available_methods, load_method
from portmargin.models.session import MarginSession
from portmargin.var import VarModel, load_var_model, load_var_params, shipped_var_models
from portmargin.var.config import is_var_file

SHIPPED = ["var", "var-apc", "var-bootstrap", "var-buffer", "var-hs", "var-mc"]


def test_shipped_models_load_and_register(monkeypatch: pytest.MonkeyPatch) -> None:
    import portmargin.methods as methods
    from portmargin.var import register

    # the registry is process-wide: let the built-in extras register first (their packages
    # register once, on first import), then register into a copy that the test discards
    methods.available_methods()
    monkeypatch.setattr(methods, "_EXTRA", dict(methods._EXTRA))
    register()
    assert shipped_var_models() == SHIPPED
    names = {m.name for m in available_methods()}
    for name in SHIPPED:
        spec = load_var_params(name)
        assert spec.description
        assert name in names
        method = load_method(name)
        assert isinstance(method, VarModel)
        assert method.family == "var"  # its own family in `portmargin models`
    var = load_var_params("var")
    assert (var.method, var.risk_measure, var.confidence, var.horizon_days) == (
        "fhs",
        "es",
        0.99,
        2,
    )


def _write(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


HEAD = 'family = "var"\nname = "mine"\nversion = "1"\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("confidence = 1.0\n", "m.toml: confidence: must be < 0.9999, got 1.0"),
        ("horizon_days = 0\n", "m.toml: horizon_days: must be >= 1, got 0"),
        ('method = "garch"\n', "m.toml: method: must be 'hs', 'fhs', 'mc-t' or 'mc-bootstrap'"),
        ("ewma_lambda = 1.0\n", "m.toml: ewma_lambda: must be < 1, got 1.0"),
        ("windw_days = 10\n", "m.toml: windw_days: unknown key"),
        ('confidence = "0.99"\n', "m.toml: confidence: must be a number"),
        ("im_multiplier = 0.5\n", "im_multiplier: must be >= mm_multiplier (1)"),
        ("window_days = 100\n", "window_days: must be 0 (all) or >= min_window_days (250)"),
        ("[monte_carlo]\ndof = 1.5\n", "dof: must be 0 (fit) or > 2"),
        ("[stress]\nenabled = true\n", "periods: needs at least one period when enabled"),
        (
            "[stress]\nperiods = [{start = 2022-05-01, end = 2022-04-01}]\n",
            "end: must be after start (2022-05-01)",
        ),
        ('[anti_procyclicality]\nmode = "both"\n', "anti_procyclicality.mode: must be 'none'"),
    ],
)
def test_file_errors_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, HEAD + body)
    with pytest.raises(ParameterError) as info:
        load_var_params(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_name_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unknown VaR model 'nope'"):
        load_var_params("nope")
    over = _write(tmp_path, "confidence = 0.975\n[monte_carlo]\nseed = 5\n", "o.toml")
    spec = load_var_params("var", overrides=over)
    assert spec.confidence == 0.975 and spec.monte_carlo.seed == 5
    assert spec.label == f"var 2026.1 + overrides({over})"
    bad = _write(tmp_path, "confidence = 2\n", "b.toml")
    with pytest.raises(ParameterError, match=r"b.toml \(over model var\): confidence"):
        load_var_params("var", overrides=bad)
    method = load_var_model("var", params_file=str(over))
    assert isinstance(method, VarModel)
    assert method.version == f"2026.1 + overrides({over})"


def test_a_file_with_its_own_history(tmp_path: Path) -> None:
    from portmargin.var.history import shipped_history

    csv = tmp_path / "h.csv"

    csv.write_text(shipped_history().between(date(2021, 3, 1), date(2023, 1, 1)).to_csv())
    path = _write(tmp_path, HEAD + 'history = "h.csv"\nmethod = "hs"\n')
    assert is_var_file(path)
    model = load_var_model(str(path))
    assert model.history.source == str(csv)
    assert model.as_of == date(2023, 1, 1)
    pinned = _write(tmp_path, HEAD + 'history = "h.csv"\nas_of = 2030-01-01\n', "p.toml")
    with pytest.raises(ParameterError, match="as_of 2030-01-01 is outside the history"):
        load_var_model(str(pinned))


def test_margin_explain_and_batch_agree() -> None:
    model = load_var_model("var", as_of=date(2026, 2, 24))
    market = pm.demo_market()
    books = {
        "spread": {"BTC-27MAR26-70000-P": -1.0, "BTC-27MAR26-65000-P": 1.0},
        "both": {"BTC-27MAR26-70000-C": -2.0, "ETH-27MAR26-3500-P": -5.0},
        "perp": {"ETH-PERPETUAL": 10.0},
    }
    session = MarginSession(market, model)
    book = session.book_from_positions(books)
    batch = session.margin(book)
    for i, (name, pos) in enumerate(books.items()):
        one = model.margin(pm.Portfolio.of(pos, name=name), market)
        assert one.initial_margin == pytest.approx(float(batch.initial_margin[i].sum()), rel=1e-9)
        assert not any("look-ahead" in n for n in one.notes)
    # the joint book needs less than its two legs apart (diversification across BTC and ETH)
    legs = [
        model.margin(pm.Portfolio.of({k: v}), market).initial_margin
        for k, v in books["both"].items()
    ]
    assert float(batch.initial_margin[1].sum()) < sum(legs)


def test_unknown_underlying_is_one_line() -> None:
    from portmargin.instruments import ProductSpec, Settlement

    market = pm.build_market(
        valuation_time=pm.demo_market().valuation_time,
        underlyings={"SOL": pm.market.UnderlyingQuote(100.0)},
        products={"SOL": ProductSpec("SOL", "SOL", Settlement.LINEAR, "USDC", 1.0)},
    )
    with pytest.raises(pm.PortmarginError, match="no history for SOL"):
        load_var_model("var-hs").margin(pm.Portfolio.of({"SOL-PERPETUAL": 1.0}), market)


def test_look_ahead_note() -> None:
    res = load_var_model("var-hs").margin(pm.Portfolio.of({"BTC-PERPETUAL": 1.0}), pm.demo_market())
    assert "look-ahead" in res.notes[-1]
    assert np.isfinite(res.initial_margin)
