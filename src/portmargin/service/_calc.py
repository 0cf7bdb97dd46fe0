"""The calculators behind ``/v1/margin``, ``/v1/rules``, ``/v1/compare`` and ``/v1/whatif``.

Each builds the same JSON document as its command (``portmargin margin|rules|compare|whatif
--format json``) with the command's own functions, so the API and the CLI cannot drift.
Methods are named, never given as paths: a client cannot make the server read a file.
Parameter overrides (``params``) are written to a private temporary TOML file and merged
exactly as ``--params`` is.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portmargin.accounts import Account, AccountSettings
from portmargin.errors import PortmarginError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.methods import Method, available_methods, load_method
from portmargin.portfolio import Portfolio
from portmargin.service._problems import Problem
from portmargin.service._schemas import (
    BacktestRequest,
    CompareRequest,
    MarginRequest,
    PortfolioIn,
    PositionIn,
    RulesRequest,
    WhatIfRequest,
)

if TYPE_CHECKING:
    from portmargin.accounts._whatif import SessionCache
    from portmargin.models import MarginModel
    from portmargin.var.history import History

__all__ = ["MAX_BACKTEST_EVALUATIONS", "VAR_COST", "Calculators", "toml_text"]


def _toml_value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Problem(422, f"{where}: numbers must be finite", field=where)
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list) and all(not isinstance(x, dict) for x in v):
        return "[" + ", ".join(_toml_value(x, where) for x in v) + "]"
    raise Problem(422, f"{where}: unsupported value {type(v).__name__}", field=where)


def toml_text(doc: Mapping[str, Any], prefix: str = "params") -> str:
    """A JSON object (tables, arrays of tables, scalars) as TOML, for a ``--params`` file."""
    lines: list[str] = []
    _table(doc, (), lines, prefix)
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _table(doc: Mapping[str, Any], path: tuple[str, ...], lines: list[str], where: str) -> None:
    subs: list[tuple[str, Any]] = []
    for k, v in doc.items():
        w = f"{where}.{k}"
        if isinstance(v, dict) or (
            isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        ):
            subs.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_toml_value(v, w)}")
    for k, v in subs:
        name = ".".join(_key(p) for p in (*path, k))
        if isinstance(v, dict):
            lines.append(f"[{name}]")
            _table(v, (*path, k), lines, f"{where}.{k}")
        else:
            for i, entry in enumerate(v):
                lines.append(f"[[{name}]]")
                _table(entry, (*path, k), lines, f"{where}.{k}.{i}")


class Calculators:
    """Stateless calculations on a book (thread-safe; methods cached by name)."""

    def __init__(self, *, max_legs: int) -> None:
        self.max_legs = max_legs
        self._methods: dict[tuple[str, bool], Method] = {}
        self._lock = threading.Lock()
        self._names: set[str] | None = None
        self._history: History | None = None
        self._sessions: dict[int, SessionCache] = {}

    def names(self) -> set[str]:
        """Every method name a request may use."""
        if self._names is None:
            self._names = {m.name for m in available_methods()}
        return self._names

    def method(
        self, name: str, params: Mapping[str, Any] | None, *, cross: bool, field: str
    ) -> Method:
        """The method ``name`` (with ``params`` merged), or a 422 problem naming ``field``."""
        if name not in self.names():
            raise Problem(
                422,
                f"{field}: unknown method {name!r} (use one of {', '.join(sorted(self.names()))})",
                field=field,
            )
        if params:
            with tempfile.TemporaryDirectory(prefix="pm-params-") as tmp:
                path = Path(tmp) / "request-params.toml"
                path.write_text(toml_text(params), encoding="utf-8")
                try:
                    return load_method(name, params_file=path, cross=True if cross else None)
                except PortmarginError as exc:
                    text = str(exc).replace(str(path), "params")
                    raise Problem(422, text, field="params") from None
        key = (name, cross)
        with self._lock:
            have = self._methods.get(key)
        if have is None:
            try:
                have = load_method(name, cross=True if cross else None)
            except PortmarginError as exc:
                raise Problem(422, f"{field}: {exc}", field=field) from None
            with self._lock:
                self._methods[key] = have
        return have

    def sessions(self, model: MarginModel) -> SessionCache:
        """The what-if session cache of a cached method (one per method object)."""
        from portmargin.accounts._whatif import SessionCache

        with self._lock:
            cache = self._sessions.get(id(model))
            if cache is None or cache.model is not model:
                cache = self._sessions[id(model)] = SessionCache(model)
            return cache

    def portfolio(self, p: PortfolioIn, *, field: str = "portfolio") -> Portfolio:
        """The request's book (limits checked, legs bounded)."""
        from portmargin.io.portfolio_files import portfolio_from_dict

        if len(p.positions) > self.max_legs:
            raise Problem(
                422,
                f"{field}.positions: {len(p.positions)} legs; at most {self.max_legs} per request",
                field=f"{field}.positions",
            )
        try:
            return portfolio_from_dict(p.model_dump(exclude_none=True), source=field)
        except PortmarginError as exc:
            raise Problem(422, str(exc), field=_field_of(str(exc), field)) from None

    @staticmethod
    def inline_market(doc: Mapping[str, Any]) -> MarketSnapshot:
        """An inline market file, or a 422 problem."""
        from portmargin.io.market_files import market_from_dict

        try:
            return market_from_dict(dict(doc), source="market")
        except PortmarginError as exc:
            raise Problem(422, str(exc), field=_field_of(str(exc), "market")) from None

    @staticmethod
    def resolve(book: Portfolio, market: MarketSnapshot, *, where: str) -> dict[str, str]:
        """Instrument → quote source, or a 422 problem naming the unknown instrument."""
        from portmargin.cli._common import resolve_book

        try:
            return resolve_book(book, market, where=where)
        except PortmarginError as exc:
            raise Problem(422, str(exc), field=where) from None

    # -- the four documents -------------------------------------------------------------------
    def margin(self, req: MarginRequest, market: MarketSnapshot) -> dict[str, Any]:
        """``portmargin margin --format json``."""
        from portmargin.cli._margin import margin_json

        book = self.portfolio(req.portfolio)
        quotes = self.resolve(book, market, where="portfolio.positions")
        method = self.method(req.model, req.params, cross=req.cross, field="model")
        with _as_problem("portfolio.positions"):
            return margin_json(method.margin(book, market), quotes)

    def rules(self, req: RulesRequest, market: MarketSnapshot) -> dict[str, Any]:
        """``portmargin rules --format json``."""
        from portmargin.cli._rules import rules_json
        from portmargin.methods import RulesMethod
        from portmargin.rules import load_rule_set
        from portmargin.rules._params import BUILTIN_RULE_SETS

        if req.rules not in BUILTIN_RULE_SETS:
            raise Problem(
                422,
                f"rules: unknown rule set {req.rules!r} (use {', '.join(BUILTIN_RULE_SETS)})",
                field="rules",
            )
        book = self.portfolio(req.portfolio)
        self.resolve(book, market, where="portfolio.positions")
        with _as_problem("portfolio.positions"):
            res = RulesMethod(load_rule_set(req.rules)).rules(book, market)
            return dict(rules_json(res, market))

    def compare(self, req: CompareRequest, market: MarketSnapshot) -> dict[str, Any]:
        """``portmargin compare --format json``."""
        from portmargin.cli._rules import compare_json
        from portmargin.compare import compare

        book = self.portfolio(req.portfolio)
        self.resolve(book, market, where="portfolio.positions")
        method = self.method(req.model, req.params, cross=req.cross, field="model")
        with _as_problem("portfolio.positions"):
            c = compare(
                book, market, model=method, min_equity_usd=req.min_equity, approved=req.pm_approved
            )
            return compare_json(c)

    def whatif(
        self,
        req: WhatIfRequest,
        market: MarketSnapshot,
        *,
        account: Account | None,
        settings: AccountSettings | None,
    ) -> dict[str, Any]:
        """``portmargin whatif --format json`` for a book, or for a stored ``account``."""
        from portmargin.accounts import what_if
        from portmargin.cli._whatif import whatif_json
        from portmargin.models import MarginModel

        if len(req.trades) > self.max_legs:
            raise Problem(422, f"trades: at most {self.max_legs} legs", field="trades")
        method = self.method(req.model, req.params, cross=req.cross, field="model")
        if not isinstance(method, MarginModel):
            raise Problem(
                422,
                f"model: whatif needs a portfolio-margin model; {method.name} is a "
                f"{method.family} method",
                field="model",
            )
        if account is None:
            if req.portfolio is None:
                raise Problem(422, "give a portfolio or an account", field="portfolio")
            book = self.portfolio(req.portfolio)
            self.resolve(book, market, where="portfolio.positions")
            account = Account.from_portfolio(book, pm_approved=req.pm_approved)
        trades: dict[str, float] = {}
        for i, t in enumerate(req.trades):
            if t.quantity == 0.0:
                raise Problem(
                    422, f"trades.{i}.quantity: must be non-zero", field=f"trades.{i}.quantity"
                )
            trades[t.instrument.strip()] = trades.get(t.instrument.strip(), 0.0) + t.quantity
        self.resolve(Portfolio.of(trades), market, where="trades")
        min_equity = req.min_equity
        if settings is None or min_equity is not None:
            base = settings or AccountSettings()
            settings = AccountSettings(
                haircuts=base.haircuts,
                margin_call_level=base.margin_call_level,
                liquidation_level=base.liquidation_level,
                min_pm_equity_usd=100_000.0 if min_equity is None else min_equity,
                fallback_rule_set=base.fallback_rule_set,
            )
        sessions = None if req.params else self.sessions(method)
        try:
            res = what_if(account, trades, market, method, settings, sessions=sessions)
        except PortmarginError as exc:
            raise Problem(422, str(exc), field="trades") from None
        return whatif_json(res, settings.min_pm_equity_usd)

    def backtest(self, req: BacktestRequest) -> dict[str, Any]:
        """``portmargin backtest --format json`` on the shipped history (bounded work)."""
        from portmargin.backtest.methods import resolve_methods
        from portmargin.backtest.runner import run_backtest
        from portmargin.backtest.strategies import strategy

        for i, name in enumerate(req.models):
            if name not in self.names():
                raise Problem(
                    422,
                    f"models.{i}: unknown method {name!r} "
                    f"(use one of {', '.join(sorted(self.names()))})",
                    field=f"models.{i}",
                )
        with _as_problem("strategy"):
            strat = strategy(req.strategy)
        hist = self.history()
        unds = tuple(dict.fromkeys(req.underlyings))
        first, last = hist.joint_start(unds), hist.last - timedelta(days=req.horizon)
        # within the history (the runner names a start or end outside it, before any work)
        t_from, t_to = max(req.start or first, first), min(req.end or last, last)
        days = max(0, (t_to - t_from).days // req.step + 1)
        with _as_problem("models"):
            methods = resolve_methods(req.models, hist)
        # a VaR model revalues ~1,800 historical scenarios a day: it counts as VAR_COST grids
        per_day = sum(VAR_COST if m.family == "var" else 1 for _, m in methods)
        if days * per_day > MAX_BACKTEST_EVALUATIONS:
            raise Problem(
                422,
                f"step: {days} days x {len(req.models)} models = {days * per_day:,} margin "
                f"evaluations (a VaR model counts {VAR_COST}); at most "
                f"{MAX_BACKTEST_EVALUATIONS:,} per request (narrow start/end, raise step, or "
                "run `portmargin backtest`)",
                field="step",
            )
        try:
            result = run_backtest(
                strat,
                unds,
                methods,
                history=hist,
                start=req.start,
                end=req.end,
                horizon_days=req.horizon,
                tenor_days=req.tenor,
                size=req.size,
                step_days=req.step,
                seed=req.seed,
                requirement=req.requirement,
                confidence=req.confidence,
            )
        except PortmarginError as exc:
            text = str(exc)
            flag = text.split(" ", 1)[0]
            field = _BACKTEST_FLAGS.get(flag, "strategy")
            raise Problem(422, text.replace(flag, field, 1), field=field) from None
        return result.to_dict()

    def history(self) -> History:
        """The shipped daily history (read once)."""
        from portmargin.var.history import load_history

        with self._lock:
            if self._history is None:
                self._history = load_history(None)
            return self._history


MAX_BACKTEST_EVALUATIONS = 4_000
"""Days × models of one ``POST /v1/backtest``, a VaR model counting :data:`VAR_COST`: about
8 s on the 2-core machine (1,818 days × 2 grid models in 7.5 s; a VaR model, 6 ms a day)."""

VAR_COST = 3
"""How many grid-model evaluations one day of a VaR model counts for."""

_BACKTEST_FLAGS = {
    "--from": "start",
    "--to": "end",
    "--horizon": "horizon",
    "--step": "step",
    "--tenor": "tenor",
    "--size": "size",
    "--underlying:": "underlyings",
    "--confidence": "confidence",
}


@contextmanager
def _as_problem(field: str) -> Iterator[None]:
    """A calculation's one-line error as a 422 problem naming ``field``."""
    try:
        yield
    except PortmarginError as exc:
        raise Problem(422, str(exc), field=field) from None


def _field_of(message: str, default: str) -> str:
    """The dotted field a loader's one-line message names after ``source:`` (or ``default``)."""
    head, _, rest = message.partition(": ")
    if head == default and rest:
        cand = rest.split(":", 1)[0].strip()
        if cand and " " not in cand:
            return f"{default}.{cand}"
    return default


def positions_doc(positions: list[PositionIn]) -> list[dict[str, Any]]:
    """Positions as the accounts file writes them."""
    return [{"instrument": p.instrument, "quantity": p.quantity} for p in positions]
