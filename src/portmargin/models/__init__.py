"""Margin models: parameter files, scenario grids and the shared margin pipeline."""

from portmargin.models import deribit_charges, span, tims
from portmargin.models.config import ModelParams, available_models, load_model_params
from portmargin.models.engine import (
    CHARGES,
    CREDITS,
    ChargeContext,
    CreditContext,
    MarginModel,
    load_model,
)
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
