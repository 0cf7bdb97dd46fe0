"""Margin-model parameter files: versioned TOML validated on load.

A model file has top-level settings and two tables keyed by name, each with a ``default``
entry that the named entries override field by field::

    name = "deribit"; version = "2024.1"; grid = "deribit" | "span16"
    currency_mode = "segregated" | "cross";  collateral = "scenario" | "haircut"
    im_multiplier = 1.0;  mm_multiplier = 0.8
    [underlyings.default]  price_range, buckets_per_side, vol_up, vol_down, vol_mode, ...
    [underlyings.BTC]      overrides for BTC
    [currencies.BTC]       pnl_offset, max_offsetable_pnl, extended_dampener, haircut
    [[charges]]            per-underlying charges by ``kind`` (add-ons and minimums)
    [[credits]]            cross-underlying credits by ``kind`` (SPAN inter-commodity, TIMS
                           product groups), applied per margin pool

``--params FILE`` is merged over the named model (tables merged key by key), so a user file
may change a single number; the merged result is validated again.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portmargin._toml import deep_merge
from portmargin.errors import ParameterError
from portmargin.scenarios import VolShock, VolShockMode

_P = TypeVar("_P", bound=BaseModel)

__all__ = [
    "ChargeParams",
    "CurrencyParams",
    "ModelParams",
    "UnderlyingParams",
    "available_models",
    "load_model_params",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnderlyingParams(_Strict):
    """Scenario parameters of one underlying (fractions are decimals: 0.16 = 16 %)."""

    price_range: float = Field(default=0.15, gt=0, lt=1)
    buckets_per_side: int = Field(default=4, ge=1, le=50)
    vol_up: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    vol_down: float = Field(default=0.25, ge=0, allow_inf_nan=False)
    vol_mode: Literal["relative", "absolute"] = "relative"
    short_term_power: float = Field(default=0.0, ge=0, le=2)
    long_term_power: float = Field(default=0.0, ge=0, le=2)
    pivot_days: float = Field(default=30.0, gt=0)
    dte_floor_days: float = Field(default=1.0, gt=0)
    min_vol_up: float = Field(default=0.0, ge=0)
    min_vol: float = Field(default=0.0, ge=0)
    extended_moves: tuple[float, ...] = ()
    extended_factor: float = Field(default=1.0, ge=0)
    price_range_up: float | None = Field(default=None, gt=0, lt=10)
    extreme_multiplier: float = Field(default=3.0, ge=0)
    cover_fraction: float = Field(default=0.33, ge=0, le=1)
    lookahead_days: float = Field(default=0.0, ge=0, le=30)

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

    pnl_offset: float = Field(default=0.0, ge=0, le=1)
    max_offsetable_pnl: float = Field(default=0.0, ge=0)
    extended_dampener: float = Field(default=0.0, ge=0)
    haircut: float = Field(default=0.0, ge=0, le=1)


class ChargeParams(BaseModel):
    """A charge or credit: ``kind`` names it, any other keys are its parameters.

    ``role`` says how the engine combines it for one (pool, underlying):
    ``"add-on"`` amounts are added, ``"minimum"`` amounts are floors applied after every
    add-on and credit (SPAN's short option minimum, TIMS' minimum per contract).
    ``in_maintenance = false`` marks an IM-only add-on (not scaled by ``mm_multiplier``).
    A sub-table named after an underlying (``BTC = {rate = 0.01}``) overrides the charge's
    top-level keys for that underlying (see :meth:`get`).
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str
    role: Literal["add-on", "minimum"] = "add-on"
    in_maintenance: bool = True

    def get(self, key: str, underlying: str | None = None, default: Any = None) -> Any:
        """Parameter ``key``: the underlying's sub-table first, then the top level."""
        extra = self.model_extra or {}
        if underlying is not None:
            own = extra.get(underlying)
            if isinstance(own, dict) and key in own:
                return own[key]
        return extra.get(key, default)

    def number(self, key: str, underlying: str | None = None, default: float = 0.0) -> float:
        """A numeric parameter (see :meth:`get`), validated as a finite float."""
        value = self.get(key, underlying, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParameterError(f"charge {self.kind}: `{key}` must be a number, got {value!r}")
        out = float(value)
        if out != out or out in (float("inf"), float("-inf")):
            raise ParameterError(f"charge {self.kind}: `{key}` must be finite")
        return out


class ModelParams(_Strict):
    """A validated margin model parameter file."""

    name: str
    version: str
    description: str = ""
    grid: Literal["deribit", "span16", "tims10"]
    currency_mode: Literal["segregated", "cross"] = "segregated"
    collateral: Literal["scenario", "haircut"] = "scenario"
    im_multiplier: float = Field(default=1.0, gt=0)
    mm_multiplier: float = Field(default=1.0, gt=0)
    underlyings: dict[str, UnderlyingParams] = {}
    currencies: dict[str, CurrencyParams] = {}
    charges: tuple[ChargeParams, ...] = ()
    credits: tuple[ChargeParams, ...] = ()

    def underlying(self, name: str) -> UnderlyingParams:
        """Parameters of ``name`` (its table merged over ``default``)."""
        return self._merged(self.underlyings, name, UnderlyingParams)

    def currency(self, name: str) -> CurrencyParams:
        """Parameters of margin currency ``name`` (merged over ``default``)."""
        return self._merged(self.currencies, name, CurrencyParams)

    def _merged(self, table: dict[str, _P], name: str, cls: type[_P]) -> _P:
        base = table.get("default")
        own = table.get(name)
        data: dict[str, Any] = {}
        if base is not None:
            data.update(base.model_dump(exclude_unset=True))
        if own is not None:
            data.update(own.model_dump(exclude_unset=True))
        return cls.model_validate(data)


def available_models() -> list[str]:
    """Names of the model files shipped with the package."""
    folder = resources.files("portmargin.models").joinpath("params")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _read_toml(path: Path | str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{path}: bad TOML ({exc})") from None


def load_model_params(
    name_or_path: str | Path, *, overrides: Path | str | None = None
) -> ModelParams:
    """Load a shipped model by name (``deribit``, ``span16``, ...) or a TOML file by path.

    Parameters
    ----------
    name_or_path
        A shipped model's name or a path to a complete model file.
    overrides
        Optional TOML file merged over it (``--params FILE``).

    Raises
    ------
    ParameterError
        ``file: field: reason`` for unknown names, bad TOML or invalid values.
    """
    text_name = str(name_or_path)
    shipped = resources.files("portmargin.models").joinpath("params", f"{text_name}.toml")
    if shipped.is_file():
        source: str = f"{text_name}.toml"
        data = _read_toml(source, shipped.read_text(encoding="utf-8"))
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ParameterError(
                f"unknown model {text_name!r} (available: {', '.join(available_models())}, "
                "or a path to a model TOML file)"
            )
        source = str(path)
        data = _read_toml(path, path.read_text(encoding="utf-8"))
    if overrides is not None:
        opath = Path(overrides)
        if not opath.is_file():
            raise ParameterError(f"{opath}: file not found")
        data = deep_merge(data, _read_toml(opath, opath.read_text(encoding="utf-8")))
        source = f"{source} + {opath}"
    try:
        return ModelParams.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ParameterError(f"{source}: {loc}: {err['msg']}") from None
