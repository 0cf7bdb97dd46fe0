"""Model parameter files: typed schemas, ranges, combinations, ``--params`` merge rules.

The contract is ``docs/models.md``; every error is one ``ParameterError`` line that starts
with the file and names the key.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import portmargin as pm
from portmargin.errors import ParameterError
from portmargin.models import load_model
from portmargin.models.config import (
    CHARGE_KINDS,
    CREDIT_KINDS,
    CurrencyParams,
    DeltaShockParams,
    InterSpread,
    IntraSpread,
    ModelParams,
    ProductGroup,
    RollShockParams,
    ShortOptionMinimumParams,
    SpanIntraParams,
    SpanSpotParams,
    UnderlyingParams,
    available_models,
    load_model_params,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"
MARKET = pm.demo_market()


def _write(tmp_path: Path, text: str, name: str = "my.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(model: str, path: Path) -> str:
    with pytest.raises(ParameterError) as info:
        load_model_params(model, overrides=path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} (over model {model}): "), message
    assert "np.float64" not in message and "Traceback" not in message
    return message


# ----------------------------------------------------------------------------------------
# The shipped files


@pytest.mark.parametrize("name", available_models())
def test_shipped_models_load_and_round_trip(name: str) -> None:
    params = load_model_params(name)
    assert params.overrides == ()
    assert params.label == f"{params.name} {params.version}"
    assert ModelParams.model_validate(params.model_dump()) == params


def test_charges_are_typed_per_kind() -> None:
    deribit = load_model_params("deribit")
    roll, delta = deribit.charges
    assert isinstance(roll, RollShockParams) and isinstance(delta, DeltaShockParams)
    assert roll.for_key("BTC").annualised_move_risk == 0.075
    assert roll.for_key("USD").min_annualised_move == 0.01
    assert roll.for_key("SOL").annualised_move_risk == 0.0  # no sub-table: the top level
    assert delta.for_key("ETH").m_inc == 0.000004
    assert delta.for_key("ETH").threshold_usd == 20_000_000.0  # inherited from the top level
    span = load_model_params("span")
    som = span.charges[2]
    assert isinstance(som, ShortOptionMinimumParams)
    assert (som.role, som.for_key("ETH").rate, som.for_key("BTC").rate) == ("minimum", 0.015, 0.01)


def test_defaults_live_in_the_schemas() -> None:
    assert DeltaShockParams().threshold_usd == 20_000_000.0
    assert DeltaShockParams().max_delta_shock == 0.10
    assert SpanIntraParams().tier_bounds_days == (7.0, 30.0, 91.0)
    assert SpanSpotParams().spot_tier == 1
    assert ShortOptionMinimumParams().method == "gross"
    assert InterSpread(legs=("BTC", "ETH"), rate=0.5).leg_ratios == (1.0, 1.0)


def test_span_spot_shares_the_intra_spreads(tmp_path: Path) -> None:
    span = load_model_params("span")
    intra, spot = span.charges[0], span.charges[1]
    assert isinstance(intra, SpanIntraParams) and isinstance(spot, SpanSpotParams)
    assert spot.spreads == intra.spreads and len(spot.spreads) == 10
    assert spot.tier_bounds_days == intra.tier_bounds_days
    over = _write(
        tmp_path,
        '[[charges]]\nkind = "span_intra_commodity"\n'
        "BTC = { spreads = [{ a = 0, b = 1, rate = 0.01 }] }\n",
    )
    changed = load_model_params("span", overrides=over)
    spot2 = changed.charges[1]
    assert isinstance(spot2, SpanSpotParams)
    assert spot2.for_key("BTC").spreads == (IntraSpread(a=0, b=1, rate=0.01),)
    assert spot2.for_key("ETH").spreads == intra.spreads


# ----------------------------------------------------------------------------------------
# --params merge rules


def test_misspelt_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[charges]]\nkind = "delta_shock"\nm_incc = 0.1\n')
    assert _error("deribit", path) == (
        f"{path} (over model deribit): charges[1] (delta_shock).m_incc: unknown key"
    )


def test_misspelt_key_in_a_sub_table(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[charges]]\nkind = "delta_shock"\nBTC = { m_incc = 0.1 }\n')
    assert _error("deribit", path).endswith("charges[1] (delta_shock).BTC.m_incc: unknown key")


def test_overriding_one_key_keeps_the_other_charges(tmp_path: Path) -> None:
    # The README's rule: files merge table by table; [[charges]] merge by kind.
    base = load_model_params("deribit")
    path = _write(tmp_path, '[[charges]]\nkind = "delta_shock"\nmax_delta_shock = 0.2\n')
    params = load_model_params("deribit", overrides=path)
    assert [c.kind for c in params.charges] == ["roll_shock", "delta_shock"]
    assert params.charges[0] == base.charges[0]
    delta = params.charges[1]
    assert isinstance(delta, DeltaShockParams)
    assert delta.max_delta_shock == 0.2
    assert delta.for_key("BTC").max_delta_shock == 0.2
    assert delta.for_key("BTC").m_inc == 0.00005  # the model's BTC sub-table is kept
    assert params.label == f"deribit 2024.1 + overrides({path})"
    assert params.overrides == (str(path),)


def test_top_level_key_of_an_override_applies_to_every_underlying(tmp_path: Path) -> None:
    # The latest file to set a key wins: m_inc at the top level replaces the model's
    # BTC/ETH values; a sub-table in the same file still refines it.
    path = _write(
        tmp_path, '[[charges]]\nkind = "delta_shock"\nm_inc = 0.001\nETH = { m_inc = 0.002 }\n'
    )
    delta = load_model_params("deribit", overrides=path).charges[1]
    assert isinstance(delta, DeltaShockParams)
    assert (delta.for_key("BTC").m_inc, delta.for_key("ETH").m_inc) == (0.001, 0.002)


def test_sub_table_override_changes_one_underlying_only(tmp_path: Path) -> None:
    path = _write(
        tmp_path, '[[charges]]\nkind = "roll_shock"\nBTC = { min_annualised_move = 0.02 }\n'
    )
    roll = load_model_params("deribit", overrides=path).charges[0]
    assert isinstance(roll, RollShockParams)
    assert roll.for_key("BTC").min_annualised_move == 0.02
    assert roll.for_key("BTC").annualised_move_risk == 0.075
    assert roll.for_key("ETH").min_annualised_move == 0.005


def test_a_new_kind_is_appended(tmp_path: Path) -> None:
    path = _write(
        tmp_path, '[[charges]]\nkind = "span_short_option_minimum"\nrate = 0.002\n', "som.toml"
    )
    params = load_model_params("deribit", overrides=path)
    assert [c.kind for c in params.charges] == [
        "roll_shock",
        "delta_shock",
        "span_short_option_minimum",
    ]
    r = load_model("deribit", params_file=str(path)).margin(
        pm.Portfolio.of({"BTC-27MAR26-130000-C": -2}), MARKET
    )
    assert "span_short_option_minimum" in r.components


def test_remove_true_drops_a_charge(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[charges]]\nkind = "delta_shock"\nremove = true\n')
    params = load_model_params("deribit", overrides=path)
    assert [c.kind for c in params.charges] == ["roll_shock"]
    r = load_model("deribit", params_file=str(path)).margin(
        pm.Portfolio.of({"BTC-PERPETUAL": 3}), MARKET
    )
    assert "delta_shock" not in r.components
    assert r.components["roll_shock"] == pytest.approx(0.03, rel=1e-12)


def test_remove_a_credit(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[credits]]\nkind = "tims_product_group"\nremove = true\n')
    assert load_model_params("tims", overrides=path).credits == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[charges]]\nkind = "delta_shok"\nm_inc = 0.1\n',
            "charges[2].kind: unknown charge kind 'delta_shok' (known: 'roll_shock', ",
        ),
        ("[[charges]]\nm_inc = 0.1\n", "charges[0].kind: required in an override"),
        (
            '[[charges]]\nkind = "span_spot"\nremove = true\n',
            "charges[0] (span_spot).remove: the model has no charges entry of this kind",
        ),
        (
            '[[charges]]\nkind = "delta_shock"\nremove = true\nm_inc = 1.0\n',
            "charges[0] (delta_shock).m_inc: an entry with remove = true takes no other keys",
        ),
        (
            '[[charges]]\nkind = "delta_shock"\nremove = 1\n',
            "charges[0] (delta_shock).remove: must be true or false, got 1",
        ),
        (
            '[[charges]]\nkind = "delta_shock"\n[[charges]]\nkind = "delta_shock"\n',
            "charges[1] (delta_shock): this kind appears twice in the override",
        ),
        ("charges = 3\n", "charges: must be an array of tables ([[charges]])"),
        ("overrides = ['x.toml']\n", "overrides: unknown key"),
    ],
)
def test_override_merge_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ParameterError) as info:
        load_model_params("deribit", overrides=path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert expected in message, message


def test_several_override_files_apply_in_order(tmp_path: Path) -> None:
    a = _write(tmp_path, '[[charges]]\nkind = "delta_shock"\nmax_delta_shock = 0.2\n', "a.toml")
    b = _write(tmp_path, '[[charges]]\nkind = "delta_shock"\nmax_delta_shock = 0.3\n', "b.toml")
    params = load_model_params("deribit", overrides=[a, b])
    delta = params.charges[1]
    assert isinstance(delta, DeltaShockParams) and delta.max_delta_shock == 0.3
    assert params.overrides == (str(a), str(b))
    assert params.label == f"deribit 2024.1 + overrides({a}, {b})"
    bad = _write(tmp_path, "im_multiplier = -1\n", "bad.toml")
    with pytest.raises(ParameterError, match=re.escape(f"{bad} (over model deribit + {a}): ")):
        load_model_params("deribit", overrides=[a, bad])


def test_load_model_keeps_the_overrides_visible(tmp_path: Path) -> None:
    path = _write(tmp_path, "[underlyings.BTC]\nprice_range = 0.2\n")
    model = load_model("deribit", params_file=str(path))
    assert model.params.label == f"deribit 2024.1 + overrides({path})"


def test_a_model_file_by_path_names_itself(tmp_path: Path) -> None:
    text = (Path(pm.__file__).parent / "models" / "params" / "tims.toml").read_text()
    path = _write(tmp_path, text.replace("offset = 0.50", "offset = 1.5"), "mine.toml")
    with pytest.raises(ParameterError) as info:
        load_model_params(path)
    assert str(info.value) == (
        f"{path}: credits[0] (tims_product_group).groups[0].offset: must be <= 1, got 1.5"
    )


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"nope\.toml: file not found"):
        load_model_params("deribit", overrides=tmp_path / "nope.toml")
    bad = _write(tmp_path, "price_range = \n", "bad.toml")
    with pytest.raises(ParameterError, match=r"bad\.toml: bad TOML \("):
        load_model_params("deribit", overrides=bad)
    with pytest.raises(ParameterError, match="unknown model 'nosuch'"):
        load_model_params("nosuch")


# ----------------------------------------------------------------------------------------
# Ranges, signs and combinations


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        ("deribit", "im_multiplier = 1e400\n", "im_multiplier: must be a finite number, got inf"),
        ("deribit", "im_multiplier = 0\n", "im_multiplier: must be > 0, got 0"),
        ("deribit", "im_multiplier = 101.0\n", "im_multiplier: must be <= 100, got 101.0"),
        ("deribit", "mm_multiplier = 1.5\n", "im_multiplier: must be >= mm_multiplier (1.5)"),
        ("deribit", 'im_multiplier = "1"\n', "im_multiplier: must be a number, got '1'"),
        ("deribit", "im_multiplier = true\n", "im_multiplier: must be a number, got True"),
        (
            "deribit",
            "[underlyings.default]\nextended_moves = [1e308]\n",
            "underlyings.default.extended_moves[0]: must be <= 100, got 1e+308",
        ),
        (
            "deribit",
            "[underlyings.BTC]\nextended_moves = [-1.0]\n",
            "underlyings.BTC.extended_moves[0]: must be > -1, got -1.0",
        ),
        (
            "deribit",
            "[underlyings.BTC]\nextended_moves = [0.5, 0.0]\n",
            "underlyings.BTC.extended_moves[1]: must not be 0",
        ),
        (
            "deribit",
            "[underlyings.BTC]\nextended_moves = [0.5, 0.1]\n",
            "underlyings.BTC.extended_moves[1]: 0.1 lies inside the standard range ±0.16",
        ),
        (
            "deribit",
            "[underlyings.BTC]\nprice_range = 1e-308\n",
            "underlyings.BTC.price_range: must be >= 0.0001, got 1e-308",
        ),
        (
            "deribit",
            "[underlyings.ETH]\nprice_range = nan\n",
            "underlyings.ETH.price_range: must be a finite number, got nan",
        ),
        (
            "deribit",
            "[underlyings.ETH]\nvol_down = 1.5\n",
            "underlyings.ETH.vol_down: must be <= 1 with vol_mode = 'relative'",
        ),
        (
            "deribit",
            "[underlyings.ETH]\nbuckets_per_side = 2.5\n",
            "underlyings.ETH.buckets_per_side: must be an integer, got 2.5",
        ),
        (
            "deribit",
            "[underlyings.btc]\nprice_range = 0.2\n",
            "underlyings.btc: a table name must be 'default' or an upper-case code",
        ),
        (
            "deribit",
            "[underlyings.BTC]\nprice_rnage = 0.2\n",
            "underlyings.BTC.price_rnage: unknown key",
        ),
        (
            "deribit",
            "[currencies.USD]\nhaircut = 1.5\n",
            "currencies.USD.haircut: must be <= 1, got 1.5",
        ),
        (
            "span",
            "[underlyings.BTC]\nprice_range = 0.4\n",
            "underlyings.BTC.extreme_multiplier: the extreme move 3 x price_range 0.4 must",
        ),
        (
            "span",
            "[underlyings.default]\nlookahead_days = 31\n",
            "underlyings.default.lookahead_days: must be <= 30, got 31",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "roll_shock"\nrate = -1\n',
            "charges[0] (roll_shock).rate: unknown key",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "roll_shock"\nBTC = { annualised_move_risk = -1 }\n',
            "charges[0] (roll_shock).BTC.annualised_move_risk: must be >= 0, got -1",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "roll_shock"\nUSDC = { annualised_move_risk = 0.1 }\n',
            "charges[0] (roll_shock).USDC: USDC pools as USD: name the pool USD",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "roll_shock"\nSOL = { annualised_move_risk = 0.1 }\n',
            "charges[0] (roll_shock).SOL: SOL is not a currency of this model",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "delta_shock"\nBTCC = { m_inc = 0.1 }\n',
            "charges[1] (delta_shock).BTCC: BTCC is not an underlying of this model",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "delta_shock"\nbtc = { m_inc = 0.1 }\n',
            "charges[1] (delta_shock).btc: unknown key",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "delta_shock"\nmax_delta_shock = 2.0\n',
            "charges[1] (delta_shock).max_delta_shock: must be <= 1, got 2.0",
        ),
        (
            "deribit",
            '[[charges]]\nkind = "delta_shock"\nin_maintenance = "no"\n',
            "charges[1] (delta_shock).in_maintenance: must be true or false, got 'no'",
        ),
        (
            "span",
            'grid = "tims10"\n',
            "grid: 'tims10' cannot carry charges[0] (span_intra_commodity), which needs the "
            "span16 grid",
        ),
        (
            "span",
            'grid = "deribit"\n[[charges]]\nkind = "span_intra_commodity"\nremove = true\n'
            '[[charges]]\nkind = "span_spot"\nremove = true\n',
            "grid: 'deribit' cannot carry credits[0] (span_inter_commodity)",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_short_option_minimum"\nrate = -0.01\n',
            "charges[2] (span_short_option_minimum).rate: must be >= 0, got -0.01",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_short_option_minimum"\nrole = "add-on"\n',
            "charges[2] (span_short_option_minimum).role: must be 'minimum', got 'add-on'",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_short_option_minimum"\nin_maintenance = false\n',
            "charges[2] (span_short_option_minimum).in_maintenance: must be True, got False",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_short_option_minimum"\nmethod = "net"\n',
            "charges[2] (span_short_option_minimum).method: must be 'gross' or 'max', got 'net'",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_intra_commodity"\ntier_bounds_days = [7.0, 60.0, 30.0]\n',
            "charges[0] (span_intra_commodity).tier_bounds_days[2]: must be above the bound "
            "before it (60), got 30",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_intra_commodity"\n'
            "spreads = [{ a = 0, b = 7, rate = 0.01 }]\n",
            "charges[0] (span_intra_commodity).spreads[0].b: tier 7 does not exist",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_intra_commodity"\n'
            "spreads = [{ a = 2, b = 2, rate = 0.01 }]\n",
            "charges[0] (span_intra_commodity).spreads[0].b: must differ from a (both 2)",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_intra_commodity"\n'
            "spreads = [{ a = 0, b = 1, rate = 0.01, ratee = 1 }]\n",
            "charges[0] (span_intra_commodity).spreads[0].ratee: unknown key",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_spot"\nspot_tier = 9\n',
            "charges[1] (span_spot).spot_tier: tier 9 does not exist",
        ),
        (
            "span",
            '[[charges]]\nkind = "span_spot"\ntier_bounds_days = [7.0, 30.0]\n',
            "charges[1] (span_spot).tier_bounds_days: must equal charges[0] "
            "(span_intra_commodity)'s tier_bounds_days",
        ),
        (
            "span",
            '[[credits]]\nkind = "span_inter_commodity"\n'
            'spreads = [{ legs = ["BTC", "SOL"], rate = 0.5 }]\n',
            "credits[0] (span_inter_commodity).spreads[0].legs[1]: SOL is not an underlying",
        ),
        (
            "span",
            '[[credits]]\nkind = "span_inter_commodity"\n'
            'spreads = [{ legs = ["BTC", "ETH"], ratios = [1.0], rate = 0.5 }]\n',
            "credits[0] (span_inter_commodity).spreads[0].ratios: needs one ratio per leg (2)",
        ),
        (
            "span",
            '[[credits]]\nkind = "span_inter_commodity"\nwfpr_method = "cap"\n',
            "credits[0] (span_inter_commodity).wfpr_method: must be 'normal', 'scanrange_cap' "
            "or 'scanrange', got 'cap'",
        ),
        (
            "tims",
            '[[credits]]\nkind = "tims_product_group"\n'
            'groups = [{ members = ["BTC", "ETH"], offset = 0.5 }, '
            '{ members = ["ETH", "BTC"], offset = 0.5 }]\n',
            "credits[0] (tims_product_group).groups[1].members[0]: ETH is already in groups[0]",
        ),
        (
            "tims",
            '[[credits]]\nkind = "tims_product_group"\n'
            'groups = [{ members = ["BTC"], offset = 0.5 }]\n',
            "credits[0] (tims_product_group).groups[0].members: ",
        ),
        (
            "tims",
            '[[charges]]\nkind = "tims_minimum_per_contract"\nrate = 1e-400\nETH = { rate = 2 }\n',
            "charges[0] (tims_minimum_per_contract).ETH.rate: must be <= 1, got 2",
        ),
    ],
)
def test_nonsense_is_refused_at_load(tmp_path: Path, model: str, text: str, expected: str) -> None:
    message = _error(model, _write(tmp_path, text))
    assert expected in message, message


def test_a_grid_the_charges_can_run_on_is_accepted(tmp_path: Path) -> None:
    # TIMS' minimum and product groups, Deribit's shocks and SPAN's SOM do not depend on
    # the grid's layout; product groups need members with the same number of points.
    for model, grid in (("tims", "span16"), ("tims", "deribit"), ("deribit", "span16")):
        path = _write(tmp_path, f'grid = "{grid}"\n', f"{model}-{grid}.toml")
        params = load_model_params(model, overrides=path)
        r = load_model(model, params_file=str(path)).margin(
            pm.Portfolio.of({"BTC-27MAR26-70000-P": -1, "ETH-PERPETUAL": 2}), MARKET
        )
        assert params.grid == grid and r.maintenance_margin > 0
    uneven = _write(
        tmp_path, 'grid = "deribit"\n[underlyings.ETH]\nextended_moves = [-0.5]\n', "uneven.toml"
    )
    message = _error("tims", uneven)
    assert "groups[0].members: members need the same number of scenarios" in message


def test_schemas_refuse_unknown_keys_directly() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        UnderlyingParams.model_validate({"price_rnage": 0.1})
    with pytest.raises(ValidationError, match="finite number"):
        CurrencyParams.model_validate({"haircut": float("inf")})
    with pytest.raises(ValidationError, match="BTC is already a member"):
        ProductGroup.model_validate({"members": ["BTC", "BTC"], "offset": 0.5})


# ----------------------------------------------------------------------------------------
# Anything that loads can be margined: no parameter error at margin time

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2.0, 2.0),
    st.sampled_from([0.0, 1e-300, 1e300, -0.0, 100.0, 1e15]),
)
KEYS = [
    ("[underlyings.BTC]", "price_range"),
    ("[underlyings.BTC]", "dte_floor_days"),
    ("[underlyings.BTC]", "pivot_days"),
    ("[underlyings.BTC]", "short_term_power"),
    ("[underlyings.BTC]", "min_vol_up"),
    ("[underlyings.ETH]", "vol_up"),
    ("[currencies.ETH]", "max_offsetable_pnl"),
    ("", "mm_multiplier"),
    ("[underlyings.BTC]", "vol_up"),
    ("[underlyings.BTC]", "vol_down"),
    ("[underlyings.default]", "extended_factor"),
    ("[currencies.BTC]", "pnl_offset"),
    ("[currencies.BTC]", "extended_dampener"),
    ("", "im_multiplier"),
    ('[[charges]]\nkind = "roll_shock"\n', "min_annualised_move"),
    ('[[charges]]\nkind = "delta_shock"\n', "m_inc"),
    ('[[charges]]\nkind = "delta_shock"\n', "threshold_usd"),
]


def _toml_number(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=NUMBERS, extra=st.lists(NUMBERS, max_size=3))
def test_loaded_parameters_always_margin(
    tmp_path_factory: pytest.TempPathFactory,
    key: tuple[str, str],
    value: float,
    extra: list[float],
) -> None:
    # Either the file is refused at load with a ParameterError, or every book margins to
    # finite, non-negative figures without a floating-point warning (warnings are errors).
    table, name = key
    moves = ", ".join(_toml_number(x) for x in extra)
    text = f"{name} = {_toml_number(value)}\n"
    if table == "[underlyings.ETH]":  # one table, both keys
        text = f"{table}\n{text}extended_moves = [{moves}]\n"
    else:
        text = f"{table}\n{text}" if table else text
        text += f"\n[underlyings.ETH]\nextended_moves = [{moves}]\n"
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_text(text, encoding="utf-8")
    refused = ""
    try:
        model = load_model("deribit", params_file=str(path))
    except ParameterError as exc:
        refused = str(exc)
    if refused:
        assert refused.startswith(f"{path} (over model deribit): ")
        assert "\n" not in refused
        return
    book = pm.Portfolio.of(
        {"BTC-27MAR26-70000-C": -1, "BTC-PERPETUAL": 5, "ETH-27MAR26-3000-P": -2}, {"BTC": 1.0}
    )
    r = model.margin(book, MARKET)
    assert math.isfinite(r.initial_margin) and math.isfinite(r.maintenance_margin)
    assert r.maintenance_margin >= 0.0 and r.initial_margin >= r.maintenance_margin - 1e-12


# ----------------------------------------------------------------------------------------
# docs/models.md is the contract: every key and kind is documented


def _documented() -> str:
    return DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "schema",
    [
        ModelParams,
        UnderlyingParams,
        CurrencyParams,
        IntraSpread,
        InterSpread,
        ProductGroup,
        *CHARGE_KINDS.values(),
        *CREDIT_KINDS.values(),
    ],
    ids=lambda s: s.__name__,
)
def test_every_key_is_documented(schema: type[ModelParams]) -> None:
    text = _documented()
    internal = {"per_key", "overrides"}
    for key in schema.model_fields:
        if key not in internal:
            assert f"`{key}`" in text, f"{schema.__name__}.{key} is not in docs/models.md"


def test_every_kind_is_documented() -> None:
    text = _documented()
    for kind in (*CHARGE_KINDS, *CREDIT_KINDS):
        assert f"`{kind}`" in text
