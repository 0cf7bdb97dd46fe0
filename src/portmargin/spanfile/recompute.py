r"""Recompute a SPAN file's risk arrays from its own pricing inputs, and compare.

For each contract the file gives a price, a price scan range (money per contract, or a
percentage of the contract value), and for options a strike, vol, time to expiry, rate,
dividend yield and vol scan range; its scan points give the moves. portmargin's revaluation
kernel (:func:`portmargin.risk.scenario_values`) recomputes every array value, loss positive::

    futures, physicals   a_j = −p_j · PSR · w_j
    options              a_j = −(V_j − V_0) · CVF · w_j
        V_0 = B76(F, K, T, σ, e^{−rT})
        V_j = B76(F'_j, K, T − τ, σ + v_j·VSR, e^{−r(T−τ)})
        on a future (OOF):   F = U,              F'_j = U + p_j·PSR/CVF        (held)
        on a spot (OOP/OOE): F = U·e^{(r−q)T},   F'_j = (U + p_j·PSR/CVF)·e^{(r−q)(T−τ)}
                                                 (rolled; ``forward="held"`` keeps F·(1+m))

with ``p_j, v_j, w_j`` the scan point's price and vol multiples and weight, ``U`` the
underlying contract's price, ``τ`` the look-ahead (the file's, or given). The report gives
each contract's largest absolute difference and its ratio to the price scan range, the unit
CME states array tolerances in. European exercise is assumed (the file's pricing model code is
not interpreted: American options may differ by their early-exercise premium).

Source: CME, "Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html):
the risk array is the gain or loss "from the current point in time to a specific point in
time in the near future"; the rolled convention reproduces a clearing house's published
equity-option arrays (``docs/methodology/span-files.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from portmargin.errors import InputError
from portmargin.pricing import black76_price
from portmargin.risk import scenario_values
from portmargin.spanfile.model import Contract, SpanFile

__all__ = ["ArrayCheck", "RecomputeReport", "recompute_arrays"]

_VOL_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class ArrayCheck:
    """One contract's published and recomputed arrays (money per contract, loss positive)."""

    name: str
    published: tuple[float, ...]
    recomputed: tuple[float, ...]
    scan_range: float

    @property
    def max_abs_diff(self) -> float:
        """``max_j |published_j − recomputed_j|``."""
        return max(abs(a - b) for a, b in zip(self.published, self.recomputed, strict=True))

    @property
    def relative(self) -> float:
        """:attr:`max_abs_diff` as a fraction of the price scan range."""
        return self.max_abs_diff / self.scan_range if self.scan_range > 0 else math.inf


@dataclass(frozen=True, slots=True)
class RecomputeReport:
    """Every contract checked, those skipped (with the reason), and the convention used."""

    checks: tuple[ArrayCheck, ...]
    skipped: tuple[tuple[str, str], ...]
    lookahead_years: float
    forward: Literal["rolled", "held"]

    @property
    def worst(self) -> ArrayCheck | None:
        """The check with the largest difference relative to its price scan range."""
        return max(self.checks, key=lambda c: c.relative, default=None)

    @property
    def max_relative(self) -> float:
        """The largest difference as a fraction of the price scan range (0 with no check)."""
        worst = self.worst
        return 0.0 if worst is None else worst.relative

    def summary(self) -> str:
        """One line: how many arrays were recomputed and the largest difference."""
        worst = self.worst
        if worst is None:
            return f"no array recomputed ({len(self.skipped)} skipped)"
        return (
            f"{len(self.checks)} arrays recomputed ({len(self.skipped)} skipped), look-ahead "
            f"{self.lookahead_years:.6g} y, forward {self.forward}: largest difference "
            f"{worst.max_abs_diff:.6g} ({worst.relative:.3%} of the price scan range) on "
            f"{worst.name}"
        )


def recompute_arrays(
    file: SpanFile,
    *,
    lookahead_years: float | None = None,
    forward: Literal["rolled", "held"] = "rolled",
    names: Iterable[str] | None = None,
) -> RecomputeReport:
    """Recompute the risk arrays of ``file`` (module docstring).

    Parameters
    ----------
    file
        The SPAN file.
    lookahead_years
        ``τ``; default the file's (PA2 type B, XML ``lookAheadYears``).
    forward
        ``"rolled"`` (options on a spot roll the shifted spot to ``T − τ``) or ``"held"``.
    names
        Only these contracts (default: every contract).

    Raises
    ------
    InputError
        If neither the file nor the caller gives a look-ahead time.
    """
    tau = lookahead_years if lookahead_years is not None else file.lookahead_years
    if tau is None or not (math.isfinite(tau) and tau >= 0):
        raise InputError(
            f"{file.source}: the file states no look-ahead time: pass lookahead_years "
            "(one trading day is 1/252)"
        )
    contracts = (
        [file.contract(n) for n in names] if names is not None else list(file.contracts.values())
    )
    checks: list[ArrayCheck] = []
    skipped: list[tuple[str, str]] = []
    for c in contracts:
        out = _one(file, c, tau, forward)
        if isinstance(out, str):
            skipped.append((c.name, out))
        else:
            checks.append(out)
    return RecomputeReport(tuple(checks), tuple(skipped), tau, forward)


def _scan_money(c: Contract, price: float, cvf: float) -> float | None:
    if c.price_scan is not None and c.price_scan > 0:
        return c.price_scan
    if c.price_scan_pct is not None and c.price_scan_pct > 0:
        return c.price_scan_pct * price * cvf
    return None


def _one(file: SpanFile, c: Contract, tau: float, forward: str) -> ArrayCheck | str:
    p = np.array([pt.price for pt in file.points])
    v = np.array([pt.vol for pt in file.points])
    w = np.array([pt.weight for pt in file.points])
    if len(c.array) != len(file.points):
        return "array length differs from the scan points"
    if not c.is_option:
        psr = _scan_money(c, c.price, c.cvf)
        if psr is None:
            return "no price scan range"
        return ArrayCheck(c.name, c.array, tuple((-p * psr * w).tolist()), psr)
    und = file.contracts.get(c.underlying or "")
    if und is None:
        return "no underlying contract"
    if c.vol is None or c.vol <= 0 or c.time is None or c.time <= 0 or c.strike is None:
        return "missing vol, time to expiry or strike"
    cvf_und = und.cvf if und.cvf > 0 else c.cvf
    psr = _scan_money(c, und.price, cvf_und)
    if psr is None or und.price <= 0 or cvf_und <= 0:
        return "no price scan range or underlying price"
    if c.vol_scan is not None:
        vsr = c.vol_scan
    elif c.vol_scan_pct is not None:
        vsr = c.vol_scan_pct * c.vol
    else:
        return "no vol scan range"
    r = c.rate or 0.0
    q = c.dividend_yield or 0.0
    t = c.time
    on_future = c.kind == "OOF"
    fwd = und.price if on_future else und.price * math.exp((r - q) * t)
    carry = 0.0 if on_future or forward == "held" else r - q
    moves = (p * psr / cvf_und / und.price)[None, :]
    sigma = np.maximum(c.vol + v * vsr, _VOL_FLOOR)[None, :]
    strike = float(c.strike)
    call = np.array([c.right == "C"])
    df = math.exp(-r * t)
    v0 = float(black76_price(fwd, strike, t, c.vol, c.right == "C", df=df))
    vj = scenario_values(
        np.array([fwd]),
        np.array([strike]),
        np.array([t]),
        sigma,
        call,
        np.array([df]),
        moves,
        lookahead_years=tau,
        roll_carry=np.array([carry]),
    )[0]
    return ArrayCheck(c.name, c.array, tuple((-(vj - v0) * c.cvf * w).tolist()), psr)
