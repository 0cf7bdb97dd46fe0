"""Margin-model parameter files: versioned TOML, typed and validated on load.

A model file has top-level settings, two tables keyed by name (each with an optional
``default`` entry that named entries override field by field) and two arrays of tables,
one schema per ``kind``. The public contract, with every key, unit, range, default and
source, is ``docs/models.md``::

    name = "deribit"; version = "2024.1"; grid = "deribit" | "span16" | "tims10" | "custom"
    currency_mode = "segregated" | "cross";  collateral = "scenario" | "haircut"
    im_multiplier = 1.0;  mm_multiplier = 0.8
    [underlyings.default]  price_range, buckets_per_side, vol_up, vol_down, ...
    [underlyings.BTC]      overrides for BTC
    [currencies.BTC]       pnl_offset, max_offsetable_pnl, extended_dampener, haircut
    [[charges]]            kind = "roll_shock" | "delta_shock" | "span_*" | "tims_*"
    [[credits]]            kind = "span_inter_commodity" | "span_scanning_spread"
                           | "tims_product_group"

Every table forbids unknown keys, every number is finite and range-checked, and the
combinations are checked too (a grid the charges cannot run on, sub-tables naming an
underlying the file does not declare, spreads naming tiers that do not exist, ...), so a
loaded :class:`ModelParams` never fails at margin time. Charge code reads typed attributes:
``params_of(ctx.params, RollShockParams).for_key(pool).annualised_move_risk``.

``--params FILE`` is merged over the model (:func:`portmargin._toml.merge_by_kind`): tables
key by key, ``[[charges]]`` / ``[[credits]]`` entry by entry matched on ``kind``
(``remove = true`` drops one), and the merged result is validated again. The files applied
are recorded in :attr:`ModelParams.overrides` and shown by :attr:`ModelParams.label`.

Errors are :class:`~portmargin.errors.ParameterError` on one line, starting with the file
(``my.toml (over model deribit): charges[1] (delta_shock).m_incc: unknown key``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from portmargin._toml import merge_by_kind, parse_toml, read_toml
from portmargin.errors import ParameterError
from portmargin.instruments import STABLE_CURRENCIES
from portmargin.scenarios import VolShock, VolShockMode

__all__ = [
    "CHARGE_KINDS",
    "CREDIT_KINDS",
    "ChargeParams",
    "ChargeSpec",
    "CreditSpec",
    "CurrencyParams",
    "DeltaShockParams",
    "DeltaShockRates",
    "ExtraScenario",
    "InterSpread",
    "IntraSpread",
    "ModelParams",
    "PriceRangeTier",
    "ProductGroup",
    "RollShockParams",
    "RollShockRates",
    "ScanningSpread",
    "ShortOptionMinimumParams",
    "ShortOptionMinimumRates",
    "SpanInterParams",
    "SpanIntraParams",
    "SpanIntraRates",
    "SpanScanningSpreadParams",
    "SpanSpotParams",
    "SpanSpotRates",
    "TimsMinimumParams",
    "TimsMinimumRates",
    "TimsProductGroupParams",
    "UnderlyingParams",
    "available_models",
    "load_model_params",
]

_P = TypeVar("_P", bound=BaseModel)

_CODE = re.compile(r"[A-Z0-9][A-Z0-9_]*")
Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_]*$")]
"""An underlying or currency code as instruments spell it (upper case): ``BTC``, ``USD``."""
TableName = Annotated[str, StringConstraints(pattern=r"^(default|[A-Z0-9][A-Z0-9_]*)$")]
"""A key of ``[underlyings]`` / ``[currencies]``: ``default`` or a code."""

_MAX_AMOUNT = 1e15  # USD amounts: far above any account, far below float overflow
_MAX_DAYS = 36_500.0  # 100 years


def _num(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A finite float field (ints accepted, bools and strings refused) with bounds."""
    return Field(default, ge=ge, gt=gt, le=le, lt=lt, strict=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0.0, le=1.0, strict=True, allow_inf_nan=False)]
Days = Annotated[float, Field(gt=0.0, le=_MAX_DAYS, strict=True, allow_inf_nan=False)]
Move = Annotated[float, Field(gt=-1.0, le=100.0, strict=True, allow_inf_nan=False)]
Ratio = Annotated[float, Field(gt=0.0, le=1e6, strict=True, allow_inf_nan=False)]
Tier = Annotated[int, Field(ge=0, le=100, strict=True)]
VolShift = Annotated[float, Field(ge=-10.0, le=10.0, strict=True, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0.0, le=100.0, strict=True, allow_inf_nan=False)]

_CUSTOM_KEYS = ("price_moves", "vol_shifts", "move_weights", "extra_scenarios")
"""Underlying keys read only by the ``custom`` grid."""


class _KeyError(ValueError):
    """A validation failure at ``path`` below the model being validated."""

    def __init__(self, path: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------------------
# Underlyings and currencies


class PriceRangeTier(_Strict):
    """A price scan range for expiries from ``from_days`` days on (SPAN: per contract month)."""

    from_days: float = _num(..., ge=0.0, le=_MAX_DAYS)
    price_range: float = _num(..., ge=1e-4, lt=1.0)


class ExtraScenario(_Strict):
    """One scenario of the ``custom`` grid beyond its moves × vol shifts (a venue's tails)."""

    move: float = _num(..., gt=-1.0, le=100.0)
    vol_shift: float = _num(0.0, ge=-10.0, le=10.0)
    weight: float = _num(1.0, ge=0.0, le=100.0)


class UnderlyingParams(_Strict):
    """Scenario parameters of one underlying (fractions are decimals: 0.16 = 16 %).

    Each grid reads some of them (``docs/models.md``): ``deribit`` the price range, buckets,
    vol shock and extended moves; ``span16`` the price and vol scan ranges, extreme move,
    cover fraction, look-ahead and price-range tiers; ``tims10`` the down/up ranges;
    ``custom`` its moves, vol shifts, weights and extra scenarios.
    """

    price_range: float = _num(0.15, ge=1e-4, lt=1.0)
    buckets_per_side: int = Field(default=4, ge=1, le=50, strict=True)
    vol_up: float = _num(0.5, ge=0.0, le=10.0)
    vol_down: float = _num(0.25, ge=0.0, le=10.0)
    vol_mode: Literal["relative", "absolute"] = "relative"
    short_term_power: float = _num(0.0, ge=0.0, le=2.0)
    long_term_power: float = _num(0.0, ge=0.0, le=2.0)
    pivot_days: float = _num(30.0, ge=0.01, le=3650.0)
    dte_floor_days: float = _num(1.0, ge=0.01, le=3650.0)
    min_vol_up: float = _num(0.0, ge=0.0, le=10.0)
    min_vol: float = _num(0.0, ge=0.0, le=10.0)
    extended_moves: tuple[Move, ...] = Field(default=(), max_length=50)
    extended_factor: float = _num(1.0, ge=0.0, le=10.0)
    price_range_up: float | None = _num(None, ge=1e-4, lt=10.0)
    extreme_multiplier: float = _num(3.0, ge=0.0, le=20.0)
    cover_fraction: float = _num(0.33, ge=0.0, le=1.0)
    lookahead_days: float = _num(0.0, ge=0.0, le=30.0)
    lookahead_basis: int = Field(default=365, strict=True)
    """Days per year of the look-ahead: 365 (calendar days) or 252 (trading days)."""
    pnl_base: Literal["model", "mark"] = "model"
    """Scenario P&L from the model value at the mark vol (SPAN) or from the mark price."""
    price_range_tiers: tuple[PriceRangeTier, ...] = Field(default=(), max_length=20)
    price_moves: tuple[Move, ...] = Field(default=(), max_length=200)
    vol_shifts: tuple[VolShift, ...] = Field(default=(0.0,), min_length=1, max_length=20)
    move_weights: tuple[Weight, ...] | None = Field(default=None, max_length=200)
    extra_scenarios: tuple[ExtraScenario, ...] = Field(default=(), max_length=200)

    @model_validator(mode="after")
    def _moves_not_zero(self) -> Self:
        if self.lookahead_basis not in (365, 252):
            raise _KeyError(
                ("lookahead_basis",),
                f"must be 365 (calendar days) or 252 (trading days), got {self.lookahead_basis}",
            )
        for i, m in enumerate(self.extended_moves):
            if m == 0.0:
                raise _KeyError(("extended_moves", i), "must not be 0 (its weight is PR/|m|)")
        tiers = self.price_range_tiers
        for i in range(1, len(tiers)):
            if not tiers[i].from_days > tiers[i - 1].from_days:
                raise _KeyError(
                    ("price_range_tiers", i, "from_days"),
                    f"must be above the tier before it ({tiers[i - 1].from_days:g}), got "
                    f"{tiers[i].from_days:g}",
                )
        if self.move_weights is not None and len(self.move_weights) != len(self.price_moves):
            raise _KeyError(
                ("move_weights",),
                f"needs one weight per price move ({len(self.price_moves)}), got "
                f"{len(self.move_weights)}",
            )
        return self

    @property
    def lookahead_years(self) -> float:
        """``lookahead_days / lookahead_basis``."""
        return self.lookahead_days / self.lookahead_basis

    def range_tiers(self) -> list[tuple[float, float]]:
        """``(from_days, price_range_tier / price_range)`` of each price-range tier."""
        return [(t.from_days, t.price_range / self.price_range) for t in self.price_range_tiers]

    def vol_shock(self) -> VolShock:
        """The :class:`~portmargin.scenarios.VolShock` these parameters describe."""
        return VolShock(
            up=self.vol_up,
            down=self.vol_down,
            mode=VolShockMode(self.vol_mode),
            short_term_power=self.short_term_power,
            long_term_power=self.long_term_power,
            pivot_days=self.pivot_days,
            dte_floor_days=self.dte_floor_days,
            min_vol_up=self.min_vol_up,
            min_vol=self.min_vol,
        )


class CurrencyParams(_Strict):
    """Per margin-currency parameters (amounts in USD where so named)."""

    pnl_offset: float = _num(0.0, ge=0.0, le=1.0)
    max_offsetable_pnl: float = _num(0.0, ge=0.0, le=_MAX_AMOUNT)
    extended_dampener: float = _num(0.0, ge=0.0, le=_MAX_AMOUNT)
    haircut: float = _num(0.0, ge=0.0, le=1.0)


# ----------------------------------------------------------------------------------------
# Charges and credits: the base, then one schema per kind


class ChargeParams(_Strict):
    """Base of every charge and credit schema; also the engine's neutral placeholder.

    ``role`` says how the engine combines a charge for one (pool, underlying):
    ``"add-on"`` amounts are added, ``"minimum"`` amounts are floors applied after every
    add-on and credit (SPAN's short option minimum, TIMS' minimum per contract).
    ``in_maintenance = false`` marks an IM-only add-on (not scaled by ``mm_multiplier``).
    Each kind's schema narrows ``kind`` and ``role``; ``ChargeParams(kind="...")`` itself
    carries no parameters (the engine builds one before it knows the charge).
    """

    kind: str
    role: Literal["add-on", "minimum"] = "add-on"
    in_maintenance: bool = Field(default=True, strict=True)

    grids: ClassVar[frozenset[str] | None] = None
    """The grids the kind can run on (``None``: any)."""
    keyed_by: ClassVar[Literal["underlying", "currency"] | None] = None
    """What upper-case sub-tables (``BTC = {...}``) name, if the kind has them."""

    def sub_table_keys(self) -> tuple[str, ...]:
        """Names of the per-underlying / per-currency sub-tables (none for most kinds)."""
        per_key = getattr(self, "per_key", None)
        return tuple(per_key) if isinstance(per_key, Mapping) else ()


def _split_sub_tables(data: Any, fields: Iterable[str]) -> Any:
    """Move ``CODE = {...}`` sub-tables into ``per_key``, each merged over the top level.

    A table-valued key spelt like a code (``BTC``, ``USD``) is a sub-table; any other key
    stays where it is, so a misspelt one is reported as an unknown key. ``per_key`` itself
    (as written by ``model_dump``) is read back the same way.
    """
    if not isinstance(data, Mapping):
        return data
    top: dict[str, Any] = {}
    subs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "per_key" and isinstance(value, Mapping):
            subs.update(value)
        elif isinstance(key, str) and isinstance(value, Mapping) and _CODE.fullmatch(key):
            subs[key] = value
        else:
            top[key] = value
    names = set(fields)
    inherited = {k: v for k, v in top.items() if k in names}
    top["per_key"] = {
        k: {**inherited, **v} if isinstance(v, Mapping) else v for k, v in subs.items()
    }
    return top


class _Keyed(ChargeParams):
    """A charge whose parameters may differ per underlying or pool currency.

    The top-level keys apply everywhere; a sub-table ``BTC = { rate = 0.02 }`` overrides
    some of them for BTC. :meth:`for_key` of each kind returns the resolved values.
    """

    rates_type: ClassVar[type[_Strict]]

    @model_validator(mode="before")
    @classmethod
    def _sub_tables(cls, data: Any) -> Any:
        return _split_sub_tables(data, cls.rates_type.model_fields)


class _Minimum(_Keyed):
    role: Literal["minimum"] = "minimum"
    in_maintenance: Literal[True] = True


class _AddOn(_Keyed):
    role: Literal["add-on"] = "add-on"


class _Credit(ChargeParams):
    role: Literal["add-on"] = "add-on"
    in_maintenance: Literal[True] = True


class RollShockRates(_Strict):
    """Roll-shock rates of one pool currency (fractions of the index per year)."""

    annualised_move_risk: float = _num(0.0, ge=0.0, le=1.0)
    min_annualised_move: float = _num(0.0, ge=0.0, le=1.0)


class RollShockParams(_AddOn, RollShockRates):
    """Deribit roll shock (``kind = "roll_shock"``); sub-tables are pool currencies."""

    kind: Literal["roll_shock"] = "roll_shock"
    per_key: Mapping[Code, RollShockRates] = {}
    keyed_by: ClassVar[Literal["underlying", "currency"] | None] = "currency"
    rates_type: ClassVar[type[_Strict]] = RollShockRates

    def for_key(self, pool: str) -> RollShockRates:
        """Rates of margin pool ``pool`` (its sub-table over the top-level keys)."""
        return self.per_key.get(pool, self)


class DeltaShockRates(_Strict):
    """Delta-shock parameters of one underlying."""

    threshold_usd: float = _num(20_000_000.0, ge=0.0, le=_MAX_AMOUNT)
    max_delta_shock: float = _num(0.10, ge=0.0, le=1.0)
    m_inc: float = _num(0.0, ge=0.0, le=1.0)


class DeltaShockParams(_AddOn, DeltaShockRates):
    """Deribit delta shock (``kind = "delta_shock"``); sub-tables are underlyings."""

    kind: Literal["delta_shock"] = "delta_shock"
    per_key: Mapping[Code, DeltaShockRates] = {}
    keyed_by: ClassVar[Literal["underlying", "currency"] | None] = "underlying"
    rates_type: ClassVar[type[_Strict]] = DeltaShockRates

    def for_key(self, underlying: str) -> DeltaShockRates:
        """Parameters of ``underlying`` (its sub-table over the top-level keys)."""
        return self.per_key.get(underlying, self)


class IntraSpread(_Strict):
    """One SPAN intra-commodity spread: tiers ``a`` and ``b`` and a rate per unit of delta."""

    a: int = Field(ge=0, le=100, strict=True)
    b: int = Field(ge=0, le=100, strict=True)
    rate: float = _num(..., ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _two_tiers(self) -> Self:
        if self.a == self.b:
            raise _KeyError(("b",), f"must differ from a (both {self.a})")
        return self


class SpanIntraRates(_Strict):
    """Tiers and spreads of one underlying (days to expiry; rates are fractions of S)."""

    tier_bounds_days: tuple[Days, ...] = Field(default=(7.0, 30.0, 91.0), max_length=20)
    spreads: tuple[IntraSpread, ...] = Field(default=(), max_length=200)

    @property
    def n_tiers(self) -> int:
        """Tier 0 (undated) plus one tier per interval the bounds make."""
        return len(self.tier_bounds_days) + 2

    @model_validator(mode="after")
    def _tiers_exist(self) -> Self:
        bounds = self.tier_bounds_days
        for i in range(1, len(bounds)):
            if not bounds[i] > bounds[i - 1]:
                raise _KeyError(
                    ("tier_bounds_days", i),
                    f"must be above the bound before it ({bounds[i - 1]:g}), got {bounds[i]:g}",
                )
        for i, spread in enumerate(self.spreads):
            for side in ("a", "b"):
                tier = getattr(spread, side)
                if tier >= self.n_tiers:
                    raise _KeyError(
                        ("spreads", i, side),
                        f"tier {tier} does not exist (tier_bounds_days make tiers "
                        f"0..{self.n_tiers - 1})",
                    )
        return self


class SpanIntraParams(_AddOn, SpanIntraRates):
    """SPAN intra-commodity spread charge (``kind = "span_intra_commodity"``)."""

    kind: Literal["span_intra_commodity"] = "span_intra_commodity"
    per_key: Mapping[Code, SpanIntraRates] = {}
    grids: ClassVar[frozenset[str] | None] = frozenset({"span16"})
    keyed_by: ClassVar[Literal["underlying", "currency"] | None] = "underlying"
    rates_type: ClassVar[type[_Strict]] = SpanIntraRates

    def for_key(self, underlying: str) -> SpanIntraRates:
        """Tiers and spreads of ``underlying`` (its sub-table over the top-level keys)."""
        return self.per_key.get(underlying, self)


class SpanSpotRates(SpanIntraRates):
    """Spot-charge parameters of one underlying (tiers and spreads as the intra charge's)."""

    spot_tier: int = Field(default=1, ge=0, le=100, strict=True)
    rate_consumed: float = _num(0.0, ge=0.0, le=1.0)
    rate_remaining: float = _num(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _spot_tier_exists(self) -> Self:
        if self.spot_tier >= self.n_tiers:
            raise _KeyError(
                ("spot_tier",),
                f"tier {self.spot_tier} does not exist (tier_bounds_days make tiers "
                f"0..{self.n_tiers - 1})",
            )
        return self


class SpanSpotParams(_AddOn, SpanSpotRates):
    """SPAN spot (delivery-tier) charge (``kind = "span_spot"``)."""

    kind: Literal["span_spot"] = "span_spot"
    per_key: Mapping[Code, SpanSpotRates] = {}
    grids: ClassVar[frozenset[str] | None] = frozenset({"span16"})
    keyed_by: ClassVar[Literal["underlying", "currency"] | None] = "underlying"
    rates_type: ClassVar[type[_Strict]] = SpanSpotRates

    def for_key(self, underlying: str) -> SpanSpotRates:
        """Parameters of ``underlying`` (its sub-table over the top-level keys)."""
        return self.per_key.get(underlying, self)


class ShortOptionMinimumRates(_Strict):
    """SOM of one underlying: a rate and/or a fixed USD amount per short option, aggregated.

    ``rate`` is a fraction of the index per unit of underlying; ``per_contract_usd`` a fixed
    amount per short option contract (CME quotes $ per contract).
    """

    rate: float = _num(0.0, ge=0.0, le=1.0)
    per_contract_usd: float = _num(0.0, ge=0.0, le=1e9)
    method: Literal["gross", "max"] = "gross"


class ShortOptionMinimumParams(_Minimum, ShortOptionMinimumRates):
    """SPAN short option minimum (``kind = "span_short_option_minimum"``), a floor."""

    kind: Literal["span_short_option_minimum"] = "span_short_option_minimum"
    per_key: Mapping[Code, ShortOptionMinimumRates] = {}
    keyed_by: ClassVar[Literal["underlying", "currency"] | None] = "underlying"
    rates_type: ClassVar[type[_Strict]] = ShortOptionMinimumRates

    def for_key(self, underlying: str) -> ShortOptionMinimumRates:
        """Rate and method of ``underlying`` (its sub-table over the top-level keys)."""
        return self.per_key.get(underlying, self)


class TimsMinimumRates(_Strict):
    """TIMS minimum per option contract of one underlying (fraction of the index)."""

    rate: float = _num(0.0, ge=0.0, le=1.0)


class TimsMinimumParams(_Minimum, TimsMinimumRates):
    """TIMS minimum per contract (``kind = "tims_minimum_per_contract"``), a floor."""

    kind: Literal["tims_minimum_per_contract"] = "tims_minimum_per_contract"
    per_key: Mapping[Code, TimsMinimumRates] = {}
    keyed_by: ClassVar[Literal["underlying", "currency"] | None] = "underlying"
    rates_type: ClassVar[type[_Strict]] = TimsMinimumRates

    def for_key(self, underlying: str) -> TimsMinimumRates:
        """Rate of ``underlying`` (its sub-table over the top-level keys)."""
        return self.per_key.get(underlying, self)


class InterSpread(_Strict):
    """One SPAN inter-commodity spread: legs (underlyings), USD-delta ratios, credit rate."""

    legs: tuple[Code, ...] = Field(min_length=2, max_length=10)
    ratios: tuple[Ratio, ...] | None = None
    rate: float = _num(..., ge=0.0, le=1.0)

    @property
    def leg_ratios(self) -> tuple[float, ...]:
        """The ratio of each leg (1 each when ``ratios`` is not given)."""
        return self.ratios if self.ratios is not None else (1.0,) * len(self.legs)

    @model_validator(mode="after")
    def _legs(self) -> Self:
        for i, leg in enumerate(self.legs):
            if leg in self.legs[:i]:
                raise _KeyError(("legs", i), f"{leg} is already a leg")
        if self.ratios is not None and len(self.ratios) != len(self.legs):
            raise _KeyError(
                ("ratios",), f"needs one ratio per leg ({len(self.legs)}), got {len(self.ratios)}"
            )
        return self


class SpanInterParams(_Credit):
    """SPAN inter-commodity spread credit (``kind = "span_inter_commodity"``)."""

    kind: Literal["span_inter_commodity"] = "span_inter_commodity"
    wfpr_method: Literal["normal", "scanrange_cap", "scanrange"] = "normal"
    spreads: tuple[InterSpread, ...] = Field(default=(), max_length=200)
    grids: ClassVar[frozenset[str] | None] = frozenset({"span16"})


class ScanningSpread(_Strict):
    """One SPAN scanning-based spread (CME method 4): legs (underlyings) and a credit rate."""

    legs: tuple[Code, ...] = Field(min_length=2, max_length=10)
    rate: float = _num(..., ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _legs(self) -> Self:
        for i, leg in enumerate(self.legs):
            if leg in self.legs[:i]:
                raise _KeyError(("legs", i), f"{leg} is already a leg")
        return self


class SpanScanningSpreadParams(_Credit):
    """SPAN scanning-based inter-commodity spread (``kind = "span_scanning_spread"``)."""

    kind: Literal["span_scanning_spread"] = "span_scanning_spread"
    spreads: tuple[ScanningSpread, ...] = Field(default=(), max_length=200)


class ProductGroup(_Strict):
    """One TIMS product group: its class groups (underlyings) and offset fraction."""

    members: tuple[Code, ...] = Field(min_length=2, max_length=50)
    offset: float = _num(..., ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        for i, member in enumerate(self.members):
            if member in self.members[:i]:
                raise _KeyError(("members", i), f"{member} is already a member")
        return self


class TimsProductGroupParams(_Credit):
    """TIMS product-group offset credit (``kind = "tims_product_group"``)."""

    kind: Literal["tims_product_group"] = "tims_product_group"
    groups: tuple[ProductGroup, ...] = Field(default=(), max_length=50)


ChargeSpec = Annotated[
    RollShockParams
    | DeltaShockParams
    | SpanIntraParams
    | SpanSpotParams
    | ShortOptionMinimumParams
    | TimsMinimumParams,
    Field(discriminator="kind"),
]
"""A ``[[charges]]`` entry: one schema per ``kind``."""

CreditSpec = Annotated[
    SpanInterParams | SpanScanningSpreadParams | TimsProductGroupParams,
    Field(discriminator="kind"),
]
"""A ``[[credits]]`` entry: one schema per ``kind``."""

CHARGE_KINDS: Mapping[str, type[ChargeParams]] = {
    "roll_shock": RollShockParams,
    "delta_shock": DeltaShockParams,
    "span_intra_commodity": SpanIntraParams,
    "span_spot": SpanSpotParams,
    "span_short_option_minimum": ShortOptionMinimumParams,
    "tims_minimum_per_contract": TimsMinimumParams,
}
"""The schema of each charge kind (as the ``ChargeSpec`` union)."""

CREDIT_KINDS: Mapping[str, type[ChargeParams]] = {
    "span_inter_commodity": SpanInterParams,
    "span_scanning_spread": SpanScanningSpreadParams,
    "tims_product_group": TimsProductGroupParams,
}
"""The schema of each credit kind (as the ``CreditSpec`` union)."""

_SPOT_SHARES = ("tier_bounds_days", "spreads")


# ----------------------------------------------------------------------------------------
# The model file


class ModelParams(_Strict):
    """A validated margin-model parameter file (see the module docstring)."""

    name: str = Field(min_length=1, max_length=100, strict=True)
    version: str = Field(min_length=1, max_length=100, strict=True)
    description: str = Field(default="", max_length=1000, strict=True)
    grid: Literal["deribit", "span16", "tims10", "custom"]
    currency_mode: Literal["segregated", "cross"] = "segregated"
    collateral: Literal["scenario", "haircut"] = "scenario"
    im_multiplier: float = _num(1.0, gt=0.0, le=100.0)
    mm_multiplier: float = _num(1.0, gt=0.0, le=100.0)
    risk_measure: Literal["worst", "var", "es"] = "worst"
    """How scenario losses become scanning risk: the worst scenario (SPAN, Deribit), or the
    value at risk / expected shortfall at ``confidence`` (historical and Monte Carlo sets)."""
    confidence: float = _num(0.99, ge=0.5, lt=1.0)
    joint_underlyings: bool = Field(default=False, strict=True)
    """Measure a pool's underlyings on their summed scenario P&L (aligned scenario sets:
    scenario ``j`` is the same day for every underlying), allocated back per underlying by
    Euler contributions; otherwise each (pool, underlying) is measured on its own."""
    underlyings: dict[TableName, UnderlyingParams] = {}
    currencies: dict[TableName, CurrencyParams] = {}
    charges: tuple[ChargeSpec, ...] = Field(default=(), max_length=50)
    credits: tuple[CreditSpec, ...] = Field(default=(), max_length=50)
    overrides: tuple[str, ...] = ()
    """Override files merged over the model, in order (set by :func:`load_model_params`)."""

    @property
    def label(self) -> str:
        """``name version``, plus ``+ overrides(f1, f2)`` when override files were applied."""
        base = f"{self.name} {self.version}"
        return f"{base} + overrides({', '.join(self.overrides)})" if self.overrides else base

    def underlying(self, name: str) -> UnderlyingParams:
        """Parameters of ``name`` (its table merged over ``default``)."""
        return self._merged(self.underlyings, name, UnderlyingParams)

    def currency(self, name: str) -> CurrencyParams:
        """Parameters of margin currency ``name`` (merged over ``default``)."""
        return self._merged(self.currencies, name, CurrencyParams)

    def _merged(self, table: Mapping[str, _P], name: str, cls: type[_P]) -> _P:
        base = table.get("default")
        own = table.get(name)
        data: dict[str, Any] = {}
        if base is not None:
            data.update(base.model_dump(exclude_unset=True))
        if own is not None:
            data.update(own.model_dump(exclude_unset=True))
        return cls.model_validate(data)

    @model_validator(mode="before")
    @classmethod
    def _spot_uses_intra_spreads(cls, data: Any) -> Any:
        """``span_spot`` takes ``tier_bounds_days`` and ``spreads`` from the intra charge.

        The spot charge prices the delta the intra-commodity spreads consumed and left, so
        it needs their tiers and spreads; where its entry does not set them they are copied
        from ``span_intra_commodity`` (sub-tables too). Values it does set must agree
        (checked after validation).
        """
        if not isinstance(data, Mapping):
            return data
        charges = data.get("charges")
        if not isinstance(charges, list | tuple):
            return data
        found = [i for i, c in enumerate(charges) if _is_kind(c, "span_intra_commodity")]
        if not found:
            return data
        intra = charges[found[0]]
        out: list[Any] = []
        for i, entry in enumerate(charges):
            if _is_kind(entry, "span_spot"):
                entry = dict(entry)
                for key in _SPOT_SHARES:
                    if key not in entry and key in intra:
                        entry[key] = intra[key]
                    elif key in entry and _plain(entry[key]) != _plain(intra.get(key)):
                        raise _KeyError(
                            ("charges", i, "span_spot", key), _spot_mismatch(found[0], key)
                        )
                for code, sub in intra.items():
                    if not (isinstance(sub, Mapping) and _CODE.fullmatch(str(code))):
                        continue
                    picked = {k: sub[k] for k in _SPOT_SHARES if k in sub}
                    own = entry.get(code, {})
                    if picked and isinstance(own, Mapping):
                        entry[code] = {**picked, **own}
            out.append(entry)
        return {**data, "charges": out}

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        if self.im_multiplier < self.mm_multiplier:
            raise _KeyError(
                ("im_multiplier",),
                f"must be >= mm_multiplier ({self.mm_multiplier:g}), got {self.im_multiplier:g}"
                " (initial margin is never below maintenance)",
            )
        for table, items in (("charges", self.charges), ("credits", self.credits)):
            first: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.kind in first:
                    raise _KeyError(
                        (table, i, item.kind),
                        f"a second entry of this kind ({table}[{first[item.kind]}] is the "
                        "first); merge them into one",
                    )
                first[item.kind] = i
                if item.grids is not None and self.grid not in item.grids:
                    raise _KeyError(
                        ("grid",),
                        f"{self.grid!r} cannot carry {table}[{i}] ({item.kind}), which needs "
                        f"the {' or '.join(sorted(item.grids))} grid",
                    )
        self._check_sub_tables()
        self._check_spot_matches_intra()
        self._check_credit_members()
        self._check_scenarios()
        return self

    def _declared(self) -> frozenset[str]:
        return frozenset(k for k in self.underlyings if k != "default")

    def _check_sub_tables(self) -> None:
        underlyings = self._declared()
        pools = frozenset(k for k in self.currencies if k != "default") | {"USD"}
        for i, charge in enumerate(self.charges):
            for key in charge.sub_table_keys():
                where = ("charges", i, charge.kind, key)
                if charge.keyed_by == "underlying" and key not in underlyings:
                    raise _KeyError(
                        where,
                        f"{key} is not an underlying of this model (declare [underlyings.{key}]"
                        " to use it)",
                    )
                if charge.keyed_by == "currency":
                    if key in STABLE_CURRENCIES and key != "USD":
                        raise _KeyError(where, f"{key} pools as USD: name the pool USD")
                    if key not in pools:
                        raise _KeyError(
                            where,
                            f"{key} is not a currency of this model (declare "
                            f"[currencies.{key}] to use it)",
                        )

    def _check_spot_matches_intra(self) -> None:
        found = {c.kind: (i, c) for i, c in enumerate(self.charges)}
        if "span_spot" not in found or "span_intra_commodity" not in found:
            return
        i, spot = found["span_spot"]
        j, intra = found["span_intra_commodity"]
        if not (isinstance(spot, SpanSpotParams) and isinstance(intra, SpanIntraParams)):
            return
        keys: list[str | None] = [None, *sorted({*spot.per_key, *intra.per_key})]
        for key in keys:
            mine = spot if key is None else spot.for_key(key)
            theirs = intra if key is None else intra.for_key(key)
            for name in _SPOT_SHARES:
                if getattr(mine, name) != getattr(theirs, name):
                    path: tuple[str | int, ...] = ("charges", i, "span_spot")
                    path += (name,) if key is None else (key, name)
                    raise _KeyError(path, _spot_mismatch(j, name))

    def _check_credit_members(self) -> None:
        declared = self._declared()
        for i, credit in enumerate(self.credits):
            if isinstance(credit, SpanInterParams):
                for s, spread in enumerate(credit.spreads):
                    for n, leg in enumerate(spread.legs):
                        if leg not in declared:
                            raise _KeyError(
                                ("credits", i, credit.kind, "spreads", s, "legs", n),
                                f"{leg} is not an underlying of this model (declare "
                                f"[underlyings.{leg}] to use it)",
                            )
            elif isinstance(credit, TimsProductGroupParams):
                owner: dict[str, int] = {}
                for g, group in enumerate(credit.groups):
                    path = ("credits", i, credit.kind, "groups", g, "members")
                    self._check_aligned(path, group.members, owner, g, "groups", "members")
            elif isinstance(credit, SpanScanningSpreadParams):
                owner = {}
                delta_legs = {
                    leg: j
                    for j, c in enumerate(self.credits)
                    if isinstance(c, SpanInterParams)
                    for spread in c.spreads
                    for leg in spread.legs
                }
                for g, sspread in enumerate(credit.spreads):
                    spath: tuple[str | int, ...] = ("credits", i, credit.kind, "spreads", g)
                    spath += ("legs",)
                    self._check_aligned(spath, sspread.legs, owner, g, "spreads", "legs")
                    for n, leg in enumerate(sspread.legs):
                        if leg in delta_legs:
                            raise _KeyError(
                                (*spath, n),
                                f"{leg} is also a leg of credits[{delta_legs[leg]}] "
                                "(span_inter_commodity): one underlying takes one kind of "
                                "inter-commodity credit",
                            )

    def _check_aligned(
        self,
        path: tuple[str | int, ...],
        members: Sequence[str],
        owner: dict[str, int],
        g: int,
        table: str,
        what: str,
    ) -> None:
        """Members are declared, in one group each, with as many scenarios as each other."""
        declared = self._declared()
        for n, member in enumerate(members):
            if member not in declared:
                raise _KeyError(
                    (*path, n),
                    f"{member} is not an underlying of this model (declare "
                    f"[underlyings.{member}] to use it)",
                )
            if member in owner:
                raise _KeyError((*path, n), f"{member} is already in {table}[{owner[member]}]")
            owner[member] = g
        counts = {m: len(self._grid_of(m)) for m in members}
        if len(set(counts.values())) > 1:
            shown = ", ".join(f"{m} {c}" for m, c in counts.items())
            raise _KeyError(
                path,
                f"{what} need the same number of scenarios to offset point by point, got {shown}",
            )

    def _grid_of(self, name: str) -> Any:
        from portmargin.models.grids import GRIDS  # grids imports this module

        return GRIDS[self.grid](self.underlying(name))

    def _check_scenarios(self) -> None:
        # default first: a key written there is reported there, not on an underlying
        for name in ["default", *sorted(set(self.underlyings) - {"default"})]:
            u = self.underlying(name)
            where: tuple[str | int, ...] = ("underlyings", name)
            if u.vol_mode == "relative" and u.vol_down > 1.0:
                raise _KeyError(
                    (*where, "vol_down"),
                    f"must be <= 1 with vol_mode = 'relative' (a vol cannot fall by more than "
                    f"100 %), got {u.vol_down:g}",
                )
            if self.grid == "deribit":
                for i, m in enumerate(u.extended_moves):
                    if abs(m) < u.price_range:
                        raise _KeyError(
                            (*where, "extended_moves", i),
                            f"{m:g} lies inside the standard range ±{u.price_range:g}: extended "
                            "moves are beyond price_range (their weight is price_range/|m|)",
                        )
            widest = max([u.price_range, *(t.price_range for t in u.price_range_tiers)])
            if self.grid == "span16" and u.extreme_multiplier * widest >= 1.0:
                raise _KeyError(
                    (*where, "extreme_multiplier"),
                    f"the extreme move {u.extreme_multiplier:g} x price_range "
                    f"{widest:g} must stay below 100 % (a price cannot fall below 0)",
                )
            if u.price_range_tiers and self.grid != "span16":
                raise _KeyError(
                    (*where, "price_range_tiers"),
                    f"read only by the span16 grid (SPAN's price scan range per contract "
                    f"month), not by {self.grid!r}",
                )
            self._check_custom(u, where)
            try:
                self._grid_of(name)
            except ParameterError as exc:
                raise _KeyError(where, str(exc)) from None

    def _check_custom(self, u: UnderlyingParams, where: tuple[str | int, ...]) -> None:
        """The ``custom`` grid's keys: only on that grid; scenarios exist; vols stay >= 0."""
        if self.grid != "custom":
            for key in _CUSTOM_KEYS:
                if getattr(u, key) != UnderlyingParams.model_fields[key].default:
                    raise _KeyError(
                        (*where, key), f"read only by the custom grid, not by {self.grid!r}"
                    )
            return
        if not (u.price_moves or u.extra_scenarios):
            raise _KeyError(
                (*where, "price_moves"),
                "the custom grid needs price_moves or extra_scenarios (no scenario at all)",
            )
        if u.vol_mode == "relative":
            shifts: list[tuple[tuple[str | int, ...], float]] = [
                (("vol_shifts", i), v) for i, v in enumerate(u.vol_shifts)
            ]
            shifts += [
                (("extra_scenarios", i, "vol_shift"), x.vol_shift)
                for i, x in enumerate(u.extra_scenarios)
            ]
            for at, v in shifts:
                if v < -1.0:
                    raise _KeyError(
                        (*where, *at),
                        f"must be >= -1 with vol_mode = 'relative' (a vol cannot fall by more "
                        f"than 100 %), got {v:g}",
                    )


def _spot_mismatch(intra_index: int, key: str) -> str:
    return (
        f"must equal charges[{intra_index}] (span_intra_commodity)'s {key}: the spot charge "
        "prices the delta those spreads consume (leave it out to share them)"
    )


def _plain(value: Any) -> Any:
    """``value`` with numbers as floats and arrays as tuples, to compare raw TOML values."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    return value


def _is_sub_table(key: str, value: Any) -> bool:
    """A charge entry's ``CODE = {...}`` sub-table (see :func:`_split_sub_tables`)."""
    return isinstance(value, Mapping) and _CODE.fullmatch(key) is not None


def _is_kind(entry: Any, kind: str) -> bool:
    return isinstance(entry, Mapping) and entry.get("kind") == kind


# ----------------------------------------------------------------------------------------
# Loading


def available_models() -> list[str]:
    """Names of the model files shipped with the package."""
    folder = resources.files("portmargin.models").joinpath("params")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


_KEYED = {"charges": "kind", "credits": "kind"}


def load_model_params(
    name_or_path: str | Path,
    *,
    overrides: Path | str | Sequence[Path | str] | None = None,
) -> ModelParams:
    """Load a shipped model by name (``deribit``, ``span``, ...) or a TOML file by path.

    Parameters
    ----------
    name_or_path
        A shipped model's name or a path to a complete model file.
    overrides
        TOML file(s) merged over it in order (``--params FILE``): tables key by key,
        ``[[charges]]`` / ``[[credits]]`` by ``kind`` (``remove = true`` drops an entry).
        Recorded in :attr:`ModelParams.overrides`.

    Raises
    ------
    ParameterError
        One line: ``<file>: <key path>: <reason>``, where ``<file>`` is the model file
        (``model NAME`` for a shipped one) or ``<override> (over <model>)``.
    """
    text_name = str(name_or_path)
    shipped = resources.files("portmargin.models").joinpath("params", f"{text_name}.toml")
    if shipped.is_file():
        source = f"model {text_name}"
        data = _parse(source, shipped.read_text(encoding="utf-8"))
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ParameterError(
                f"unknown model {text_name!r} (available: {', '.join(available_models())}, "
                "or a path to a model TOML file)"
            )
        source = str(path)
        data = _read_file(path)
    params = _validate(data, source)
    files: list[Path | str]
    if overrides is None:
        files = []
    elif isinstance(overrides, str | Path):
        files = [overrides]
    else:
        files = list(overrides)
    applied: list[str] = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise ParameterError(f"{file}: file not found")
        over = _read_file(path)
        where = f"{file} (over {' + '.join([source, *applied])})"
        try:
            data = merge_by_kind(data, over, keyed=_KEYED, is_sub_table=_is_sub_table)
        except ParameterError as exc:
            raise ParameterError(f"{where}: {exc}") from None
        applied.append(str(file))
        params = _validate({**data, "overrides": tuple(applied)}, where)
    return params


def _read_file(path: Path) -> dict[str, Any]:
    return read_toml(path, reserved=_RESERVED)


def _parse(source: str, text: str) -> dict[str, Any]:
    return parse_toml(source, text, reserved=_RESERVED)


_RESERVED = ("overrides",)


def _validate(data: dict[str, Any], where: str) -> ModelParams:
    try:
        return ModelParams.model_validate(data)
    except ValidationError as exc:
        raise ParameterError(f"{where}: {describe_error(exc)}") from None


# ----------------------------------------------------------------------------------------
# One-line error messages


def describe_error(exc: ValidationError) -> str:
    """``key.path: reason`` for the first error of ``exc`` (top-level keys before sub-tables).

    Charge and credit entries are shown as ``charges[i] (kind)``; sub-tables as
    ``charges[i] (kind).BTC.key``.
    """
    errors = exc.errors()
    err = min(errors, key=lambda e: "per_key" in e["loc"])
    loc: list[str | int] = [p for p in err["loc"] if p != "per_key"]
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    if err["type"] == "value_error" and isinstance(cause, _KeyError):
        loc += list(cause.path)
        reason = cause.reason
    else:
        reason = _reason(err, loc)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("kind")
    if loc and loc[-1] == "[key]":
        loc.pop()
        reason = "a table name must be 'default' or an upper-case code such as BTC"
    where = _render(loc)
    return f"{where}: {reason}" if where else reason


def _render(loc: Sequence[str | int]) -> str:
    out = ""
    i = 0
    while i < len(loc):
        part = loc[i]
        if (
            i == 0
            and part in ("charges", "credits")
            and len(loc) > 2
            and isinstance(loc[1], int)
            and (loc[2] in CHARGE_KINDS or loc[2] in CREDIT_KINDS)
        ):
            out = f"{part}[{loc[1]}] ({loc[2]})"
            i += 3
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        i += 1
    return out


_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_TYPES = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _reason(err: ErrorDetails, loc: Sequence[str | int]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = _show(err.get("input"))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    if kind == "finite_number":
        return f"must be a finite number, got {got}"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        bound = ctx.get(key)
        shown = f"{bound:g}" if isinstance(bound, int | float) else _show(bound)
        return f"must be {sign} {shown}, got {got}"
    if kind == "union_tag_invalid":
        table = "charge" if loc and loc[0] == "charges" else "credit"
        return f"unknown {table} kind {ctx.get('tag')!r} (known: {ctx.get('expected_tags')})"
    if kind == "union_tag_not_found":
        return "required key missing"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {got}"
    if kind == "string_pattern_mismatch":
        return f"must be an upper-case code such as BTC, got {got}"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}, got {got}"
    if kind in ("too_short", "too_long"):
        return str(err["msg"]).replace("Tuple", "array").replace("List", "array")
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return f"{err['msg']}, got {got}"


def _show(value: Any) -> str:
    """A short one-line rendering of a value from a parameter file."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
