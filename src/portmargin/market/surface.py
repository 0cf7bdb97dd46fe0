r"""Implied-volatility surface used for options without a quote.

Per expiry the smile is a piecewise-linear function of log-moneyness ``k = ln(K/F)`` through
the quoted nodes, flat beyond the outermost quotes. Across expiries the **total variance**
``w(k, T) = σ(k, T)²·T`` is interpolated linearly in ``T`` at fixed ``k`` (calendar-arbitrage
free when the slices are); before the first and after the last expiry the nearest slice's
volatility is used (flat extrapolation in vol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from portmargin._types import FloatArray
from portmargin.errors import MarketDataError

__all__ = ["SmileSlice", "VolSurface"]


@dataclass(frozen=True, slots=True)
class SmileSlice:
    """One expiry's smile: sorted log-moneyness nodes and their vols.

    Attributes
    ----------
    T
        Year fraction (ACT/365) to the slice's expiry, > 0.
    k
        Sorted, unique log-moneyness nodes ``ln(K/F)`` (a read-only copy).
    vol
        Annualised vols at the nodes (a read-only copy).
    """

    T: float
    k: FloatArray
    vol: FloatArray

    def __post_init__(self) -> None:
        k = np.array(self.k, dtype=np.float64)
        vol = np.array(self.vol, dtype=np.float64)
        if not self.T > 0 or k.ndim != 1 or k.size == 0 or k.shape != vol.shape:
            raise MarketDataError("smile slice needs T > 0 and matching, non-empty nodes")
        # Private read-only copies: a frozen value cannot be changed through its arrays.
        k.flags.writeable = False
        vol.flags.writeable = False
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "vol", vol)

    def at(self, k: FloatArray) -> FloatArray:
        """Vol at log-moneyness ``k`` (linear between nodes, flat beyond the wings)."""
        out: FloatArray = np.interp(k, self.k, self.vol)
        return out


@dataclass(frozen=True, slots=True)
class VolSurface:
    """A set of smile slices for one underlying, sorted by expiry."""

    slices: tuple[SmileSlice, ...]

    @classmethod
    def from_points(
        cls,
        T: Sequence[float] | FloatArray,
        k: Sequence[float] | FloatArray,
        vol: Sequence[float] | FloatArray,
    ) -> VolSurface:
        """Build from scattered quotes; equal ``(T, k)`` quotes (call and put) are averaged."""
        Ta = np.asarray(T, dtype=np.float64)
        ka = np.asarray(k, dtype=np.float64)
        va = np.asarray(vol, dtype=np.float64)
        keep = (Ta > 0) & np.isfinite(ka) & np.isfinite(va) & (va > 0)
        Ta, ka, va = Ta[keep], ka[keep], va[keep]
        slices = []
        for t in np.unique(Ta):
            sel = Ta == t
            ks, inv = np.unique(np.round(ka[sel], 12), return_inverse=True)
            vs = np.bincount(inv, weights=va[sel]) / np.bincount(inv)
            slices.append(SmileSlice(float(t), ks.astype(np.float64), vs.astype(np.float64)))
        return cls(tuple(slices))

    @property
    def is_empty(self) -> bool:
        """True when no quote was available to build the surface."""
        return not self.slices

    def vol(self, T: FloatArray, k: FloatArray) -> FloatArray:
        """Interpolated vol at year fractions ``T`` and log-moneyness ``k`` (same shape).

        Raises
        ------
        MarketDataError
            If the surface has no slices.
        """
        if self.is_empty:
            raise MarketDataError("no option quotes to build a volatility surface from")
        Ta = np.asarray(T, dtype=np.float64)
        ka = np.asarray(k, dtype=np.float64)
        times = np.array([s.T for s in self.slices])
        # Vol of every slice at every requested k: shape (n_slices, n).
        grid = np.stack([s.at(ka) for s in self.slices])
        idx = np.clip(np.searchsorted(times, Ta), 1, max(len(times) - 1, 1))
        if len(times) == 1:
            out1: FloatArray = grid[0]
            return out1
        cols = np.arange(ka.size)
        t0, t1 = times[idx - 1], times[idx]
        w0 = grid[idx - 1, cols] ** 2 * t0
        w1 = grid[idx, cols] ** 2 * t1
        frac = np.clip((Ta - t0) / (t1 - t0), 0.0, 1.0)
        w = w0 + frac * (w1 - w0)
        inside = np.sqrt(w / np.where(Ta > 0, Ta, 1.0))
        before = grid[0]
        after = grid[-1]
        out: FloatArray = np.where(Ta <= times[0], before, np.where(Ta >= times[-1], after, inside))
        return out
