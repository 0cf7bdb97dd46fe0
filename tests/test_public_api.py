"""The public API of ``portmargin``: one sorted ``__all__``, pinned (as httpx's
``tests/test_exported_members.py`` does), every name loadable, and a light ``import``."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import portmargin as pm

PUBLIC = [
    "Comparison",
    "InputError",
    "Instrument",
    "InstrumentError",
    "MarginModel",
    "MarginResult",
    "MarketDataError",
    "MarketSnapshot",
    "Method",
    "ParameterError",
    "Portfolio",
    "PortmarginError",
    "Position",
    "ProductSpec",
    "QuoteSource",
    "RiskArray",
    "ScenarioSet",
    "__version__",
    "available_methods",
    "available_models",
    "build_market",
    "compare",
    "demo_market",
    "instrument_table",
    "load_market",
    "load_method",
    "load_model",
    "load_portfolio",
    "margin",
    "parse_instrument",
    "portfolio_from_deribit",
    "risk_array",
    "to_frame",
]

HEAVY = ("numpy", "scipy", "sqlalchemy", "alembic", "matplotlib", "pyarrow", "psycopg", "polars")


def test_all_is_sorted_and_pinned() -> None:
    assert pm.__all__ == sorted(pm.__all__)
    assert pm.__all__ == PUBLIC


def test_every_public_name_loads_and_nothing_else_is_exported() -> None:
    for name in pm.__all__:
        assert getattr(pm, name) is not None, name
    assert set(pm.__all__) <= set(dir(pm))
    # After loading everything, every public non-module attribute is in __all__.
    public = {
        k
        for k, v in vars(pm).items()
        if not k.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public <= set(pm.__all__)


def test_names_come_from_their_modules() -> None:
    from portmargin.margin import margin
    from portmargin.methods import load_method

    assert pm.margin is margin
    assert pm.load_method is load_method
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = pm.nope


def test_a_submodule_import_does_not_shadow_the_function() -> None:
    importlib.import_module("portmargin.margin")
    importlib.import_module("portmargin.compare")
    assert not isinstance(pm.margin, types.ModuleType)
    assert not isinstance(pm.compare, types.ModuleType)
    assert callable(pm.margin)
    assert callable(pm.compare)
    assert sys.modules["portmargin.compare"].Comparison is pm.Comparison


def test_import_portmargin_is_light() -> None:
    code = (
        "import sys, portmargin; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
