"""VaR and expected-shortfall margin models on the daily history of BTC and ETH.

* :mod:`portmargin.var.history`: the daily closes and DVOL (:class:`History`; the shipped
  file and user CSVs, validated);
* :mod:`portmargin.var.simulation`: joint scenario moves (historical, filtered historical,
  Monte Carlo) and the engine's scenario sets;
* :mod:`portmargin.var.config`: the VaR model file (``family = "var"``), its schema;
* :mod:`portmargin.var.model`: :class:`VarModel`, a
  :class:`~portmargin.models.MarginModel` whose scenario sets come from the history, so the
  session, explain, batch and what-if paths are the scenario models' own.

:func:`register` makes the shipped VaR models (``var``, ``var-hs``, ``var-mc``,
``var-bootstrap``, ``var-apc``, ``var-buffer``) loadable by name through
:func:`portmargin.methods.load_method` (:func:`portmargin.methods.register_method`); importing
the package does not register them, so the method list changes only where the caller asks.
Methodology, formulas and sources: ``docs/methodology/var.md``.
"""

from __future__ import annotations

from portmargin.var.config import VarParams, is_var_file, load_var_params, shipped_var_models
from portmargin.var.history import History, load_history, parse_history, shipped_history
from portmargin.var.model import VarModel, load_var_model
from portmargin.var.simulation import FactorMoves, scenario_moves, scenario_set, stress_moves

__all__ = [
    "FactorMoves",
    "History",
    "VarModel",
    "VarParams",
    "is_var_file",
    "load_history",
    "load_var_model",
    "load_var_params",
    "parse_history",
    "register",
    "scenario_moves",
    "scenario_set",
    "shipped_history",
    "shipped_var_models",
    "stress_moves",
]


def register() -> None:
    """Make every shipped VaR model loadable by name through :func:`portmargin.methods.load_method`.

    Idempotent. The description shown by ``portmargin models`` is the file's own.
    """
    from portmargin.methods import MethodInfo, register_method

    for name in shipped_var_models():
        spec = load_var_params(name)

        def loader(
            params_file: str | None,
            cross: bool | None,  # noqa: FBT001 (the register_method loader signature)
            _name: str = name,
        ) -> VarModel:
            return load_var_model(_name, params_file=params_file, cross=cross)

        register_method(MethodInfo(name, "var", spec.description), loader)
