"""Request and response schemas of the REST API (pydantic), separate from the domain values.

Requests are validated here, field by field (finite numbers, bounded lists and strings), so
a bad field is a 422 problem naming it. Responses describe the CLI's JSON contracts
(``docs/json.md``): the ``/v1/margin`` body *is* ``portmargin margin --format json`` and
``/v1/whatif`` is ``portmargin whatif --format json``; the models list the documented fields
and allow the ones added later (``extra="allow"``), as the contract does.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from portmargin.io import limits

__all__ = [
    "AccountFigures",
    "AccountIn",
    "AccountList",
    "AccountView",
    "BacktestRequest",
    "CompareRequest",
    "EventOut",
    "EventPage",
    "KeyCreated",
    "KeyIn",
    "KeyOut",
    "MarginDocument",
    "MarginRequest",
    "MarketPush",
    "MarketUpdateIn",
    "MarketView",
    "PoolOut",
    "PortfolioIn",
    "PositionIn",
    "RulesRequest",
    "StepOut",
    "TradeIn",
    "TransferIn",
    "WhatIfDocument",
    "WhatIfRequest",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]
Quantity = Annotated[
    float, Field(allow_inf_nan=False, ge=-limits.QUANTITY_MAX, le=limits.QUANTITY_MAX)
]
Balance = Annotated[
    float, Field(allow_inf_nan=False, ge=-limits.BALANCE_MAX, le=limits.BALANCE_MAX)
]
Instrument = Annotated[str, Field(min_length=1, max_length=limits.NAME_MAX_CHARS)]
Currency = Annotated[str, Field(min_length=1, max_length=limits.CURRENCY_MAX_CHARS)]
ClientOrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
MethodName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
"""A shipped method's name; file paths are refused (a client never names a server file)."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- requests ---------------------------------------------------------------------------------
class PositionIn(_In):
    """One position: instrument (Deribit's name) and signed quantity in contracts."""

    instrument: Instrument
    quantity: Quantity


class PortfolioIn(_In):
    """The portfolio-file JSON (README, "Portfolio files")."""

    name: str | None = Field(default=None, max_length=limits.ID_MAX_CHARS)
    description: str | None = Field(default=None, max_length=limits.TEXT_MAX_CHARS)
    cash: dict[Currency, Balance] = Field(default_factory=dict, max_length=20)
    positions: list[PositionIn] = Field(default_factory=list)


class _Priced(_In):
    market: dict[str, Any] | None = Field(
        default=None,
        description="An inline market file (README, 'Market files'); default: the service's "
        "current market.",
    )


class MarginRequest(_Priced):
    """``POST /v1/margin``: one book under one method."""

    portfolio: PortfolioIn
    model: MethodName = "deribit"
    params: dict[str, Any] | None = Field(
        default=None, description="Parameter overrides merged over the model (as --params)."
    )
    cross: bool = False


class RulesRequest(_Priced):
    """``POST /v1/rules``: rules-based margin with the strategy decomposition."""

    portfolio: PortfolioIn
    rules: MethodName = "strategy"


class CompareRequest(_Priced):
    """``POST /v1/compare``: standard, strategy and portfolio margin and the gate."""

    portfolio: PortfolioIn
    model: MethodName = "deribit"
    params: dict[str, Any] | None = None
    cross: bool = False
    min_equity: Finite = Field(default=100_000.0, ge=0.0)
    pm_approved: bool = True


class WhatIfRequest(_Priced):
    """``POST /v1/whatif``: a proposed trade against a book or a stored account."""

    portfolio: PortfolioIn | None = None
    account: str | None = Field(
        default=None,
        max_length=limits.ID_MAX_CHARS,
        description="A stored account instead of a portfolio (its current positions).",
    )
    trades: list[PositionIn] = Field(min_length=1)
    model: MethodName = "deribit"
    params: dict[str, Any] | None = None
    cross: bool = False
    min_equity: Finite | None = Field(default=None, ge=0.0)
    pm_approved: bool = True


def _btc_only() -> list[Literal["BTC", "ETH"]]:
    return ["BTC"]


class BacktestRequest(_In):
    """``POST /v1/backtest``: margin methods back-tested on a strategy (``portmargin backtest``).

    On the service's shipped daily history (a client never names a server file). The work is
    bounded: days (``start`` to ``end`` every ``step`` days) × models at most
    ``MAX_BACKTEST_EVALUATIONS``.
    """

    strategy: str = Field(min_length=1, max_length=64, pattern=r"^[a-z\-]+$")
    underlyings: list[Literal["BTC", "ETH"]] = Field(
        default_factory=_btc_only, min_length=1, max_length=2
    )
    models: list[MethodName] = Field(
        default_factory=lambda: ["deribit", "span16", "tims", "var"], min_length=1, max_length=6
    )
    start: date | None = Field(
        default=None, description="First day (default: the first with DVOL)."
    )
    end: date | None = Field(default=None, description="Last day (default: the last − horizon).")
    horizon: int = Field(default=1, ge=1, le=30, description="Days from margin to loss.")
    tenor: int = Field(default=30, ge=1, le=365, description="Days to expiry of the legs.")
    size: Finite = Field(default=1.0, gt=0.0, le=limits.QUANTITY_MAX)
    step: int = Field(default=1, ge=1, le=365, description="Days between books.")
    requirement: Literal["im", "mm"] = "im"
    confidence: Finite | None = Field(default=None, ge=0.5, lt=1.0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


class AccountIn(_In):
    """One entry of an accounts file (``PUT /v1/accounts/{id}``)."""

    id: str | None = Field(default=None, max_length=64)
    balances: dict[Currency, Balance] = Field(default_factory=dict, max_length=20)
    positions: list[PositionIn] = Field(default_factory=list)
    pm_approved: bool = True


class TradeIn(_In):
    """A trade of one instrument, checked by the pre-trade rule and applied if accepted."""

    client_order_id: ClientOrderId
    instrument: Instrument
    quantity: Quantity


class TransferIn(_In):
    """A deposit or a withdrawal of one currency."""

    currency: Currency
    amount: Finite = Field(gt=0.0, le=limits.BALANCE_MAX)
    client_order_id: ClientOrderId | None = None


class MarketUpdateIn(_In):
    """New market data of one underlying (the monitor's market update)."""

    underlying: Annotated[str, Field(min_length=1, max_length=20)]
    time: datetime
    index: Finite = Field(gt=0.0)
    perpetual: Finite | None = Field(default=None, gt=0.0)
    forwards: dict[Annotated[str, Field(max_length=16)], Finite] = Field(default_factory=dict)
    vols: dict[Instrument, Finite] = Field(default_factory=dict)


class MarketPush(_In):
    """``POST /v1/market``: a whole market snapshot (market-file JSON) or updates."""

    snapshot: dict[str, Any] | None = None
    updates: list[MarketUpdateIn] = Field(default_factory=list, max_length=20)


class KeyIn(_In):
    """``POST /v1/keys``."""

    role: Literal["admin", "risk", "trader"]
    account: str | None = Field(default=None, max_length=64)
    rate_per_second: Finite | None = Field(default=None, gt=0.0)
    label: str | None = Field(default=None, max_length=200)


# -- responses --------------------------------------------------------------------------------
class MarginDocument(_Out):
    """``portmargin margin --format json`` (docs/json.md)."""

    model: str
    model_version: str
    currency: str
    valuation_time: str
    market: str
    initial_margin: float
    maintenance_margin: float
    equity: float
    initial_excess: float
    maintenance_excess: float
    components: dict[str, float]
    worst_scenario: dict[str, Any] | None
    scenarios: list[dict[str, Any]]
    positions: list[dict[str, Any]]
    by_underlying: dict[str, Any]
    by_currency: dict[str, Any]
    notes: list[str]


class PoolOut(_Out):
    """One margin pool of an account, in the pool currency."""

    currency: str
    initial_margin: float
    maintenance_margin: float
    equity: float
    haircut: float
    excess: float
    maintenance_excess: float
    worst_loss: float
    margin_ratio: float | None
    status: str
    usd_rate: float


class AccountFigures(_Out):
    """An account's figures (``AccountMargin.to_dict``): USD totals and every pool."""

    account: str
    method: str
    eligible: bool
    approved: bool
    mode: str
    valuation_time: str
    initial_margin: float
    maintenance_margin: float
    equity: float
    excess: float
    margin_ratio: float | None
    worst_pool_ratio: float | None
    status: str
    pools: list[PoolOut]


class WhatIfDocument(_Out):
    """``portmargin whatif --format json``."""

    trades: dict[str, float]
    accepted: bool
    risk_reducing: bool
    reason: str
    incremental_initial_margin: float
    before: AccountFigures
    after: AccountFigures
    qualification: dict[str, Any]


class AccountView(_Out):
    """``GET /v1/accounts/{id}``: holdings, latest figures per pool, status, components."""

    id: str
    status: str
    balances: dict[str, float]
    positions: list[dict[str, Any]]
    pm_approved: bool
    figures: AccountFigures | None
    seq: int
    error: str | None = None


class AccountList(_Out):
    """``GET /v1/accounts``: rows sorted as asked, and counts by status."""

    accounts: list[dict[str, Any]]
    counts: dict[str, int]
    total: int
    seq: int


class EventOut(_Out):
    """A stored monitor event; ``id`` orders events in commit order (the stream's cursor)."""

    id: int
    seq: int
    kind: str
    account: str | None
    market_time: str
    payload: dict[str, Any]


class EventPage(_Out):
    """A page of events; ask again with ``since`` = ``next`` for the following ones."""

    events: list[EventOut]
    next: int


class StepOut(_Out):
    """What one input did: its sequence number, whether it was applied, and its events."""

    seq: int
    applied: bool
    replayed: bool = False
    reason: str | None = None
    events: list[EventOut]
    figures: AccountFigures | None = None


class MarketView(_Out):
    """``GET /v1/market``: index prices, valuation time and the feed's state."""

    valuation_time: str | None
    underlyings: dict[str, Any]
    feed: dict[str, Any]
    seq: int


class KeyOut(_Out):
    """A stored key (never its secret)."""

    key_id: str
    role: str
    account: str | None
    rate_per_second: float | None
    label: str | None
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    """A new key with its token, shown once."""

    token: str
