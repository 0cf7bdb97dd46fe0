"""Margin models: parameter files, scenario grids and the shared margin pipeline."""

from portmargin.models.config import ModelParams, available_models, load_model_params
from portmargin.models.engine import CHARGES, ChargeContext, MarginModel, load_model
from portmargin.models.result import MarginResult

__all__ = [
    "CHARGES",
    "ChargeContext",
    "MarginModel",
    "MarginResult",
    "ModelParams",
    "available_models",
    "load_model",
    "load_model_params",
]
