"""Derive PMRM_2 portfolio margin (``derivexyz/v2-core`` PMRM_2), reproduced to 1e-6.

Public API::

    load_case(path, *, allow_offchain_skew=False) -> DeriveCase
    evaluate_case(case) -> DeriveResult
    evaluate(portfolio, params) -> DeriveResult
    margin_case(path, *, allow_offchain_skew=False) -> MarginResult
    DeriveMethod.load(params_file=None).margin(book, market) -> MarginResult
    load_config(params_file=None) -> DeriveConfig

Importing the package registers the method ``derive`` with :mod:`portmargin.methods`.
Methodology, parameters and verification: ``docs/methodology/derive.md``.
"""

from portmargin.derive._method import DeriveBook, DeriveMethod, map_book
from portmargin.derive._result import DeriveSubaccount, margin_case, to_margin_result
from portmargin.derive.case import (
    CollateralHolding,
    DeriveCase,
    DerivePortfolio,
    ExpectedResult,
    ExpiryFeed,
    OptionHolding,
    load_case,
)
from portmargin.derive.config import CollateralHaircuts, DeriveConfig, load_config
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
from portmargin.derive.pmrm2 import DeriveResult, WorstAttribution, evaluate, evaluate_case

__all__ = [
    "BasisContingencyParams",
    "CollateralHaircuts",
    "CollateralHolding",
    "DeriveBook",
    "DeriveCase",
    "DeriveConfig",
    "DeriveMethod",
    "DerivePortfolio",
    "DeriveResult",
    "DeriveSubaccount",
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
    "WorstAttribution",
    "evaluate",
    "evaluate_case",
    "load_case",
    "load_config",
    "map_book",
    "margin_case",
    "to_margin_result",
]
