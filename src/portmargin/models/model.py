r"""A scenario-based margin model: its parameters, scenario sets and risk arrays.

:class:`MarginModel` is the configured method (``deribit``, ``span``, ``span16``, ``tims`` or
a model file): it builds the scenario set of each underlying from its parameters
(:mod:`portmargin.models.grids`), the risk arrays of instruments on a market
(:mod:`portmargin.risk`) and the aggregation constants of each (pool, underlying)
(:class:`~portmargin.models.engine.Aggregation`). Margining runs on the one pipeline,
:class:`~portmargin.models.session.MarginSession` (stage 1, vectorised over accounts) and
:mod:`portmargin.models.engine` (stage 2); :meth:`MarginModel.margin` is that pipeline on
one portfolio, explained.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from portmargin._types import FloatArray
from portmargin.errors import InputError, ParameterError, PortmarginError
from portmargin.instruments import Instrument
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.config import ModelParams, load_model_params
from portmargin.models.engine import CHARGES, CREDITS, GRIDS, Aggregation
from portmargin.models.result import MarginResult
from portmargin.models.session import MarginSession
from portmargin.portfolio import Portfolio
from portmargin.risk import RiskArray, instrument_table, risk_array
from portmargin.scenarios import ScenarioSet
from portmargin.units import USD, pool_currency

__all__ = ["Family", "MarginModel", "load_model"]

Family = Literal["portfolio", "rules", "derive", "var"]
"""The families of margin methods (:mod:`portmargin.methods`)."""


class MarginModel:
    """A scenario-based portfolio-margin model configured by :class:`ModelParams`.

    Parameters
    ----------
    params
        Validated model parameters.
    cross
        Override the file's ``currency_mode``: True for one USD pool, False for segregated.
    """

    def __init__(self, params: ModelParams, *, cross: bool | None = None) -> None:
        for charge in params.charges:
            if charge.kind not in CHARGES:
                raise ParameterError(
                    f"model {params.name}: unknown charge kind {charge.kind!r} "
                    f"(known: {', '.join(sorted(CHARGES)) or 'none'})"
                )
        for credit in params.credits:
            if credit.kind not in CREDITS:
                raise ParameterError(
                    f"model {params.name}: unknown credit kind {credit.kind!r} "
                    f"(known: {', '.join(sorted(CREDITS)) or 'none'})"
                )
        self.params = params
        self.cross = params.currency_mode == "cross" if cross is None else cross
        self._grid = GRIDS[params.grid]
        self._scenarios = lru_cache(maxsize=None)(self._build_scenarios)
        self._aggregations = lru_cache(maxsize=256)(self._build_aggregation)

    @property
    def name(self) -> str:
        """Model name."""
        return self.params.name

    @property
    def version(self) -> str:
        """The parameters' version, ``+ overrides(file, ...)`` when override files applied."""
        extra = self.params.overrides
        return (
            f"{self.params.version} + overrides({', '.join(extra)})"
            if extra
            else self.params.version
        )

    @property
    def family(self) -> Family:
        """``portfolio``: a scenario-based portfolio-margin method."""
        return "portfolio"

    def _build_scenarios(self, underlying: str) -> ScenarioSet:
        return self._grid(self.params.underlying(underlying))

    def scenario_set(self, underlying: str) -> ScenarioSet:
        """The scenarios applied to ``underlying``."""
        return self._scenarios(underlying)

    def pool_of(self, instrument: Instrument) -> str:
        """Margin pool of an instrument under this model."""
        return USD if self.cross else pool_currency(instrument.settlement_currency)

    def risk_arrays(
        self, instruments: Sequence[Instrument], market: MarketSnapshot
    ) -> dict[str, RiskArray]:
        """Risk arrays per underlying for ``instruments`` (one vectorised call each)."""
        groups: dict[str, list[Instrument]] = {}
        for inst in instruments:
            groups.setdefault(inst.underlying, []).append(inst)
        return {
            und: risk_array(instrument_table(insts, market), self.scenario_set(und))
            for und, insts in groups.items()
        }

    # ------------------------------------------------------------------------------
    def session(
        self, market: MarketSnapshot, instruments: Sequence[str | Instrument] | None = None
    ) -> MarginSession:
        """A :class:`~portmargin.models.session.MarginSession` of this model on ``market``."""
        return MarginSession(market, self, instruments)

    def margin(self, portfolio: Portfolio, market: MarketSnapshot) -> MarginResult:
        """Margin ``portfolio`` on ``market``: a batch of one, explained.

        The one pipeline (:mod:`portmargin.models.session`) on a session whose universe is
        the portfolio's own instruments, with its single row explained
        (:meth:`MarginSession.explain`): the figures are those ``portmargin batch`` computes
        for the same book.

        Raises
        ------
        InputError
            Unknown instruments or currencies without a price, naming them.
        """
        net = portfolio.net_positions()
        canonical: dict[str, float] = {}
        resolved: dict[str, Instrument] = {}
        for name, qty in net.items():
            try:
                inst = market.instrument(name)
            except PortmarginError as exc:
                raise InputError(f"{portfolio.name}: positions: {exc}") from None
            canonical[inst.name] = canonical.get(inst.name, 0.0) + qty
            resolved[inst.name] = inst
        for ccy in portfolio.cash:
            if pool_currency(ccy) not in (USD, *market.underlyings):
                raise InputError(f"{portfolio.name}: cash.{ccy}: no {ccy} index in the market")
        held = {k: v for k, v in canonical.items() if v != 0.0}
        session = self.session(market, [resolved[k] for k in held])
        return session.explain(held, portfolio.cash, name=portfolio.name)

    def aggregate(self, vec: FloatArray, underlying: str, pool: str, rate: float) -> FloatArray:
        """Aggregated scenario P&L of ``vec`` (shape ``(..., n_scen)``) for one pool/underlying.

        A pure function of the scenario matrix (:func:`aggregate_scenarios`), so a batch
        engine can call it on an ``(n_accounts, n_scen)`` matrix; its constants are cached
        per (underlying, pool, rate).
        """
        return self._aggregations(underlying, pool, rate)(vec)

    def _build_aggregation(self, underlying: str, pool: str, rate: float) -> Aggregation:
        return Aggregation.of(
            self.scenario_set(underlying),
            self.params.currency(pool),
            rate=rate,
            in_usd=pool == USD,
        )


def load_model(
    name_or_path: str, *, params_file: str | None = None, cross: bool | None = None
) -> MarginModel:
    """Load a shipped model (``deribit``, ``span16``) or a model file, with overrides."""
    return MarginModel(load_model_params(name_or_path, overrides=params_file), cross=cross)
