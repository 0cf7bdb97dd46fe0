"""Parameter files of the Derive method: the shipped mainnet TOML and user overrides.

The shipped file ``portmargin/derive/params/pmrm2_mainnet.toml`` holds Derive's mainnet
PMRM_2 configuration (``derivexyz/v2-core:scripts/config-mainnet.sol`` @ ``42a4e48c``,
``getPMRM2Params`` and ``getDefaultPM2Scenarios``), the per-sub-account expiry limit and the
collateral haircuts of BTC and ETH. Its keys are the fields of
:class:`~portmargin.derive.PMRM2Params`::

    name, version, description                      strings
    [vol_shock] [margin] [basis] [other] [skew]     one key per field of the parameter block
    [account]        max_expiries                   integer >= 1
    [collateral.C]   mm_haircut, im_haircut         per coin C, fractions of value
    [[scenarios]]    spot_shock, direction, dampening, kind (optional)

:func:`load_config` merges a user file over it table by table
(:func:`portmargin._toml.deep_merge`; a ``[[scenarios]]`` list replaces the whole list) and
validates the result. Every problem is one :class:`~portmargin.errors.ParameterError` line
``"<file>: <key path>: <reason>"``; ``<file>`` is the override's path (``(over derive
mainnet)``) when the key comes from it, e.g. ``my.toml (over derive mainnet): margin.mm_los_factor:
unknown key``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from portmargin._toml import deep_merge, parse_toml
from portmargin.derive.params import (
    BasisContingencyParams,
    MarginParams,
    OtherContingencyParams,
    PMRM2Params,
    ScenarioKind,
    SkewShockParams,
    StressScenario,
    VolShockDirection,
    VolShockParams,
)
from portmargin.errors import ParameterError

__all__ = ["MAINNET_FILE", "CollateralHaircuts", "DeriveConfig", "load_config"]

MAINNET_FILE = "pmrm2_mainnet.toml"
"""The shipped parameter file (in ``portmargin/derive/params/``)."""

_SHIPPED_LABEL = "derive mainnet"

_BLOCKS: Mapping[str, type] = MappingProxyType(
    {
        "vol_shock": VolShockParams,
        "margin": MarginParams,
        "basis": BasisContingencyParams,
        "other": OtherContingencyParams,
        "skew": SkewShockParams,
    }
)
_SCENARIO_KEYS = ("spot_shock", "direction", "dampening", "kind")
_COLLATERAL_KEYS = ("mm_haircut", "im_haircut")
_ACCOUNT_KEYS = ("max_expiries",)
_TOP_KEYS = ("name", "version", "description", *_BLOCKS, "account", "collateral", "scenarios")


@dataclass(frozen=True, slots=True)
class CollateralHaircuts:
    """Haircuts of one collateral asset (``PMRMLib_2.CollateralParameters``), fractions of value.

    Attributes
    ----------
    mm_haircut
        ``MMHaircut``: ``v·mm_haircut`` is added to MM (and IM).
    im_haircut
        ``IMHaircut``: ``v·im_haircut`` is added to IM on top.

    The on-chain setter requires ``mm_haircut <= 1`` and ``mm_haircut + im_haircut <= 1``
    (``derivexyz/v2-core:src/risk-managers/PMRMLib_2.sol`` ``setCollateralParameters``).
    """

    mm_haircut: float
    im_haircut: float

    def __post_init__(self) -> None:
        for name in ("mm_haircut", "im_haircut"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ParameterError(f"{name}: must be a finite number >= 0, got {value!r}")
        if self.mm_haircut + self.im_haircut > 1.0:
            raise ParameterError(
                f"im_haircut: mm_haircut + im_haircut must be <= 1 (the on-chain setter's rule), "
                f"got {self.mm_haircut!r} + {self.im_haircut!r}"
            )


@dataclass(frozen=True, slots=True)
class DeriveConfig:
    """A validated Derive parameter set: PMRM_2 parameters plus what a book mapping needs.

    Attributes
    ----------
    name, version, description
        From the file; ``version`` is the shipped version.
    params
        PMRM_2 parameters and scenarios.
    collateral
        Haircuts per coin (``BTC``, ``ETH``, ...) of a coin held in its own sub-account.
    max_expiries
        Derive's limit of distinct expiries per sub-account (exceeding it is noted, not refused).
    overrides
        The override files applied, in order.
    """

    name: str
    version: str
    description: str
    params: PMRM2Params
    collateral: Mapping[str, CollateralHaircuts]
    max_expiries: int
    overrides: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``version``, plus ``+ overrides(f1)`` when an override file was applied."""
        if self.overrides:
            return f"{self.version} + overrides({', '.join(self.overrides)})"
        return self.version


def load_config(params_file: str | Path | None = None) -> DeriveConfig:
    """The shipped mainnet parameters, with ``params_file`` merged over them if given.

    Parameters
    ----------
    params_file
        A TOML file of the same schema (module docstring); any subset of keys. Its tables
        merge key by key; a ``[[scenarios]]`` list replaces the shipped list.

    Raises
    ------
    ParameterError
        ``"<file>: <key path>: <reason>"`` for an unreadable or invalid file, an unknown key
        (a misspelling), a value of the wrong type or out of range.
    """
    shipped = resources.files("portmargin.derive").joinpath("params", MAINNET_FILE)
    base = _parse(_SHIPPED_LABEL, shipped.read_text(encoding="utf-8"))
    _check_keys(base, _SHIPPED_LABEL)
    if params_file is None:
        return _build(base, lambda _path: _SHIPPED_LABEL, ())
    path = Path(params_file)
    where = f"{params_file} (over {_SHIPPED_LABEL})"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(f"{params_file}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{params_file}: cannot read ({exc.__class__.__name__})") from None
    over = _parse(where, text)
    _check_keys(over, where)
    merged = deep_merge(base, over)

    def source(key_path: tuple[str, ...]) -> str:
        node: Any = over
        for part in key_path:
            if not isinstance(node, dict) or part not in node:
                return _SHIPPED_LABEL
            node = node[part]
        return where

    return _build(merged, source, (str(params_file),))


def _parse(source: str, text: str) -> dict[str, Any]:
    return parse_toml(source, text)


def _unknown(where: str, path: str, known: tuple[str, ...]) -> ParameterError:
    return ParameterError(f"{where}: {path}: unknown key (known: {', '.join(known)})")


def _check_keys(doc: Mapping[str, Any], where: str) -> None:
    """Refuse any key the schema does not have, naming the file and the key path."""
    for key, value in doc.items():
        if key not in _TOP_KEYS:
            raise _unknown(where, key, _TOP_KEYS)
        if (key in _BLOCKS or key in ("account", "collateral")) and not isinstance(value, dict):
            raise ParameterError(f"{where}: {key}: must be a table, got {value!r}")
        if key in _BLOCKS:
            known = tuple(f.name for f in fields(_BLOCKS[key]))
            for sub in value:
                if sub not in known:
                    raise _unknown(where, f"{key}.{sub}", known)
        elif key == "account":
            for sub in value:
                if sub not in _ACCOUNT_KEYS:
                    raise _unknown(where, f"account.{sub}", _ACCOUNT_KEYS)
        elif key == "collateral":
            for coin, table in value.items():
                if not isinstance(table, dict):
                    raise ParameterError(
                        f"{where}: collateral.{coin}: must be a table "
                        "(mm_haircut, im_haircut), got {table!r}"
                    )
                for sub in table:
                    if sub not in _COLLATERAL_KEYS:
                        raise _unknown(where, f"collateral.{coin}.{sub}", _COLLATERAL_KEYS)
        elif key == "scenarios":
            if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
                raise ParameterError(f"{where}: scenarios: must be an array of tables")
            for i, item in enumerate(value):
                for sub in item:
                    if sub not in _SCENARIO_KEYS:
                        raise _unknown(where, f"scenarios[{i}].{sub}", _SCENARIO_KEYS)


def _number(value: object, where: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(f"{where}: {path}: must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ParameterError(f"{where}: {path}: must be a finite number, got {value!r}")
    return out


def _string(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ParameterError(f"{where}: {key}: must be a non-empty string, got {value!r}")
    return value


def _split(exc: ParameterError) -> tuple[str, str]:
    """``("field", "reason")`` of a parameter class's ``"Class.field: reason"`` message."""
    head, _, reason = str(exc).partition(": ")
    return head.rsplit(".", 1)[-1], reason


def _build(
    doc: Mapping[str, Any], source: Callable[[tuple[str, ...]], str], overrides: tuple[str, ...]
) -> DeriveConfig:
    """Validate the merged document into a :class:`DeriveConfig`; errors name the key's file."""
    blocks: dict[str, object] = {}
    for key, cls in _BLOCKS.items():
        table = doc.get(key)
        if not isinstance(table, dict):
            raise ParameterError(f"{source((key,))}: {key}: required table missing")
        values: dict[str, float] = {}
        for f in fields(cls):
            if f.name not in table:
                raise ParameterError(f"{source((key,))}: {key}.{f.name}: required key missing")
            values[f.name] = _number(table[f.name], source((key, f.name)), f"{key}.{f.name}")
        try:
            blocks[key] = cls(**values)
        except ParameterError as exc:
            field, reason = _split(exc)
            raise ParameterError(f"{source((key, field))}: {key}.{field}: {reason}") from None
    scenarios = _scenarios(doc.get("scenarios"), source(("scenarios",)))
    account = doc.get("account", {})
    raw_max = account.get("max_expiries") if isinstance(account, dict) else None
    where_max = source(("account", "max_expiries"))
    if isinstance(raw_max, bool) or not isinstance(raw_max, int) or raw_max < 1:
        raise ParameterError(f"{where_max}: account.max_expiries: must be an integer >= 1")
    collateral: dict[str, CollateralHaircuts] = {}
    for coin, table in (doc.get("collateral") or {}).items():
        code = str(coin).upper()
        vals = {}
        for sub in _COLLATERAL_KEYS:
            if sub not in table:
                raise ParameterError(
                    f"{source(('collateral', coin))}: collateral.{coin}.{sub}: required key missing"
                )
            vals[sub] = _number(
                table[sub], source(("collateral", coin, sub)), f"collateral.{coin}.{sub}"
            )
        try:
            collateral[code] = CollateralHaircuts(**vals)
        except ParameterError as exc:
            field, reason = _split(exc)
            raise ParameterError(
                f"{source(('collateral', coin, field))}: collateral.{coin}.{field}: {reason}"
            ) from None
    try:
        params = PMRM2Params(
            scenarios=scenarios,
            vol_shock=blocks["vol_shock"],  # type: ignore[arg-type]
            margin=blocks["margin"],  # type: ignore[arg-type]
            basis=blocks["basis"],  # type: ignore[arg-type]
            other=blocks["other"],  # type: ignore[arg-type]
            skew=blocks["skew"],  # type: ignore[arg-type]
        )
    except ParameterError as exc:
        raise ParameterError(f"{source(('scenarios',))}: scenarios: {exc}") from None
    return DeriveConfig(
        name=_string(doc, "name", source(("name",))),
        version=_string(doc, "version", source(("version",))),
        description=_string(doc, "description", source(("description",))),
        params=params,
        collateral=MappingProxyType(collateral),
        max_expiries=raw_max,
        overrides=overrides,
    )


def _scenarios(raw: object, where: str) -> tuple[StressScenario, ...]:
    if not isinstance(raw, list) or not raw:
        raise ParameterError(f"{where}: scenarios: must be a non-empty array of tables")
    out: list[StressScenario] = []
    allowed = ", ".join(d.value for d in VolShockDirection)
    for i, item in enumerate(raw):
        at = f"scenarios[{i}]"
        for key in ("spot_shock", "direction", "dampening"):
            if key not in item:
                raise ParameterError(f"{where}: {at}.{key}: required key missing")
        try:
            direction = VolShockDirection(item["direction"])
        except ValueError:
            raise ParameterError(
                f"{where}: {at}.direction: must be one of {allowed}, got {item['direction']!r}"
            ) from None
        x = _number(item["spot_shock"], where, f"{at}.spot_shock")
        w = _number(item["dampening"], where, f"{at}.dampening")
        if direction.is_skew and x != 1.0:
            raise ParameterError(
                f"{where}: {at}.spot_shock: a {direction.value} skew scenario must have "
                f"spot_shock = 1 (the on-chain setter rejects {x!r})"
            )
        if "kind" in item:
            try:
                kind = ScenarioKind(item["kind"])
            except ValueError:
                kinds = ", ".join(k.value for k in ScenarioKind)
                raise ParameterError(
                    f"{where}: {at}.kind: must be one of {kinds}, got {item['kind']!r}"
                ) from None
        elif direction.is_skew:
            kind = ScenarioKind.SKEW
        else:
            kind = ScenarioKind.REGULAR if w == 1.0 else ScenarioKind.TAIL
        try:
            out.append(StressScenario(spot_shock=x, direction=direction, dampening=w, kind=kind))
        except ParameterError as exc:
            raise ParameterError(f"{where}: {at}: {exc}") from None
    return tuple(out)
