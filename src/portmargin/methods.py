r"""Margin methods behind one protocol: scenario models, rule sets and Derive PMRM_2.

A :class:`Method` margins a :class:`~portmargin.portfolio.Portfolio` on a
:class:`~portmargin.market.MarketSnapshot` and returns the one result family,
:class:`~portmargin.models.result.MarginResult` (per pool: IM, MM, equity, excess,
components; per book: the totals in the pool currency or in USD). The families:

``portfolio`` (scenario grids)
    :class:`~portmargin.models.MarginModel`: ``deribit``, ``span``, ``span16``, ``tims`` or
    a model TOML file (``grid = ...``), on the one pipeline of :mod:`portmargin.models`.
``rules`` (strategy-based)
    :class:`RulesMethod`: ``deribit-standard``, ``strategy``, ``cboe`` or a rule-set TOML
    file (``engine = ...``); the strategy decomposition is the result's ``detail``.
``derive``
    Derive's PMRM_2 (:mod:`portmargin.derive`) applied to a book.
``var``
    VaR / expected shortfall over historical or Monte Carlo scenarios (:mod:`portmargin.var`):
    ``var``, ``var-hs``, ``var-mc``, ... or a TOML file with ``family = "var"``; a
    :class:`~portmargin.models.MarginModel` whose scenario sets come from history.

:func:`load_method` resolves a name or a TOML path to its method; ``compare`` and
``models`` iterate methods instead of adapting between engines.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from portmargin.errors import InputError, ParameterError, PortmarginError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.config import available_models
from portmargin.models.model import Family, load_model
from portmargin.models.result import MarginResult, PoolResult
from portmargin.portfolio import Portfolio
from portmargin.rules import SEARCH_TIME_LIMIT, RuleSet, RulesResult, load_rule_set, rules_margin
from portmargin.rules._params import BUILTIN_RULE_SETS
from portmargin.units import iso_z, usd_rate

__all__ = [
    "Family",
    "Method",
    "MethodInfo",
    "RulesMethod",
    "available_methods",
    "load_method",
    "register_method",
]


@runtime_checkable
class Method(Protocol):
    """A margin method: a name, a version, a family, and ``margin(portfolio, market)``."""

    @property
    def name(self) -> str:
        """The method's name (``deribit``, ``strategy``, ``derive``, ...)."""
        ...

    @property
    def version(self) -> str:
        """Its parameters' version, with any override files applied."""
        ...

    @property
    def family(self) -> Family:
        """``portfolio``, ``rules`` or ``derive``."""
        ...

    def margin(self, portfolio: Portfolio, market: MarketSnapshot) -> MarginResult:
        """Margin ``portfolio`` on ``market``."""
        ...


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """A method one can load by name, for listings (``portmargin models``)."""

    name: str
    family: Family
    description: str


@dataclass(frozen=True, slots=True)
class RulesMethod:
    """Rules-based (strategy) margin as a :class:`Method` (:func:`portmargin.rules.rules_margin`).

    Per pool the requirement is net of the positions' mark-to-market
    (``max(0, gross − short proceeds)``, ``docs/methodology/rules.md``); the result's
    components say so (``strategy_requirement`` − ``short_option_proceeds``, and the floor
    at 0 where the proceeds exceed it), and its ``detail`` is the full
    :class:`~portmargin.rules.RulesResult` (strategies, gross figures, greedy baseline).
    """

    rule_set: RuleSet
    time_limit: float | None = SEARCH_TIME_LIMIT
    """Seconds of pairing search (``None``: exact); :data:`portmargin.rules.SEARCH_TIME_LIMIT`."""

    @property
    def name(self) -> str:
        """The rule set's name."""
        return self.rule_set.name

    @property
    def version(self) -> str:
        """The rule set's version."""
        return self.rule_set.version

    @property
    def family(self) -> Family:
        """``rules``."""
        return "rules"

    def rules(self, portfolio: Portfolio, market: MarketSnapshot) -> RulesResult:
        """The rules engine's own result for ``portfolio`` (strategies and all)."""
        positions = []
        for name, qty in portfolio.net_positions().items():
            try:
                positions.append((market.instrument(name), qty))
            except PortmarginError as exc:
                raise InputError(f"{portfolio.name}: positions: {exc}") from None
        return rules_margin(
            positions, dict(portfolio.cash), market, self.rule_set, time_limit=self.time_limit
        )

    def margin(self, portfolio: Portfolio, market: MarketSnapshot) -> MarginResult:
        """Margin ``portfolio`` under the rule set, as the one result family."""
        res = self.rules(portfolio, market)
        pools = []
        for ccy, p in res.by_currency.items():
            comps = {
                "strategy_requirement": p.gross_initial_margin,
                "short_option_proceeds": -p.proceeds,
            }
            if p.proceeds > p.gross_initial_margin:
                comps["net_floor"] = p.proceeds - p.gross_initial_margin
            pools.append(
                PoolResult(
                    ccy,
                    p.initial_margin,
                    p.maintenance_margin,
                    p.equity,
                    comps,
                    (),
                    usd_rate(ccy, market),
                    {
                        "gross_maintenance_margin": p.gross_maintenance_margin,
                        "greedy_initial_margin": p.greedy_initial_margin,
                        "all_naked_initial_margin": p.all_naked_initial_margin,
                    },
                )
            )
        single = len(pools) == 1
        comps_total: dict[str, float] = {}
        for pr in pools:
            for k, v in pr.components.items():
                comps_total[k] = comps_total.get(k, 0.0) + v * (1.0 if single else pr.usd_rate)
        return MarginResult(
            model=self.name,
            model_version=self.version,
            currency=res.currency,
            valuation_time=iso_z(market.valuation_time),
            market_source=market.source,
            initial_margin=res.initial_margin,
            maintenance_margin=res.maintenance_margin,
            equity=res.equity,
            components=comps_total,
            worst_scenario=None,
            scenarios=(),
            positions=(),
            by_underlying=(),
            by_currency=tuple(pools),
            notes=(f"rules-based margin ({self.rule_set.engine}); see `portmargin rules`",),
            detail=res,
        )


_Loader = Callable[[str | None, bool | None], Method]
_EXTRA: dict[str, tuple[MethodInfo, _Loader]] = {}


def register_method(info: MethodInfo, loader: _Loader) -> None:
    """Make a method loadable by ``info.name`` (``loader(params_file, cross)``)."""
    _EXTRA[info.name] = (info, loader)


def _register_builtin_extras() -> None:
    """Import the packages that register further methods (``derive``, ``spanfile``)."""
    import portmargin.derive
    import portmargin.spanfile
    import portmargin.var

    portmargin.var.register()  # "var", "var-hs", "var-mc", ... (docs/methodology/var.md)


def available_methods() -> list[MethodInfo]:
    """Every method loadable by name: scenario models, rule sets, then the others."""
    _register_builtin_extras()
    out = [MethodInfo(n, "portfolio", load_model(n).params.description) for n in available_models()]
    out += [MethodInfo(n, "rules", load_rule_set(n).description) for n in BUILTIN_RULE_SETS]
    out += [info for info, _ in _EXTRA.values()]
    return out


def load_method(
    name_or_path: str | Path, *, params_file: str | Path | None = None, cross: bool | None = None
) -> Method:
    """The method called ``name_or_path`` (a shipped name or a TOML file's path).

    ``params_file`` is merged over a scenario model's parameters (``--params``); ``cross``
    switches a scenario model to one USD pool. A TOML file is a scenario model if it has a
    ``grid`` and a rule set if it has an ``engine``.

    Raises
    ------
    ParameterError
        For an unknown name, an unreadable file, or an option the method does not take.
    """
    _register_builtin_extras()
    name = str(name_or_path)
    pfile = None if params_file is None else str(params_file)
    if name in _EXTRA:
        return _EXTRA[name][1](pfile, cross)
    if Path(name).suffix.lower() in (".spn", ".pa2") and Path(name).is_file():
        if pfile is not None or cross:
            raise ParameterError(f"{name}: a SPAN file takes no --params or --cross")
        from portmargin.spanfile import SpanFileMethod

        return SpanFileMethod.load(name)
    family: Family = "portfolio"
    if name in BUILTIN_RULE_SETS:
        family = "rules"
    elif name not in available_models() and Path(name).is_file():
        try:
            head = tomllib.loads(Path(name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ParameterError(f"{name}: cannot read method file: {exc}") from None
        if head.get("family") == "var":
            from portmargin.var import load_var_model

            return load_var_model(name, params_file=pfile, cross=cross)
        family = "rules" if "engine" in head and "grid" not in head else "portfolio"
    if family == "rules":
        if pfile is not None or cross:
            raise ParameterError(
                f"{name}: rule sets take no --params or --cross (write a rule-set file with "
                '`base = "<rule set>"` instead)'
            )
        return RulesMethod(load_rule_set(name))
    return load_model(name, params_file=pfile, cross=cross)
