"""Derive's published PMRM_2 case files, one test per file.

The files (``derivexyz/v2-core:test/risk-managers/unit-tests/PMRM_2/portfolio_cases/`` @
``7736900d``) are read from the optional shared data folder; the tests skip cleanly
when that folder is absent. Tolerance: 1e-6 relative on MM and IM (the on-chain harness
uses 1e-8); scenario P&L also 1e-6 relative, with a 1e-8 USD absolute floor because several
files have P&L that cancel to exactly 0 where float64 leaves ~1e-11 of rounding noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from portmargin.derive import DeriveCase, evaluate_case, load_case
from portmargin.errors import InputError

CASES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "derive_pmrm2_cases"
CASE_NAMES = sorted(p.name for p in CASES_DIR.glob("test_*.json")) if CASES_DIR.is_dir() else []

REL = 1e-6
ABS_PNL = 1e-8

# The one non-reproducible value (reference derive_pmrm2.md §12.3): a LINEAR skew scenario
# with SpotShock = 1.18 and DampeningFactor = 5. The on-chain setter rejects it and the
# on-chain harness skips the file ("invalid param setup"); its expected skew P&L follows no
# documented rule. MM/IM still reproduce because that scenario is not the worst.
OFFCHAIN_SKEW_CASE = "test_67_misc_skew_scenario_with_spot_move.json"


def _load(shared_data: Path, name: str) -> DeriveCase:
    return load_case(
        shared_data / "derive_pmrm2_cases" / name,
        allow_offchain_skew=name == OFFCHAIN_SKEW_CASE,
    )


def _num(value: object) -> float:
    assert isinstance(value, float)
    return value


def _pnl_params() -> list[object]:
    return [
        pytest.param(
            name,
            marks=pytest.mark.xfail(
                reason="§12.3: skew scenario with SpotShock != 1 (rejected on chain, skipped "
                "by Derive's harness); its expected skew P&L is not reproducible",
                strict=True,
            ),
        )
        if name == OFFCHAIN_SKEW_CASE
        else name
        for name in CASE_NAMES
    ]


def test_case_files_present(shared_data: Path) -> None:
    assert len(CASE_NAMES) == 70, "expected the 70 provided Derive case files"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_mm_im_match_case_file(shared_data: Path, name: str) -> None:
    case = _load(shared_data, name)
    assert case.expected is not None
    result = evaluate_case(case)
    assert math.isclose(result.maintenance_excess, case.expected.mm, rel_tol=REL)
    assert math.isclose(result.initial_excess, case.expected.im, rel_tol=REL)
    assert math.isclose(
        result.forward_contingency, case.expected.forward_contingency, rel_tol=REL, abs_tol=ABS_PNL
    )
    assert math.isclose(
        result.equity_components["option_mtm"],
        case.expected.option_mtm,
        rel_tol=REL,
        abs_tol=ABS_PNL,
    )


@pytest.mark.parametrize("name", _pnl_params())
def test_scenario_pnl_match_case_file(shared_data: Path, name: str) -> None:
    case = _load(shared_data, name)
    assert case.expected is not None
    result = evaluate_case(case)
    got = [_num(s["pnl"]) for s in result.scenarios]
    assert len(got) == len(case.expected.scenario_pnl)
    bad = [
        (i, g, e)
        for i, (g, e) in enumerate(zip(got, case.expected.scenario_pnl, strict=True))
        if not math.isclose(g, e, rel_tol=REL, abs_tol=ABS_PNL)
    ]
    assert not bad, f"scenarios (index, got, expected) differ: {bad}"


def test_offchain_skew_case_rejected_by_default(shared_data: Path) -> None:
    path = shared_data / "derive_pmrm2_cases" / OFFCHAIN_SKEW_CASE
    with pytest.raises(
        InputError, match=r"Parameters\.Scenarios\[30\]\.SpotShock: .*SpotShock = 1"
    ):
        load_case(path)


def test_offchain_skew_case_only_skew_pnl_differs(shared_data: Path) -> None:
    """In test_67 every scenario except the off-chain LINEAR one reproduces."""
    case = _load(shared_data, OFFCHAIN_SKEW_CASE)
    assert case.expected is not None
    result = evaluate_case(case)
    for s, expected in zip(result.scenarios, case.expected.scenario_pnl, strict=True):
        if s["spot_shock"] != 1.0 and s["kind"] == "skew":
            continue
        assert math.isclose(_num(s["pnl"]), expected, rel_tol=REL, abs_tol=ABS_PNL)


# Result field -> (component names summed, sign in the file). The file stores contingencies
# as negative surplus contributions; OracleCont is the sum of all confidence charges.
_COMPONENT_FIELDS = {
    "MMPerpCont": "mm_perp_contingency",
    "MMBaseCont": "mm_collateral_haircut",
    "MMOptionCont": "mm_option_contingency",
    "IMPerpCont": "im_perp_contingency",
    "IMBaseCont": "im_collateral_haircut",
    "IMOptionCont": "im_option_contingency",
    "OracleCont": "im_confidence_contingency",
}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_components_match_case_file(shared_data: Path, name: str) -> None:
    """Each contingency, the loss factors, equity and the worst family match ``Result``."""
    case = _load(shared_data, name)
    assert case.expected is not None
    exp = case.expected.scalars
    result = evaluate_case(case)
    comp = result.components
    for field, key in _COMPONENT_FIELDS.items():
        assert math.isclose(comp[key], -exp[field], rel_tol=REL, abs_tol=ABS_PNL), field
    worst_loss = comp["worst_loss"]
    assert math.isclose(comp["mm_scenario_loss"], exp["MMLossFactor"] * worst_loss, rel_tol=REL)
    assert math.isclose(
        comp["im_scenario_loss"] + comp["im_peg_adjustment"],
        exp["IMLossFactor"] * worst_loss,
        rel_tol=REL,
    )
    assert math.isclose(result.equity, exp["PortfolioMTM"], rel_tol=REL, abs_tol=ABS_PNL)
    family = result.worst_scenario["kind"]
    if abs(result.min_span) < 1e-6:
        # Riskless (or exactly hedged) books: every family is 0 up to float noise, and the
        # generator labels such ties "regular" while on chain ties go to the forward
        # contingency (reference §7). No meaningful worst family to compare.
        return
    assert case.expected.worst_family == (
        "fwd_contingency" if family == "forward_contingency" else family
    )
