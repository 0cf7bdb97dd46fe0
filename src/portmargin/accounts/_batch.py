r"""Margin many accounts at one market state with shared, cached risk arrays.

The expensive step of a margin run is the risk array: a full Black-76 revaluation of every
instrument under every scenario. :class:`BatchMargin` computes it **once per underlying** for
the union of the instruments any account holds (one vectorised call each) and hands each
account's rows to the engine, whose :meth:`MarginModel.margin` then only does the
``q @ RA`` products, aggregation and charges. Because it is the engine's own code path on
row-slices of the same arrays, the figures equal ``portmargin margin`` exactly (row values of
a risk array do not depend on which other rows are computed with them).

``arrays`` can be kept between calls (the monitor keeps them per underlying and recomputes
only the arrays of an underlying whose market moved).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from portmargin.accounts._account import (
    Account,
    AccountMargin,
    AccountSettings,
    finish,
    margin_usd,
)
from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import Instrument
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel
from portmargin.risk import InstrumentTable, RiskArray

__all__ = ["BatchMargin", "slice_risk_array"]


def _slice_fields(obj: Any, idx: np.ndarray[Any, Any], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
            out[f.name] = value[idx]
        elif isinstance(value, tuple) and len(value) == n and f.name == "instruments":
            out[f.name] = tuple(value[i] for i in idx.tolist())
        else:
            out[f.name] = value
    return out


def slice_risk_array(arr: RiskArray, rows: Sequence[int]) -> RiskArray:
    """The risk array of a subset of ``arr``'s instruments (rows in the given order)."""
    n = len(arr.table.instruments)
    idx = np.asarray(rows, dtype=np.int64)
    table = InstrumentTable(**_slice_fields(arr.table, idx, n))
    fields = _slice_fields(arr, idx, n)
    fields["table"] = table
    return RiskArray(**fields)


class _CachedModel(MarginModel):
    """The same model, taking risk-array rows from a per-underlying cache."""

    def __init__(self, base: MarginModel, cache: Mapping[str, RiskArray]) -> None:
        super().__init__(base.params, cross=base.cross)
        self._cache = cache
        self._rows = {
            und: {inst.name: r for r, inst in enumerate(arr.table.instruments)}
            for und, arr in cache.items()
        }

    def risk_arrays(
        self, instruments: Sequence[Instrument], market: MarketSnapshot
    ) -> dict[str, RiskArray]:
        groups: dict[str, list[Instrument]] = {}
        for inst in instruments:
            groups.setdefault(inst.underlying, []).append(inst)
        out: dict[str, RiskArray] = {}
        for und, insts in groups.items():
            rows = self._rows.get(und, {})
            if und in self._cache and all(x.name in rows for x in insts):
                out[und] = slice_risk_array(self._cache[und], [rows[x.name] for x in insts])
            else:
                out.update(super().risk_arrays(insts, market))
        return out


class BatchMargin:
    """Account margining under one model and one set of settings, many accounts per call."""

    def __init__(self, model: MarginModel, settings: AccountSettings) -> None:
        self.model = model
        self.settings = settings

    def risk_arrays(
        self,
        accounts: Sequence[Account],
        market: MarketSnapshot,
        *,
        underlyings: set[str] | None = None,
    ) -> dict[str, RiskArray]:
        """Risk arrays per underlying for every instrument any of ``accounts`` holds.

        Raises
        ------
        InputError
            For an instrument the market cannot resolve (naming the account).
        """
        insts: dict[str, Instrument] = {}
        for a in accounts:
            for name in a.positions:
                try:
                    inst = market.instrument(name)
                except PortmarginError as exc:
                    raise InputError(f"{a.account_id}: positions: {exc}") from None
                if underlyings is None or inst.underlying in underlyings:
                    insts[inst.name] = inst
        return self.model.risk_arrays(list(insts.values()), market)

    def evaluate(
        self,
        accounts: Sequence[Account],
        market: MarketSnapshot,
        arrays: MutableMapping[str, RiskArray] | None = None,
    ) -> list[AccountMargin]:
        """Margin every account (same order) on ``market``.

        Parameters
        ----------
        accounts
            The accounts.
        market
            The market state.
        arrays
            Cached risk arrays per underlying computed on ``market`` (missing ones are
            computed and, if the mapping is given, stored in it).
        """
        cache: MutableMapping[str, RiskArray] = {} if arrays is None else arrays
        needed = {market.instrument(n).underlying for a in accounts for n in a.positions} - set(
            cache
        )
        if needed:
            cache.update(self.risk_arrays(accounts, market, underlyings=needed))
        model = _CachedModel(self.model, cache)
        out: list[AccountMargin] = []
        for a in accounts:
            result = model.margin(a.portfolio(), market)
            out.append(finish(a, market, self.settings, margin_usd(result)))
        return out
