"""Resolving ``--model`` names for the back-test: VaR models on the back-test's own history.

A shipped VaR model name (``var``, ``var-hs``, ...) or a VaR model file (``family = "var"``)
is loaded on the history the back-test replays (so its scenarios on day ``t`` come from the
same data as the realised losses, and never from after ``t``); anything else goes through
:func:`portmargin.methods.load_method` (scenario models, rule sets, model files).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from portmargin.methods import Method, load_method
from portmargin.var.config import is_var_file, shipped_var_models
from portmargin.var.history import History
from portmargin.var.model import load_var_model

__all__ = ["resolve_method", "resolve_methods"]


def resolve_method(
    name: str, history: History, *, params_file: str | None = None, cross: bool | None = None
) -> Method:
    """The method ``name`` (module docstring).

    Raises
    ------
    ParameterError
        For an unknown name or an invalid file (one line).
    """
    if name in shipped_var_models() or is_var_file(name):
        return load_var_model(name, params_file=params_file, cross=cross, history=history)
    return load_method(name, params_file=params_file, cross=cross)


def resolve_methods(
    names: Sequence[str], history: History, *, params_file: str | None = None
) -> list[tuple[str, Method]]:
    """``(label, method)`` for each name; a file's label is its stem, repeated labels numbered."""
    out: list[tuple[str, Method]] = []
    seen: dict[str, int] = {}
    for name in names:
        method = resolve_method(name, history, params_file=params_file)
        label = Path(name).stem if Path(name).suffix.lower() == ".toml" else name
        if label in seen:
            seen[label] += 1
            label = f"{label}#{seen[label]}"
        else:
            seen[label] = 1
        out.append((label, method))
    return out
