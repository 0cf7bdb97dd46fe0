"""Helpers shared by the charge modules: typed parameters, per-row groupings, pool conversion."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.errors import ParameterError
from portmargin.instruments import InstrumentKind
from portmargin.models.config import ChargeParams
from portmargin.models.engine import ChargeContext
from portmargin.risk import KIND_CODES

__all__ = ["group_matrix", "params_of", "pool_per_underlying_unit", "project", "rows_kind"]

_C = TypeVar("_C", bound=ChargeParams)


def params_of(params: ChargeParams, schema: type[_C]) -> _C:
    """``params`` as the schema of its kind (the engine passes each charge its own entry).

    Raises
    ------
    ParameterError
        If ``params`` is not a ``schema`` (a charge called with another kind's parameters).
    """
    if not isinstance(params, schema):
        raise ParameterError(
            f"charge {params.kind}: needs {schema.__name__}, got {type(params).__name__}"
        )
    return params


def pool_per_underlying_unit(ctx: ChargeContext) -> float:
    """Pool-currency value of one unit of the underlying at the index (``S / usd_rate``)."""
    return ctx.market.index_price(ctx.risk.table.underlying) / ctx.usd_rate


def rows_kind(ctx: ChargeContext, kind: InstrumentKind) -> BoolArray:
    """Mask over the pool's rows: instruments of ``kind``."""
    out: BoolArray = ctx.risk.table.kind[ctx.rows] == KIND_CODES[kind]
    return out


def group_matrix(labels: IntArray, n_groups: int, values: FloatArray) -> FloatArray:
    """``M[i, g] = values[i]`` if row ``i`` is in group ``g`` else 0, shape (n_rows, n_groups)."""
    out = np.zeros((labels.shape[0], n_groups))
    out[np.arange(labels.shape[0]), labels] = values
    return out


def project(quantities: Any, matrix: FloatArray) -> FloatArray:
    """``quantities @ matrix`` as a dense (n_accounts, k) array (dense or sparse quantities)."""
    out = np.asarray(quantities @ matrix, dtype=np.float64)
    return out.reshape(-1, matrix.shape[1])
