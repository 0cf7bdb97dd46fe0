"""Rule sets as validated data: built-in TOML files, overridable by a user file.

A user file either defines a complete rule set or names a built-in one as ``base`` and
overrides some of its fields (tables are merged key by key)::

    base = "strategy"
    name = "strategy-20pct"
    [naked.initial]
    pct = 0.20
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from portmargin._toml import deep_merge
from portmargin.errors import ParameterError

__all__ = [
    "BUILTIN_RULE_SETS",
    "FuturesRates",
    "LongOptionRules",
    "NakedLevel",
    "NakedRules",
    "RuleSet",
    "StrategyRules",
    "UnderlyingRules",
    "load_rule_set",
]

BUILTIN_RULE_SETS = ("deribit-standard", "strategy", "cboe")

Family = Literal["spread", "straddle", "butterfly", "condor", "iron", "box", "cover"]
Cover = Literal["future", "perpetual", "spot", "coin"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NakedLevel(_Frozen):
    """One level (initial or maintenance) of the naked short-option formula.

    Per unit of underlying, in USD, with ``S`` the underlying price and ``p`` the USD mark::

        req = p + max(pct·S − otm_offset·OTM, floor_pct·base, mark_pct·p)

    ``base`` is ``S`` or the strike ``K`` (``call_floor_basis`` / ``put_floor_basis``).
    """

    pct: float = Field(ge=0.0, le=1.0)
    floor_pct: float = Field(default=0.0, ge=0.0, le=1.0)
    otm_offset: bool = True
    call_floor_basis: Literal["spot", "strike"] = "spot"
    put_floor_basis: Literal["spot", "strike"] = "spot"
    mark_pct_call: float = Field(default=0.0, ge=0.0, le=1.0)
    mark_pct_put: float = Field(default=0.0, ge=0.0, le=1.0)


class NakedRules(_Frozen):
    """Naked short options: initial level, optional maintenance level (default: same)."""

    initial: NakedLevel
    maintenance: NakedLevel | None = None
    initial_at_least_maintenance: bool = False

    @property
    def maintenance_level(self) -> NakedLevel:
        """The maintenance level (the initial one when none is given)."""
        return self.maintenance if self.maintenance is not None else self.initial


class LongOptionRules(_Frozen):
    """Long options standing alone: paid in full unless long-dated (``loan_value`` credit)."""

    loan_value: float = Field(default=0.0, ge=0.0, le=1.0)
    loan_value_min_years: float = Field(default=0.75, ge=0.0)


class FuturesRates(_Frozen):
    """Size-scaled futures margin: ``rate = base + |size in coins| · size_slope``."""

    initial: float = Field(ge=0.0, le=1.0)
    maintenance: float = Field(ge=0.0, le=1.0)
    size_slope: float = Field(default=0.0, ge=0.0)


class UnderlyingRules(_Frozen):
    """Margin of underlying (spot/stock, pledged coin) legs, as fractions of their value."""

    long_initial: float = Field(ge=0.0, le=1.0)
    long_maintenance: float = Field(ge=0.0, le=1.0)
    short_initial: float = Field(ge=0.0, le=10.0)
    short_maintenance: float = Field(ge=0.0, le=10.0)


class StrategyRules(_Frozen):
    """Which strategy families are recognised and their extra parameters.

    ``equal_wings``: ``True`` restricts butterflies to equal strike spacing and condors to
    equal wing widths (the pre-2012 Cboe / IB definitions); ``False`` (the shipped sets)
    also recognises broken wings, charged their maximum potential loss under the universal
    spread rule (SEC Release 34-67752, SR-CBOE-2012-043).

    ``monotone``: ``True`` (the shipped sets) charges every group at least what its legs
    require once any one of its short options is removed, so that adding a short option
    never lowers the requirement; short proceeds then never pay for long premiums or for
    the cover's charge. ``False`` gives the manual's net figures (proceeds applied to the
    whole group: a debit spread costs its net debit).
    """

    families: tuple[Family, ...] = ()
    covers: tuple[Cover, ...] = ()
    equal_wings: bool = True
    monotone: bool = True
    protective_pct: float = Field(default=0.10, ge=0.0, le=1.0)
    conversion_pct: float = Field(default=0.10, ge=0.0, le=1.0)


class RuleSet(_Frozen):
    """A complete, validated rule set (see ``docs/methodology/rules.md``)."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    engine: Literal["per_leg", "strategy"]
    price_basis: Literal["index", "forward"] = "index"
    mpl_currency: Literal["settlement", "quote"] = "settlement"
    naked: NakedRules
    long_options: LongOptionRules = LongOptionRules()
    underlying: UnderlyingRules
    strategies: StrategyRules = StrategyRules()
    futures: dict[str, FuturesRates]

    @model_validator(mode="after")
    def _check(self) -> RuleSet:
        if "default" not in self.futures:
            raise ValueError("`futures` needs a `default` table")
        if self.engine == "per_leg" and self.strategies.families:
            raise ValueError("per_leg rule sets recognise no strategy families")
        return self

    def futures_rates(self, underlying: str) -> FuturesRates:
        """Futures rates of ``underlying`` (the ``default`` table if it has none)."""
        return self.futures.get(underlying, self.futures["default"])


def _read_builtin(name: str) -> dict[str, Any]:
    text = (
        resources.files("portmargin.rules").joinpath("params").joinpath(f"{name}.toml").read_text()
    )
    return tomllib.loads(text)


def _validate(data: dict[str, Any], where: str) -> RuleSet:
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise ParameterError(f"{where}: field `{field}`: {err['msg']}") from None


def load_rule_set(name_or_path: str | Path) -> RuleSet:
    """Load a built-in rule set by name or a TOML file (optionally ``base = "<built-in>"``).

    Parameters
    ----------
    name_or_path
        ``"deribit-standard"``, ``"strategy"``, ``"cboe"`` or the path of a TOML file.

    Raises
    ------
    ParameterError
        Unknown name, unreadable or malformed file, or a field that fails validation; the
        one-line message names the file and the field.
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_RULE_SETS:
        return _validate(_read_builtin(name_or_path), f"rule set {name_or_path!r}")
    path = Path(name_or_path)
    if not path.is_file():
        raise ParameterError(
            f"rule set {str(name_or_path)!r}: not a built-in name "
            f"({', '.join(BUILTIN_RULE_SETS)}) nor an existing file"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read rule set: {exc}") from None
    base = data.pop("base", None)
    if base is not None:
        if base not in BUILTIN_RULE_SETS:
            raise ParameterError(f"{path}: field `base`: unknown built-in rule set {base!r}")
        data = deep_merge(_read_builtin(str(base)), data)
    return _validate(data, str(path))
