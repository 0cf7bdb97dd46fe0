"""Scenario-based margin models: parameter files, scenario grids and the one pipeline.

Stage 1 (book → scenario P&L per pool and underlying) is :mod:`portmargin.models.session`,
stage 2 (aggregation, charges, credits, requirements) :mod:`portmargin.models.engine`, and
:class:`MarginModel` (:mod:`portmargin.models.model`) the configured method on top of them.
"""

from portmargin.models import deribit_charges, span, tims
from portmargin.models.config import ModelParams, available_models, load_model_params
from portmargin.models.engine import CHARGES, CREDITS, ChargeContext, CreditContext
from portmargin.models.model import MarginModel, load_model
from portmargin.models.result import MarginResult

__all__ = [
    "CHARGES",
    "CREDITS",
    "ChargeContext",
    "CreditContext",
    "MarginModel",
    "MarginResult",
    "ModelParams",
    "available_models",
    "deribit_charges",
    "load_model",
    "load_model_params",
    "span",
    "tims",
]
