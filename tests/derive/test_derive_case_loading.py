"""Case-file loading: one-line ``file: field: reason`` errors, and the public API surface."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import portmargin.derive
from portmargin.derive import ScenarioKind, evaluate_case, load_case
from portmargin.errors import InputError

MINIMAL: dict[str, Any] = {
    "Scenario": {
        "SpotPrice": "2000",
        "SpotConfidence": 1,
        "StablePrice": 1,
        "StableConfidence": 1,
        "Cash": 100,
        "NumPerps": 1,
        "PerpPrice": 2000,
        "PerpConfidence": 1,
        "UnrealisedPerpPNL": 0,
        "UnrealisedFunding": 0,
        "Options": [{"Expiry": 2592000, "Strike": 2000, "IsCall": 1, "Amount": -1, "MarkVol": 0.5}],
        "OptionFeeds": [
            {
                "FeedExpiry": 2592000,
                "Forward": 2000,
                "ForwardConfidence": 1,
                "Rate": 0,
                "RateConfidence": 1,
                "OptionVolConfidences": 1,
            }
        ],
        "Collaterals": [],
    },
    "Parameters": {
        "Scenarios": [
            {"SpotShock": 0.9, "VolShockDirection": "Up", "DampeningFactor": 1},
            {"SpotShock": 1.5, "VolShockDirection": "Up", "DampeningFactor": 0.07},
            {"SpotShock": 1, "VolShockDirection": "LINEAR", "DampeningFactor": 1},
        ],
        "VolShock": {
            "VOLRANGEUP": 0.5,
            "VOLRANGEDOWN": 0.275,
            "SHORTTERMPOWER": 0.3,
            "LONGTERMPOWER": 0.13,
            "DTE_FLOOR": 1,
            "MIN_VOL_EVAL_SHOCKED": 0.45,
        },
        "Margin": {
            "IM_LOSS_FACTOR": 1,
            "MM_LOSS_FACTOR": 0.8,
            "LONG_RATE_MULTSCALE": 1,
            "LONG_RATE_ADDSCALE": 0.08,
            "SHORT_RATE_MULTSCALE": 0.5,
            "SHORT_RATE_ADDSCALE": 0.08,
            "BASE_STATIC_DISCOUNT": 0.95,
            "BASE_STATIC_DISCOUNT_NEG": 1.04,
        },
        "BasisContingency": {
            "SCENARIO_SPOT_UP": 1.045,
            "SCENARIO_SPOT_DOWN": 0.955,
            "BASIS_CONT_ADD_FACTOR": 0.5,
            "BASIS_CONT_MULT_FACTOR": 2,
        },
        "OtherContingency": {
            "PEG_LOSS_THRESHOLD": 0.98,
            "PEG_LOSS_FACTOR": 2,
            "CONF_THRESHOLD": 0.55,
            "CONF_MARGIN": 1,
            "MM_PERP_PERCENT": 0.015,
            "IM_PERP_PERCENT": 0.005,
            "MM_OPTION_PERCENT": 0.003,
            "IM_OPTION_PERCENT": 0.002,
        },
        "SkewShock": {
            "LINEAR_SCALE_CAP": 0.15,
            "LINEAR_CBASE": -0.05,
            "ABS_SCALE_CAP": 0.15,
            "ABS_CBASE": -0.05,
            "MIN_K_STAR": 0.01,
            "MIN_WIDTH_SCALE": 4,
            "VOL_PARAM_STATIC": 0.6,
            "VOL_PARAM_SCALE": -0.1,
        },
    },
}


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_all_is_sorted_and_complete() -> None:
    assert portmargin.derive.__all__ == sorted(portmargin.derive.__all__)
    for name in ("load_case", "evaluate_case", "DeriveResult", "DeriveCase"):
        assert name in portmargin.derive.__all__


def test_minimal_file_without_result(tmp_path: Path) -> None:
    case = load_case(_write(tmp_path, MINIMAL))
    assert case.expected is None
    kinds = [s.kind for s in case.params.scenarios]
    assert kinds == [ScenarioKind.REGULAR, ScenarioKind.TAIL, ScenarioKind.SKEW]
    result = evaluate_case(case)
    assert result.currency == "USD"
    assert result.maintenance_margin > 0.0
    assert len(result.scenarios) == 3
    data = json.loads(json.dumps(result.to_dict()))
    assert data["maintenance_excess"] == result.maintenance_excess
    assert data["scenarios"][2]["kind"] == "skew"
    assert set(data["worst_scenario"]) >= {"price_move", "vol_shock", "pnl"}


def _mutated(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("Scenario", "SpotPrice"), _DELETE, r"Scenario\.SpotPrice: missing"),
        (("Scenario", "SpotPrice"), "abc", r"Scenario\.SpotPrice: expected a number, got 'abc'"),
        (("Scenario", "SpotPrice"), 0, r"Scenario\.SpotPrice: must be > 0"),
        (("Scenario", "SpotConfidence"), 1.5, r"Scenario\.SpotConfidence: must be <= 1"),
        (("Scenario", "Cash"), True, r"Scenario\.Cash: expected a number, got True"),
        (("Scenario", "Options", 0, "Strike"), -1, r"Options\[0\]\.Strike: must be >= 0"),
        (("Scenario", "Options", 0, "IsCall"), 2, r"Options\[0\]\.IsCall: expected true/false"),
        (("Scenario", "Options", 0, "Expiry"), 5, r"Options\[0\]\.Expiry: no OptionFeeds"),
        (("Scenario", "Options"), {}, r"Scenario\.Options: expected a list"),
        (("Scenario", "Collaterals"), [1], r"Scenario\.Collaterals\[0\]: expected an object"),
        (
            ("Parameters", "Scenarios", 0, "VolShockDirection"),
            "Sideways",
            r"Scenarios\[0\]\.VolShockDirection: expected one of",
        ),
        (
            ("Parameters", "Scenarios", 0, "DampeningFactor"),
            -1,
            r"Scenarios\[0\]\.DampeningFactor: must be >= 0",
        ),
        (
            ("Parameters", "Scenarios", 2, "SpotShock"),
            1.1,
            r"Scenarios\[2\]\.SpotShock: a LINEAR skew scenario must have SpotShock = 1",
        ),
        (("Parameters", "Margin", "MM_LOSS_FACTOR"), -0.8, r"Margin\.MM_LOSS_FACTOR: must be >= 0"),
        (("Parameters", "SkewShock"), _DELETE, r"Parameters\.SkewShock: missing"),
        (("Parameters", "VolShock", "VOLRANGEUP"), "nan", r"VOLRANGEUP: must be finite"),
    ],
)
def test_bad_field_names_file_and_field(
    tmp_path: Path, path: tuple[str | int, ...], value: object, message: str
) -> None:
    file = _write(tmp_path, _mutated(path, value))
    with pytest.raises(InputError, match=message) as info:
        load_case(file)
    text = str(info.value)
    assert text.startswith(f"{file}: ")
    assert "\n" not in text


def test_two_linear_scenarios_rejected(tmp_path: Path) -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["Parameters"]["Scenarios"].append(
        {"SpotShock": 1, "VolShockDirection": "LINEAR", "DampeningFactor": 1}
    )
    with pytest.raises(InputError, match=r"at most one LINEAR scenario"):
        load_case(_write(tmp_path, doc))


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json: \(json\): invalid JSON at line 1"):
        load_case(bad)
    with pytest.raises(InputError, match=r"nope\.json: \(file\): cannot read"):
        load_case(tmp_path / "nope.json")
    with pytest.raises(InputError, match=r"\(root\): expected an object"):
        load_case(_write(tmp_path, [1, 2]))


def test_result_length_mismatch(tmp_path: Path) -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["Result"] = {
        "reg_losses": [[0, 1, "-1"]],
        "tail_losses": [],
        "skew_losses": [],
        "MM": 0,
        "IM": 0,
        "ForwardContingency": 0,
        "OptionMTM": 0,
    }
    with pytest.raises(InputError, match=r"Result\.reg_losses: .*1 values for 3 scenarios"):
        load_case(_write(tmp_path, doc))
