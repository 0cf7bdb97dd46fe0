r"""VaR / ES model files: versioned TOML, typed and validated on load (``family = "var"``).

A VaR model file states how scenarios are drawn from the daily history
(:mod:`portmargin.var.history`) and how the book's scenario P&L becomes a requirement. The
public contract, every key with its unit, range, default and source, is
``docs/methodology/var.md``::

    family = "var"; name = "var"; version = "2026.1"
    method = "hs" | "fhs" | "mc-t" | "mc-bootstrap"
    risk_measure = "var" | "es";  confidence = 0.99;  horizon_days = 2
    window_days, min_window_days, ewma_lambda, ewma_burn_in_days, overlapping
    underlyings = ["BTC", "ETH"];  history = "my.csv";  as_of = 2026-02-04
    currency_mode = "cross" | "segregated";  joint_underlyings = true
    im_multiplier, mm_multiplier, min_vol
    [monte_carlo]          n_scenarios, seed, dof
    [anti_procyclicality]  mode = "none" | "buffer" | "floor", buffer, floor_lookback_days
    [stress]               enabled, periods = [{start, end, label}], vol_proxy
    [liquidity]            enabled, threshold, eta, open_interest = {BTC = ..., ETH = ...}

Every table refuses unknown keys; numbers are finite and range-checked; errors are one
:class:`~portmargin.errors.ParameterError` line naming the file and the key
(``my-var.toml: confidence: must be < 0.9999, got 1``). ``--params FILE`` merges an
override over a model key by key (tables recursively, arrays replaced whole) and the merge
is validated again; the files applied are recorded in :attr:`VarParams.overrides`.
"""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from portmargin._toml import deep_merge, parse_toml, read_toml
from portmargin.errors import ParameterError
from portmargin.models.config import describe_error

__all__ = [
    "AntiProcyclicality",
    "LiquiditySpec",
    "MonteCarloSpec",
    "StressPeriod",
    "StressSpec",
    "VarParams",
    "is_var_file",
    "load_var_params",
    "shipped_var_models",
]

Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_]*$")]


def _num(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    return Field(default, ge=ge, gt=gt, le=le, lt=lt, strict=True, allow_inf_nan=False)


def _int(default: Any, *, ge: int, le: int) -> Any:
    return Field(default, ge=ge, le=le, strict=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MonteCarloSpec(_Strict):
    """Monte Carlo draws (methods ``mc-t`` and ``mc-bootstrap``).

    ``seed`` and the as-of date seed NumPy's ``SeedSequence([seed, as_of.toordinal()])``:
    a day's scenario set is reproducible and each day draws afresh. ``dof = 0`` fits the
    Student-t degrees of freedom by maximum likelihood on the standardised shocks.
    ``truncate = c > 0`` clips every simulated daily standardised shock of a factor to
    ``±c·max|z|`` of the window (``c = 1.5``: no day beyond one and a half times the largest
    standardised move on record; a fitted t otherwise now and then draws a move of a
    hundred standard deviations that alone sets the ES of 2,000 draws); ``0`` keeps them.
    """

    n_scenarios: int = _int(2000, ge=100, le=100_000)
    seed: int = _int(20260205, ge=0, le=2**63 - 1)
    dof: float = _num(0.0, ge=0.0, le=1000.0)
    truncate: float = _num(1.5, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _dof(self) -> Self:
        if 0.0 < self.dof <= 2.0:
            raise ValueError(f"dof: must be 0 (fit) or > 2 (finite variance), got {self.dof:g}")
        return self


class AntiProcyclicality(_Strict):
    """EMIR RTS 153/2013 Art. 28(1) anti-procyclicality tool.

    ``buffer`` (option a): ``IM = (1 + buffer)·M``, ``MM = M``: the buffer can be used up
    while margins rise (equity between MM and IM). ``floor`` (option c): the filtered
    volatility never goes below the volatility over the last ``floor_lookback_days`` days
    (EMIR: 10 years; the shipped history holds 8.6 years of closes and 5 of DVOL).
    """

    mode: Literal["none", "buffer", "floor"] = "none"
    buffer: float = _num(0.25, ge=0.0, le=1.0)
    floor_lookback_days: int = _int(3650, ge=30, le=36_500)


class StressPeriod(_Strict):
    """A stressed period: its first and last day (inclusive) and a label for reports."""

    start: date
    end: date
    label: str = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end: must be after start ({self.start}), got {self.end}")
        return self


class StressSpec(_Strict):
    """Stressed-period floor: the measure over the stress periods' unfiltered moves.

    ``requirement ≥`` the pool's measure (same estimator and confidence) over the h-day
    moves of the periods (only the windows ended by the as-of date). On days before the
    history's DVOL, the vol move is ``vol_proxy``: ``regression`` (fitted daily
    ``Δln DVOL = b0 + b1·r + b2·|r|`` over the DVOL era) or ``zero``.
    """

    enabled: bool = Field(default=False, strict=True)
    periods: tuple[StressPeriod, ...] = Field(default=(), max_length=50)
    vol_proxy: Literal["regression", "zero"] = "regression"

    @model_validator(mode="after")
    def _periods(self) -> Self:
        if self.enabled and not self.periods:
            raise ValueError("periods: needs at least one period when enabled")
        return self


class LiquiditySpec(_Strict):
    """Liquidity / concentration add-on for positions large against open interest.

    Square-root market impact (Almgren, Thum, Hauptmann & Li, "Direct estimation of equity
    market impact", Risk 2005; the "square-root law")::

        G_u     = Σ_i |q_i|·M_i                    gross option contracts (coins)
        share_u = G_u / OI_u                       OI_u: open interest (coins)
        add-on  = eta·√share_u·Σ_i |q_i|·M_i·S·σ_i/√365     when share_u > threshold

    in the pool currency; ``σ_i`` the option's mark vol.
    """

    enabled: bool = Field(default=False, strict=True)
    threshold: float = _num(0.01, ge=0.0, le=1.0)
    eta: float = _num(1.0, ge=0.0, le=100.0)
    open_interest: dict[Code, Annotated[float, Field(gt=0.0, le=1e12, strict=True)]] = {}


class VarParams(_Strict):
    """A validated VaR / ES model file (see the module docstring)."""

    family: Literal["var"]
    name: str = Field(min_length=1, max_length=100, strict=True)
    version: str = Field(min_length=1, max_length=100, strict=True)
    description: str = Field(default="", max_length=1000, strict=True)
    method: Literal["hs", "fhs", "mc-t", "mc-bootstrap"] = "fhs"
    risk_measure: Literal["var", "es"] = "es"
    confidence: float = _num(0.99, ge=0.9, lt=0.9999)
    horizon_days: int = _int(2, ge=1, le=10)
    window_days: int = _int(0, ge=0, le=36_500)
    min_window_days: int = _int(250, ge=30, le=36_500)
    ewma_lambda: float = _num(0.94, gt=0.5, lt=1.0)
    ewma_burn_in_days: int = _int(30, ge=2, le=1000)
    overlapping: bool = Field(default=True, strict=True)
    underlyings: tuple[Code, ...] = Field(default=(), max_length=20)
    history: str | None = Field(default=None, min_length=1, max_length=1000, strict=True)
    as_of: date | None = None
    currency_mode: Literal["cross", "segregated"] = "cross"
    joint_underlyings: bool = Field(default=True, strict=True)
    im_multiplier: float = _num(1.0, gt=0.0, le=100.0)
    mm_multiplier: float = _num(1.0, gt=0.0, le=100.0)
    min_vol: float = _num(0.01, gt=0.0, le=1.0)
    monte_carlo: MonteCarloSpec = MonteCarloSpec()
    anti_procyclicality: AntiProcyclicality = AntiProcyclicality()
    stress: StressSpec = StressSpec()
    liquidity: LiquiditySpec = LiquiditySpec()
    overrides: tuple[str, ...] = ()
    base_dir: str = ""
    """Folder of the model file: a relative ``history`` path is read from there."""

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        if self.im_multiplier < self.mm_multiplier:
            raise ValueError(
                f"im_multiplier: must be >= mm_multiplier ({self.mm_multiplier:g}), got "
                f"{self.im_multiplier:g} (initial margin is never below maintenance)"
            )
        if self.window_days and self.window_days < self.min_window_days:
            raise ValueError(
                f"window_days: must be 0 (all) or >= min_window_days "
                f"({self.min_window_days}), got {self.window_days}"
            )
        for u in self.liquidity.open_interest:
            if self.underlyings and u not in self.underlyings:
                raise ValueError(f"liquidity.open_interest.{u}: not one of underlyings")
        return self

    @property
    def label(self) -> str:
        """``name version``, plus ``+ overrides(...)`` when override files were applied."""
        base = f"{self.name} {self.version}"
        return f"{base} + overrides({', '.join(self.overrides)})" if self.overrides else base

    @property
    def version_label(self) -> str:
        """The version as results report it (``2026.1 + overrides(my.toml)``)."""
        extra = self.overrides
        return f"{self.version} + overrides({', '.join(extra)})" if extra else self.version

    def history_path(self) -> Path | None:
        """The ``history`` file, relative to the model file's folder (``None``: shipped)."""
        if self.history is None:
            return None
        p = Path(self.history)
        return p if p.is_absolute() or not self.base_dir else Path(self.base_dir) / p


def shipped_var_models() -> list[str]:
    """Names of the VaR model files shipped in ``portmargin/var/params``."""
    folder = resources.files("portmargin.var").joinpath("params")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def is_var_file(path: str | Path) -> bool:
    """True if ``path`` is a readable TOML file with ``family = "var"``."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        head = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return head.get("family") == "var"


def load_var_params(
    name_or_path: str | Path, *, overrides: str | Path | list[str | Path] | None = None
) -> VarParams:
    """A shipped VaR model (``var``, ``var-hs``, ...) or a VaR model file, with overrides.

    Raises
    ------
    ParameterError
        One line: ``<file>: <key path>: <reason>`` (``model var`` for a shipped one,
        ``<override> (over <model>)`` for an override).
    """
    text = str(name_or_path)
    shipped = resources.files("portmargin.var").joinpath("params", f"{text}.toml")
    base_dir = ""
    if shipped.is_file():
        source = f"model {text}"
        data = _parse(source, shipped.read_text(encoding="utf-8"))
    else:
        path = Path(text)
        if not path.is_file():
            raise ParameterError(
                f"unknown VaR model {text!r} (available: {', '.join(shipped_var_models())}, "
                "or a path to a VaR model TOML file)"
            )
        source = str(path)
        data = _read(path)
        base_dir = str(path.parent)
    params = _validate({**data, "base_dir": base_dir}, source)
    files = (
        []
        if overrides is None
        else ([overrides] if isinstance(overrides, str | Path) else list(overrides))
    )
    applied: list[str] = []
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise ParameterError(f"{f}: file not found")
        over = _read(p)
        where = f"{f} (over {' + '.join([source, *applied])})"
        if "family" in over and over["family"] != "var":
            raise ParameterError(f"{where}: family: must be 'var', got {over['family']!r}")
        data = deep_merge(data, over)
        applied.append(str(f))
        params = _validate({**data, "base_dir": base_dir, "overrides": tuple(applied)}, where)
    return params


def _read(path: Path) -> dict[str, Any]:
    return read_toml(path, reserved=_RESERVED)


def _parse(source: str, text: str) -> dict[str, Any]:
    return parse_toml(source, text, reserved=_RESERVED)


_RESERVED = ("overrides", "base_dir")


def _validate(data: dict[str, Any], where: str) -> VarParams:
    try:
        return VarParams.model_validate(data)
    except ValidationError as exc:
        raise ParameterError(f"{where}: {describe_error(exc)}") from None
