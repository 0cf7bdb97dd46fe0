"""Derive PMRM_2 portfolio margin (``derivexyz/v2-core`` PMRM_2), reproduced to 1e-6.

Public API::

    load_case(path, *, allow_offchain_skew=False) -> DeriveCase
    evaluate_case(case) -> DeriveResult
    evaluate(portfolio, params) -> DeriveResult

Methodology, parameters and verification: ``docs/methodology/derive.md``.
"""

from portmargin.derive.case import (
    CollateralHolding,
    DeriveCase,
    DerivePortfolio,
    ExpectedResult,
    ExpiryFeed,
    OptionHolding,
    load_case,
)
from portmargin.derive.params import (
    BasisContingencyParams,
    MarginParams,
    OtherContingencyParams,
    PMRM2Params,
    ScenarioKind,
    SkewShockParams,
    StressScenario,
    VolShockDirection,
    VolShockParams,
)
from portmargin.derive.pmrm2 import DeriveResult, evaluate, evaluate_case

__all__ = [
    "BasisContingencyParams",
    "CollateralHolding",
    "DeriveCase",
    "DerivePortfolio",
    "DeriveResult",
    "ExpectedResult",
    "ExpiryFeed",
    "MarginParams",
    "OptionHolding",
    "OtherContingencyParams",
    "PMRM2Params",
    "ScenarioKind",
    "SkewShockParams",
    "StressScenario",
    "VolShockDirection",
    "VolShockParams",
    "evaluate",
    "evaluate_case",
    "load_case",
]
