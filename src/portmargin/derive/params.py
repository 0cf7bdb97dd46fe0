"""Parameters of Derive's PMRM_2 portfolio-margin manager.

Every field is named after its key in the published case files
(``derivexyz/v2-core:test/risk-managers/unit-tests/PMRM_2/portfolio_cases/*.json``), which in
turn map onto the Solidity structs in ``derivexyz/v2-core:src/interfaces/IPMRMLib_2.sol``
@ ``7736900d395703c4f675376caa4c315402943831``. See ``docs/methodology/derive.md``.

All objects are frozen and validate themselves; an invalid value raises
:class:`portmargin.errors.ParameterError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum

from portmargin.errors import ParameterError

__all__ = [
    "BasisContingencyParams",
    "MarginParams",
    "OtherContingencyParams",
    "PMRM2Params",
    "ScenarioKind",
    "SkewShockParams",
    "StressScenario",
    "VolShockDirection",
    "VolShockParams",
]


class VolShockDirection(Enum):
    """Vol leg of a scenario (``VolShockDirection`` in the case files)."""

    UP = "Up"
    DOWN = "Down"
    NONE = "None"
    LINEAR = "LINEAR"
    ABS = "ABS"

    @property
    def is_skew(self) -> bool:
        """Whether this is a skew (LINEAR or ABS) scenario, which follows §6, not §5."""
        return self in (VolShockDirection.LINEAR, VolShockDirection.ABS)


class ScenarioKind(Enum):
    """Family a scenario is reported in; a label only, it does not change the P&L formula."""

    REGULAR = "regular"
    TAIL = "tail"
    SKEW = "skew"


def _check_finite(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(f"{type(obj).__name__}.{f.name}: must be finite, got {value!r}")


def _check_non_negative(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value < 0.0:
            raise ParameterError(f"{type(obj).__name__}.{name}: must be >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class StressScenario:
    """One configured scenario ``(x, dir, w)``.

    Attributes
    ----------
    spot_shock
        Spot multiplier ``x`` (1.18 = +18 %), ``SpotShock``. Must be > 0.
    direction
        Vol leg, ``VolShockDirection``.
    dampening
        Dampening factor ``w >= 0`` (``DampeningFactor``); may exceed 1.
    kind
        Reporting family (regular, tail or skew). Must be ``SKEW`` exactly for skew directions.
    """

    spot_shock: float
    direction: VolShockDirection
    dampening: float
    kind: ScenarioKind

    def __post_init__(self) -> None:
        _check_finite(self)
        if self.spot_shock <= 0.0:
            raise ParameterError(f"StressScenario.spot_shock: must be > 0, got {self.spot_shock!r}")
        _check_non_negative(self, "dampening")
        if (self.kind is ScenarioKind.SKEW) != self.direction.is_skew:
            raise ParameterError(
                f"StressScenario.kind: {self.kind.value!r} does not match direction "
                f"{self.direction.value!r} (skew kind iff LINEAR/ABS)"
            )


@dataclass(frozen=True, slots=True)
class VolShockParams:
    """Vol-shock parameters (``Parameters.VolShock``), §5.

    Attributes
    ----------
    vol_range_up, vol_range_down
        ``VOLRANGEUP`` / ``VOLRANGEDOWN``: relative vol shock at 30 days.
    short_term_power, long_term_power
        ``SHORTTERMPOWER`` (expiry <= 30 days) / ``LONGTERMPOWER`` exponents of the term scaling.
    dte_floor_days
        ``DTE_FLOOR`` in days (86,400 s each).
    min_vol_up_shock
        ``MIN_VOL_EVAL_SHOCKED``: absolute floor of an up-shocked vol (0.45 = 45 %).
    """

    vol_range_up: float
    vol_range_down: float
    short_term_power: float
    long_term_power: float
    dte_floor_days: float
    min_vol_up_shock: float

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_non_negative(
            self,
            "vol_range_up",
            "vol_range_down",
            "short_term_power",
            "long_term_power",
            "dte_floor_days",
            "min_vol_up_shock",
        )


@dataclass(frozen=True, slots=True)
class MarginParams:
    """Loss factors and static discount (``Parameters.Margin``), §4 and §9.

    Attributes
    ----------
    im_loss_factor, mm_loss_factor
        ``IM_LOSS_FACTOR`` / ``MM_LOSS_FACTOR``: multipliers of ``minSPAN``.
    long_rate_mult, long_rate_add, short_rate_mult, short_rate_add
        ``LONG/SHORT_RATE_MULTSCALE`` and ``LONG/SHORT_RATE_ADDSCALE``.
    long_base_discount, short_base_discount
        ``BASE_STATIC_DISCOUNT`` (long) and ``BASE_STATIC_DISCOUNT_NEG`` (short).
    """

    im_loss_factor: float
    mm_loss_factor: float
    long_rate_mult: float
    long_rate_add: float
    short_rate_mult: float
    short_rate_add: float
    long_base_discount: float
    short_base_discount: float

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_non_negative(self, *(f.name for f in fields(self)))


@dataclass(frozen=True, slots=True)
class BasisContingencyParams:
    """Forward (basis) contingency (``Parameters.BasisContingency``), §7.

    Attributes
    ----------
    spot_up, spot_down
        ``SCENARIO_SPOT_UP`` / ``SCENARIO_SPOT_DOWN`` multipliers (1.045 / 0.955).
    add_factor, mult_factor
        ``BASIS_CONT_ADD_FACTOR`` / ``BASIS_CONT_MULT_FACTOR``: scale ``add + mult·τ``.
    """

    spot_up: float
    spot_down: float
    add_factor: float
    mult_factor: float

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_non_negative(self, "spot_up", "spot_down", "add_factor", "mult_factor")


@dataclass(frozen=True, slots=True)
class OtherContingencyParams:
    """Peg, confidence, perp and option contingencies (``Parameters.OtherContingency``), §8-9.

    Attributes
    ----------
    peg_loss_threshold, peg_loss_factor
        ``PEG_LOSS_THRESHOLD`` / ``PEG_LOSS_FACTOR``: IM factor add-on below the peg threshold.
    conf_threshold, conf_margin
        ``CONF_THRESHOLD`` / ``CONF_MARGIN``: confidence contingency.
    mm_perp_pct, im_perp_pct
        ``MM_PERP_PERCENT`` / ``IM_PERP_PERCENT`` of perp notional at spot (IM on top of MM).
    mm_option_pct, im_option_pct
        ``MM_OPTION_PERCENT`` / ``IM_OPTION_PERCENT`` of naked short notional at spot.
    """

    peg_loss_threshold: float
    peg_loss_factor: float
    conf_threshold: float
    conf_margin: float
    mm_perp_pct: float
    im_perp_pct: float
    mm_option_pct: float
    im_option_pct: float

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_non_negative(self, *(f.name for f in fields(self)))


@dataclass(frozen=True, slots=True)
class SkewShockParams:
    """Skew scenario parameters (``Parameters.SkewShock``), §6.

    Attributes
    ----------
    linear_base_cap, linear_c_base
        ``LINEAR_SCALE_CAP`` / ``LINEAR_CBASE``: ``cap = cBase·√τ + baseCap`` for LINEAR.
    abs_base_cap, abs_c_base
        ``ABS_SCALE_CAP`` / ``ABS_CBASE``: the same for ABS.
    min_k_star, width_scale
        ``MIN_K_STAR`` / ``MIN_WIDTH_SCALE``.
    vol_param_static, vol_param_scale
        ``VOL_PARAM_STATIC`` / ``VOL_PARAM_SCALE``:
        ``k* = max(minKStar, widthScale·√τ·(static + scale·√τ))``.
    """

    linear_base_cap: float
    linear_c_base: float
    abs_base_cap: float
    abs_c_base: float
    min_k_star: float
    width_scale: float
    vol_param_static: float
    vol_param_scale: float

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_non_negative(self, "min_k_star", "width_scale")


@dataclass(frozen=True, slots=True)
class PMRM2Params:
    """The full PMRM_2 parameter set: scenarios plus the five parameter blocks.

    Attributes
    ----------
    scenarios
        Configured scenarios, in order (order decides ties in the worst scenario).
    vol_shock, margin, basis, other, skew
        Parameter blocks; see each class.
    """

    scenarios: tuple[StressScenario, ...]
    vol_shock: VolShockParams
    margin: MarginParams
    basis: BasisContingencyParams
    other: OtherContingencyParams
    skew: SkewShockParams

    def __post_init__(self) -> None:
        for direction in (VolShockDirection.LINEAR, VolShockDirection.ABS):
            count = sum(1 for s in self.scenarios if s.direction is direction)
            if count > 1:
                raise ParameterError(
                    f"PMRM2Params.scenarios: at most one {direction.value} scenario, got {count}"
                )
