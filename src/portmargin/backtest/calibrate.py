r"""Calibrating a grid model's scan ranges and vol shocks from the daily history.

For each underlying, two factors: the spot (daily log return ``x^S``) and the implied-vol
level (daily ``x^V = Δ ln DVOL``). Their **h-day log moves** over overlapping windows,
``X_t = Σ_{k<h} x_{t+k}``, give three estimates of each tail at confidence ``α``
(``Q_p`` = the empirical ``p``-quantile, NumPy's ``inverted_cdf``, Hyndman & Fan type 1):

* **long look-back** (unfiltered, every day of the look-back, stress included):
  ``Q_{1−α}(X)``, ``Q_α(X)``;
* **EWMA** (filtered historical simulation, as :mod:`portmargin.var.simulation`):
  ``σ̂_T·Q_p(Σ_{k<h} z_{t+k})`` with ``z = x/σ_t``, λ = 0.94, ``σ̂_T`` today's forecast;
* **stress** (unfiltered, the most volatile 365-day window of the factor in the look-back,
  by mean squared daily move): ``Q_{1−α}``, ``Q_α`` over that window.

Each side takes the largest magnitude of the three (``method = "max"``, the recipe
``PSR_final = max(PSR_filtered, PSR_stress, PSR_floor)``; ``"long"``, ``"ewma"`` or
``"stress"`` take that estimate alone), and becomes a fraction of the price or of the vol::

    down  = 1 − e^{min(Q_low)}        up = e^{max(Q_high)} − 1       (price; vol alike)

Mapped to the model file's keys (docs/models.md):

* ``span16``: ``price_range = max(down, up)`` (SPAN's PSR is symmetric), ``vol_up``,
  ``vol_down`` (the relative VSR);
* ``deribit``: ``price_range = max(down, up)``, ``vol_up``, ``vol_down`` (at the 30-day
  pivot, as DVOL);
* ``tims10``: ``price_range = down``, ``price_range_up = up`` (no vol scenarios).

A marginal quantile is not a portfolio quantile: a grid takes the worst case over a price ×
vol rectangle, so the result is back-tested (:mod:`portmargin.backtest.runner`) beside the
shipped parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np

from portmargin._types import FloatArray
from portmargin.errors import InputError, ParameterError
from portmargin.models.config import ModelParams, load_model_params
from portmargin.var.history import History
from portmargin.var.simulation import ewma_variance

__all__ = [
    "METHODS",
    "Calibration",
    "FactorEvidence",
    "calibrate",
    "write_calibration",
]

Factor = Literal["spot", "vol"]
Method = Literal["max", "long", "ewma", "stress"]
"""Which estimate sets the tails: the largest of the three (default), or one of them."""
METHODS: dict[str, Method] = {"max": "max", "long": "long", "ewma": "ewma", "stress": "stress"}
_STRESS_DAYS = 365


@dataclass(frozen=True, slots=True)
class Tail:
    """One estimate of a factor's two tails: h-day log-move quantiles and the data behind."""

    low: float
    high: float
    n: int
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class FactorEvidence:
    """The three estimates of one factor and the chosen fractional shocks."""

    underlying: str
    factor: Factor
    long: Tail
    ewma: Tail
    stress: Tail
    sigma_forecast: float
    down: float
    up: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""

        def tail(t: Tail) -> dict[str, Any]:
            return {
                "low": t.low,
                "high": t.high,
                "n": t.n,
                "from": t.start.isoformat(),
                "to": t.end.isoformat(),
            }

        return {
            "underlying": self.underlying,
            "factor": self.factor,
            "long_lookback": tail(self.long),
            "ewma": {**tail(self.ewma), "sigma_forecast_daily": self.sigma_forecast},
            "stress": tail(self.stress),
            "down": self.down,
            "up": self.up,
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    """A calibration of ``model`` (its grid's keys per underlying) with its evidence."""

    model: str
    grid: str
    confidence: float
    horizon_days: int
    as_of: date
    lookback_days: int
    ewma_lambda: float
    evidence: tuple[FactorEvidence, ...]
    values: dict[str, dict[str, float]]
    shipped: dict[str, dict[str, float]]
    method: Method = "max"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "model": self.model,
            "grid": self.grid,
            "confidence": self.confidence,
            "horizon_days": self.horizon_days,
            "as_of": self.as_of.isoformat(),
            "lookback_days": self.lookback_days,
            "ewma_lambda": self.ewma_lambda,
            "method": self.method,
            "evidence": [e.to_dict() for e in self.evidence],
            "calibrated": self.values,
            "shipped": self.shipped,
        }


def _quantile(a: FloatArray, p: float) -> float:
    return float(np.quantile(a, p, method="inverted_cdf"))


def _h_sums(x: FloatArray, h: int) -> FloatArray:
    out: FloatArray = np.convolve(x, np.ones(h), mode="valid")
    return out


def _factor(
    history: History, und: str, factor: Factor, as_of: date, lookback_days: int
) -> tuple[FloatArray, int]:
    """Daily moves of the factor over the look-back (finite part) and the first row."""
    t = history.index(as_of)
    x = history.log_returns(und) if factor == "spot" else history.dvol_log_changes(und)
    lo = max(t - lookback_days + 1, 1)
    seg = x[lo : t + 1]
    ok = np.isfinite(seg)
    if not ok.any():
        raise InputError(f"{history.source}: {und} has no {factor} moves up to {as_of}")
    first = int(np.flatnonzero(ok)[0])
    if not ok[first:].all():
        raise InputError(f"{history.source}: {und} {factor}: a gap in the data before {as_of}")
    return seg[first:], lo + first


def _evidence(
    history: History,
    und: str,
    factor: Factor,
    *,
    confidence: float,
    horizon_days: int,
    as_of: date,
    lookback_days: int,
    ewma_lambda: float,
    burn_in: int,
    method: Method = "max",
) -> FactorEvidence:
    x, first = _factor(history, und, factor, as_of, lookback_days)
    h = horizon_days
    if x.size < max(burn_in + 30, _STRESS_DAYS):
        raise InputError(
            f"{history.source}: {und} {factor}: {x.size} days up to {as_of}, too few to calibrate"
        )
    lo_p, hi_p = 1.0 - confidence, confidence
    day = history.dates
    end = as_of
    moves = _h_sums(x, h)
    long = Tail(_quantile(moves, lo_p), _quantile(moves, hi_p), moves.size, day[first], end)
    var = ewma_variance(x, ewma_lambda, float(np.mean(x[:burn_in] ** 2)))
    z = x[burn_in:] / np.sqrt(var[burn_in:-1])
    sig = math.sqrt(float(var[-1]))
    zh = _h_sums(z, h)
    ewma = Tail(
        sig * _quantile(zh, lo_p), sig * _quantile(zh, hi_p), zh.size, day[first + burn_in], end
    )
    ms = np.convolve(x**2, np.ones(_STRESS_DAYS), mode="valid")
    s = int(np.argmax(ms))
    sm = _h_sums(x[s : s + _STRESS_DAYS], h)
    stress = Tail(
        _quantile(sm, lo_p),
        _quantile(sm, hi_p),
        sm.size,
        day[first + s],
        day[first + s + _STRESS_DAYS - 1],
    )
    chosen = {"long": (long,), "ewma": (ewma,), "stress": (stress,)}.get(
        method, (long, ewma, stress)
    )
    low = min(t.low for t in chosen)
    high = max(t.high for t in chosen)
    return FactorEvidence(
        und, factor, long, ewma, stress, sig, -math.expm1(min(low, 0.0)), math.expm1(max(high, 0.0))
    )


def calibrate(
    model: str,
    history: History,
    *,
    confidence: float = 0.99,
    horizon_days: int = 2,
    as_of: date | None = None,
    lookback_days: int = 3650,
    ewma_lambda: float = 0.94,
    burn_in: int = 30,
    underlyings: Sequence[str] = ("BTC", "ETH"),
    method: Method = "max",
) -> Calibration:
    """Calibrate ``model``'s grid keys (module docstring) as of ``as_of`` (default: last day).

    Raises
    ------
    InputError
        Too little history, an unknown underlying, bad confidence or horizon.
    ParameterError
        For an unknown model or a grid without scan ranges.
    """
    if not 0.5 < confidence < 1.0:
        raise InputError(f"--confidence {confidence!r}: must be in (0.5, 1)")
    if not 1 <= horizon_days <= 30:
        raise InputError(f"--horizon {horizon_days}: must be 1 to 30 days")
    if not 0.5 < ewma_lambda < 1.0:
        raise InputError(f"--lambda {ewma_lambda!r}: must be in (0.5, 1)")
    params = load_model_params(model)
    grid = params.grid
    if grid not in ("span16", "deribit", "tims10"):
        raise ParameterError(f"model {model}: grid {grid!r} has no scan ranges to calibrate")
    day = as_of or history.last
    evidence: list[FactorEvidence] = []
    values: dict[str, dict[str, float]] = {}
    shipped: dict[str, dict[str, float]] = {}
    for und in underlyings:
        history.require(und)
        kw: dict[str, Any] = {
            "confidence": confidence,
            "horizon_days": horizon_days,
            "as_of": day,
            "lookback_days": lookback_days,
            "ewma_lambda": ewma_lambda,
            "burn_in": burn_in,
            "method": method,
        }
        spot = _evidence(history, und, "spot", **kw)
        evidence.append(spot)
        u = params.underlying(und)
        if grid == "tims10":
            values[und] = {"price_range": _r(spot.down), "price_range_up": _r(spot.up)}
            shipped[und] = {
                "price_range": u.price_range,
                "price_range_up": u.price_range_up
                if u.price_range_up is not None
                else u.price_range,
            }
            continue
        vol = _evidence(history, und, "vol", **kw)
        evidence.append(vol)
        values[und] = {
            "price_range": _r(max(spot.down, spot.up)),
            "vol_up": _r(vol.up),
            "vol_down": _r(min(vol.down, 1.0)),
        }
        shipped[und] = {"price_range": u.price_range, "vol_up": u.vol_up, "vol_down": u.vol_down}
    return Calibration(
        model,
        grid,
        confidence,
        horizon_days,
        day,
        lookback_days,
        ewma_lambda,
        tuple(evidence),
        values,
        shipped,
        method,
    )


_METHOD_TEXT = {
    "max": "the largest of the long look-back (unfiltered), EWMA-filtered and the most "
    "volatile 365 days (stress)",
    "long": "the long look-back, unfiltered",
    "ewma": "EWMA-filtered moves scaled to today's volatility",
    "stress": "the most volatile 365 days of the look-back",
}


def _r(x: float) -> float:
    """Rounded up to 0.1 % (a scan range is never rounded below its estimate)."""
    return math.ceil(x * 1000.0 - 1e-9) / 1000.0


def calibration_toml(cal: Calibration, *, source: str) -> str:
    """The calibration as a ``--params`` override file, its evidence in comments."""
    lines = [
        f"# {cal.model} calibrated from history ({source}) by `portmargin calibrate`.",
        f"# Confidence {cal.confidence:g} per tail, {cal.horizon_days}-day moves, as of "
        f"{cal.as_of}, look-back up to {cal.lookback_days} days, EWMA lambda {cal.ewma_lambda:g}.",
        f"# Tails from: {_METHOD_TEXT[cal.method]}.",
        "# Schema: docs/models.md; method:",
        "# docs/methodology/var.md (calibration). Use: portmargin margin BOOK --model "
        f"{cal.model} --params THIS.toml",
        "",
    ]
    for und, keys in cal.values.items():
        lines.append(f"[underlyings.{und}]")
        for e in cal.evidence:
            if e.underlying != und:
                continue
            lines.append(
                f"# {e.factor}: h-day log-move quantiles low/high: long {e.long.low:+.4f}/"
                f"{e.long.high:+.4f} ({e.long.start}..{e.long.end}), EWMA {e.ewma.low:+.4f}/"
                f"{e.ewma.high:+.4f} (sigma {e.sigma_forecast:.4f}/day), stress "
                f"{e.stress.low:+.4f}/{e.stress.high:+.4f} ({e.stress.start}..{e.stress.end})"
            )
        for key, value in keys.items():
            old = cal.shipped[und].get(key)
            note = f"   # shipped {old:g}" if old is not None else ""
            lines.append(f"{key} = {value:g}{note}")
        lines.append("")
    return "\n".join(lines)


def write_calibration(cal: Calibration, path: Path, *, source: str) -> ModelParams:
    """Write the override file and load it over the model (the file is checked as it is).

    Raises
    ------
    InputError
        If the file cannot be written.
    ParameterError
        If the model refuses the values (e.g. a SPAN extreme move ``3·PSR ≥ 100 %``).
    """
    text = calibration_toml(cal, source=source)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"{path}: cannot write ({exc.strerror or exc.__class__.__name__})"
        ) from None
    return load_model_params(cal.model, overrides=path)
