"""The REST API under ``/v1`` (OpenAPI at ``/docs``)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from portmargin.accounts import Account, AccountMargin
from portmargin.errors import PortmarginError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.service._auth import Admin, Caller, Principal, RiskReader
from portmargin.service._calc import Calculators
from portmargin.service._desk import Desk, Outcome, event_json, update_from_doc
from portmargin.service._problems import Problem
from portmargin.service._schemas import (
    AccountIn,
    AccountList,
    AccountView,
    BacktestRequest,
    CompareRequest,
    EventPage,
    KeyCreated,
    KeyIn,
    KeyOut,
    MarginDocument,
    MarginRequest,
    MarketPush,
    MarketView,
    RulesRequest,
    StepOut,
    TradeIn,
    TransferIn,
    WhatIfDocument,
    WhatIfRequest,
)
from portmargin.storage._api import create_key, events_after, list_keys, revoke_key
from portmargin.units import iso_z

__all__ = ["account_row", "router"]

router = APIRouter(prefix="/v1")

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"description": d, "content": {"application/problem+json": {}}}
    for s, d in (
        (401, "no or invalid API key"),
        (403, "the key's role may not do this"),
        (404, "no such account (or not the trader key's own)"),
        (422, "a field is invalid; `field` names it"),
        (429, "rate limit exceeded"),
        (503, "no market data, stale market data, or the database is unavailable"),
    )
}


def _desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def _calc(request: Request) -> Calculators:
    calc: Calculators = request.app.state.calc
    return calc


DeskDep = Annotated[Desk, Depends(_desk)]
CalcDep = Annotated[Calculators, Depends(_calc)]


def _market(desk: Desk, calc: Calculators, inline: dict[str, Any] | None) -> MarketSnapshot:
    return desk.market() if inline is None else calc.inline_market(inline)


def _ratio(x: float) -> float | None:
    return x if math.isfinite(x) else None


def account_row(account_id: str, m: AccountMargin | None, status: str) -> dict[str, Any]:
    """One row of the accounts table (USD totals; ``margin_ratio`` = worst pool's MM/equity)."""
    if m is None:
        return {"id": account_id, "status": status, "margin_ratio": None, "pools": []}
    return {
        "id": account_id,
        "status": m.status.value,
        "method": m.method,
        "equity": m.equity_usd,
        "initial_margin": m.initial_margin_usd,
        "maintenance_margin": m.maintenance_margin_usd,
        "excess": m.excess_usd,
        "margin_ratio": _ratio(m.worst_pool_ratio),
        "valuation_time": m.valuation_time,
        "pools": [
            {
                "currency": p.currency,
                "status": p.status.value,
                "margin_ratio": _ratio(p.margin_ratio),
            }
            for p in m.pools
        ],
    }


def _sort_key(sort: str, row: dict[str, Any]) -> float | str:
    if sort == "id":
        return str(row["id"])
    v = row.get(sort)
    if v is None:
        return math.inf if sort == "margin_ratio" and row.get("pools") else -math.inf
    return float(v)


# -- calculators -----------------------------------------------------------------------------
@router.post("/margin", response_model=MarginDocument, responses=_PROBLEMS, tags=["margin"])
async def post_margin(body: MarginRequest, _: Caller, desk: DeskDep, calc: CalcDep) -> Any:
    """Margin a book: exactly ``portmargin margin --format json`` (docs/json.md)."""
    market = _market(desk, calc, body.market)
    return JSONResponse(await run_in_threadpool(calc.margin, body, market))


@router.post("/rules", responses=_PROBLEMS, tags=["margin"])
async def post_rules(body: RulesRequest, _: Caller, desk: DeskDep, calc: CalcDep) -> Any:
    """Rules-based margin with the strategy decomposition (``portmargin rules``)."""
    market = _market(desk, calc, body.market)
    return JSONResponse(await run_in_threadpool(calc.rules, body, market))


@router.post("/compare", responses=_PROBLEMS, tags=["margin"])
async def post_compare(body: CompareRequest, _: Caller, desk: DeskDep, calc: CalcDep) -> Any:
    """Standard vs strategy vs portfolio margin and the gate (``portmargin compare``)."""
    market = _market(desk, calc, body.market)
    return JSONResponse(await run_in_threadpool(calc.compare, body, market))


@router.post("/backtest", responses=_PROBLEMS, tags=["margin"])
async def post_backtest(body: BacktestRequest, _: Caller, calc: CalcDep) -> Any:
    """Methods back-tested on a strategy over the shipped history (``portmargin backtest``).

    The response is ``portmargin backtest --format json``. Bounded work: days × models at
    most 4,000 per request (a 422 problem naming ``step`` beyond it).
    """
    return JSONResponse(await run_in_threadpool(calc.backtest, body))


@router.post("/whatif", response_model=WhatIfDocument, responses=_PROBLEMS, tags=["margin"])
async def post_whatif(body: WhatIfRequest, caller: Caller, desk: DeskDep, calc: CalcDep) -> Any:
    """A proposed trade against a book or a stored account (``portmargin whatif``)."""
    account: Account | None = None
    if body.account is not None:
        caller.require_account(body.account)
        account = desk.view.accounts.get(body.account)
        if account is None:
            raise Problem(404, f"account {body.account!r} not found")
        if body.market is not None:
            raise Problem(422, "an account is judged on the service's market", field="market")
    market = _market(desk, calc, body.market)
    settings = desk.account_settings if account is not None else None
    doc = await run_in_threadpool(calc.whatif, body, market, account=account, settings=settings)
    return JSONResponse(doc)


# -- accounts --------------------------------------------------------------------------------
@router.get("/accounts", response_model=AccountList, responses=_PROBLEMS, tags=["accounts"])
async def get_accounts(
    caller: Caller,
    desk: DeskDep,
    status: Annotated[Literal["healthy", "margin_call", "liquidation"] | None, Query()] = None,
    sort: Annotated[
        Literal["margin_ratio", "id", "equity", "excess", "initial_margin"], Query()
    ] = "margin_ratio",
    order: Annotated[Literal["asc", "desc"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Accounts with their latest figures (worst pool's margin ratio first by default)."""
    view = desk.view
    rows = [
        account_row(a, view.margins.get(a), view.statuses.get(a, "healthy"))
        for a in view.accounts
        if caller.sees(a)
    ]
    counts = {"healthy": 0, "margin_call": 0, "liquidation": 0}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    desc = (order or ("asc" if sort in ("id", "excess") else "desc")) == "desc"
    rows.sort(key=lambda r: _sort_key(sort, r), reverse=desc)
    return {
        "accounts": rows[offset : offset + limit],
        "counts": counts,
        "total": len(rows),
        "seq": view.seq,
    }


def _view_of(desk: Desk, account_id: str) -> dict[str, Any]:
    view = desk.view
    acct = view.accounts.get(account_id)
    if acct is None:
        raise Problem(404, f"account {account_id!r} not found")
    m = view.margins.get(account_id)
    doc = acct.to_dict()
    return {
        "id": account_id,
        "status": m.status.value if m is not None else view.statuses.get(account_id, "healthy"),
        "balances": doc["balances"],
        "positions": doc["positions"],
        "pm_approved": acct.pm_approved,
        "figures": None if m is None else m.to_dict(),
        "seq": view.seq,
    }


@router.get(
    "/accounts/{account_id}", response_model=AccountView, responses=_PROBLEMS, tags=["accounts"]
)
async def get_account(
    account_id: str,
    caller: Caller,
    desk: DeskDep,
    components: Annotated[bool, Query(description="Also the margin components per pool.")] = True,
) -> Any:
    """An account: holdings, latest figures per pool, status and components."""
    caller.require_account(account_id)
    doc = _view_of(desk, account_id)
    market = desk.view.market
    if components and market is not None and doc["figures"] is not None:
        acct = desk.view.accounts[account_id]
        doc["components"] = await run_in_threadpool(_components, desk, acct, market)
    stale = desk.stale_problem()
    if stale is not None:
        doc["stale"] = stale
    return doc


def _components(desk: Desk, acct: Account, market: MarketSnapshot) -> dict[str, Any] | None:
    try:
        res = desk.model.margin(acct.portfolio(), market)
    except PortmarginError:
        return None
    return {p.currency: dict(p.components) for p in res.by_currency}


@router.put(
    "/accounts/{account_id}", response_model=AccountView, responses=_PROBLEMS, tags=["accounts"]
)
async def put_account(
    account_id: str, body: AccountIn, _: Admin, desk: DeskDep, response: Response
) -> Any:
    """Create an account (one entry of an accounts file); admin only.

    An existing account with the same holdings is left as it is (200); with other holdings
    the request is refused (409): holdings change by trades and transfers, which pass the
    monitor's pre-trade rule.
    """
    from portmargin.accounts import accounts_from_dict
    from portmargin.cli._accounts import check_instruments

    if body.id is not None and body.id != account_id:
        raise Problem(422, f"id: {body.id!r} differs from the path's {account_id!r}", field="id")
    if len(body.positions) > desk.settings.max_legs:
        raise Problem(422, f"positions: at most {desk.settings.max_legs}", field="positions")
    entry = body.model_dump()
    entry["id"] = account_id
    try:
        (acct,), _settings = accounts_from_dict({"accounts": [entry]}, source="account")
        check_instruments([acct], "account")
    except PortmarginError as exc:
        raise Problem(422, str(exc)) from None
    created, _out = await desk.upsert_account(acct)
    response.status_code = 201 if created else 200
    return _view_of(desk, account_id)


def _step(out: Outcome, desk: Desk, account: str) -> dict[str, Any]:
    m = desk.view.margins.get(account)
    reason = out.rejection
    return {
        "seq": out.seq,
        "applied": reason is None and not out.skipped,
        "replayed": out.duplicate is not None,
        "reason": reason,
        "events": [event_json(n) for n in out.numbered],
        "figures": None if m is None else m.to_dict(),
    }


def _may_change(caller: Principal, account_id: str, desk: Desk) -> None:
    caller.require_account(account_id)
    if account_id not in desk.view.accounts:
        raise Problem(404, f"account {account_id!r} not found")
    if caller.role == "risk":
        raise Problem(403, "a risk key reads accounts but does not change them")


@router.post(
    "/accounts/{account_id}/trades", response_model=StepOut, responses=_PROBLEMS, tags=["accounts"]
)
async def post_trade(
    account_id: str, body: TradeIn, caller: Caller, desk: DeskDep, response: Response
) -> Any:
    """A trade, checked by the monitor's pre-trade rule and applied only if accepted.

    Idempotent by ``client_order_id``: a retry returns the first outcome (``replayed``).
    A refused trade is answered 422 with the rule's reason; nothing of it is applied.
    """
    _may_change(caller, account_id, desk)
    if body.quantity == 0.0:
        raise Problem(422, "quantity: must be non-zero", field="quantity")
    out = await desk.account_change(
        kind="trade",
        account=account_id,
        instrument=body.instrument.strip(),
        quantity=body.quantity,
        client_order_id=body.client_order_id,
    )
    doc = _step(out, desk, account_id)
    if out.duplicate is not None:
        doc["applied"] = any(n.event.kind == "trade" for n in out.numbered)
        doc["reason"] = next(
            (n.event.payload.get("reason") for n in out.numbered if n.event.kind == "rejected"),
            None,
        )
    response.status_code = 200 if doc["applied"] else 422
    return doc


async def _transfer(
    kind: str, account_id: str, body: TransferIn, caller: Principal, desk: Desk, response: Response
) -> dict[str, Any]:
    _may_change(caller, account_id, desk)
    out = await desk.account_change(
        kind=kind,
        account=account_id,
        currency=body.currency,
        amount=body.amount,
        client_order_id=body.client_order_id,
    )
    doc = _step(out, desk, account_id)
    if out.duplicate is not None:
        doc["applied"] = any(n.event.kind == kind for n in out.numbered)
    response.status_code = 200 if doc["applied"] else 422
    return doc


@router.post(
    "/accounts/{account_id}/deposits",
    response_model=StepOut,
    responses=_PROBLEMS,
    tags=["accounts"],
)
async def post_deposit(
    account_id: str, body: TransferIn, caller: Caller, desk: DeskDep, response: Response
) -> Any:
    """A deposit (through the monitor)."""
    return await _transfer("deposit", account_id, body, caller, desk, response)


@router.post(
    "/accounts/{account_id}/withdrawals",
    response_model=StepOut,
    responses=_PROBLEMS,
    tags=["accounts"],
)
async def post_withdrawal(
    account_id: str, body: TransferIn, caller: Caller, desk: DeskDep, response: Response
) -> Any:
    """A withdrawal (through the monitor); refused beyond the balance or the pool's excess."""
    return await _transfer("withdrawal", account_id, body, caller, desk, response)


@router.get(
    "/accounts/{account_id}/events",
    response_model=EventPage,
    responses=_PROBLEMS,
    tags=["accounts"],
)
async def get_account_events(
    account_id: str,
    caller: Caller,
    desk: DeskDep,
    since: Annotated[int, Query(ge=0, description="Events after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The account's stored events in commit order (page with ``since``)."""
    caller.require_account(account_id)
    if account_id not in desk.view.accounts:
        raise Problem(404, f"account {account_id!r} not found")
    rows = await asyncio.to_thread(
        events_after, desk.store, since, account_id=account_id, limit=limit
    )
    return {"events": [event_json(n) for n in rows], "next": rows[-1].id if rows else since}


# -- market ----------------------------------------------------------------------------------
def market_view(desk: Desk) -> dict[str, Any]:
    """``GET /v1/market``'s document."""
    view = desk.view
    stale = desk.source.live.stale() if desk.source.live is not None else {}
    unds = {
        u: {
            "index": s.index,
            "perpetual": s.perpetual,
            "time": iso_z(s.time),
            "options": len(s.vols),
            "stale": u in stale,
        }
        for u, s in sorted(view.states.items())
    }
    feed: dict[str, Any] = {
        "name": desk.feed_name,
        "kind": desk.source.kind,
        "status": desk.feed_status,
        "database": "ok" if desk.db_ok else "unavailable",
    }
    if desk.feed_error:
        feed["error"] = desk.feed_error
    if desk.source.live is not None:
        feed["live"] = desk.source.live.state()
    return {
        "valuation_time": None if view.feed_time is None else iso_z(view.feed_time),
        "underlyings": unds,
        "feed": feed,
        "seq": view.seq,
    }


@router.get("/market", response_model=MarketView, responses=_PROBLEMS, tags=["market"])
async def get_market(_: Caller, desk: DeskDep) -> Any:
    """Index prices, valuation time and the feed's state."""
    return market_view(desk)


@router.post("/market", response_model=list[StepOut], responses=_PROBLEMS, tags=["market"])
async def post_market(body: MarketPush, _: RiskReader, desk: DeskDep, calc: CalcDep) -> Any:
    """Push market data (risk and admin keys): a snapshot (market-file JSON) or updates."""
    from portmargin.service._feeds import snapshot_updates

    if body.snapshot is None and not body.updates:
        raise Problem(422, "give a snapshot or updates", field="updates")
    updates = []
    if body.snapshot is not None:
        snap = calc.inline_market(body.snapshot)
        held = {n for a in desk.view.accounts.values() for n in a.positions}
        updates += await run_in_threadpool(snapshot_updates, snap, held)
    for i, u in enumerate(body.updates):
        if u.time.tzinfo is None:
            raise Problem(422, f"updates.{i}.time: needs a time zone", field=f"updates.{i}.time")
        try:
            updates.append(update_from_doc(0, u.model_dump() | {"time": u.time.astimezone(UTC)}))
        except (PortmarginError, ValueError) as exc:
            raise Problem(422, f"updates.{i}: {exc}", field=f"updates.{i}") from None
    outs = await desk.push_market(updates)
    return [
        {
            "seq": o.seq,
            "applied": o.rejection is None,
            "reason": o.rejection,
            "events": [event_json(n) for n in o.numbered],
        }
        for o in outs
    ]


# -- keys ------------------------------------------------------------------------------------
@router.post(
    "/keys", response_model=KeyCreated, status_code=201, responses=_PROBLEMS, tags=["keys"]
)
async def post_key(body: KeyIn, _: Admin, desk: DeskDep) -> Any:
    """Create a key (admin); its token is in this response only."""
    if body.account is not None and body.account not in desk.view.accounts:
        raise Problem(422, f"account: {body.account!r} not found", field="account")
    try:
        key, token = await asyncio.to_thread(
            create_key,
            desk.store,
            role=body.role,
            account_id=body.account,
            rate_per_second=body.rate_per_second,
            label=body.label,
        )
    except PortmarginError as exc:
        if "StorageError" in type(exc).__name__:
            raise
        raise Problem(422, str(exc)) from None
    return key.to_dict() | {"token": token}


@router.get("/keys", response_model=list[KeyOut], responses=_PROBLEMS, tags=["keys"])
async def get_keys(_: Admin, desk: DeskDep) -> Any:
    """Every key (never a secret)."""
    return [k.to_dict() for k in await asyncio.to_thread(list_keys, desk.store)]


@router.delete("/keys/{key_id}", status_code=204, responses=_PROBLEMS, tags=["keys"])
async def delete_key(key_id: str, _: Admin, desk: DeskDep, request: Request) -> Response:
    """Revoke a key (at once in this process)."""
    if not await asyncio.to_thread(revoke_key, desk.store, key_id):
        raise Problem(404, f"no live key {key_id!r}")
    request.app.state.keys.clear()
    return Response(status_code=204)


@router.get("/health", tags=["service"])
async def get_health(desk: DeskDep) -> Any:
    """Liveness (no key needed): the feed's status and whether the database answered last."""
    return {
        "status": "ok",
        "feed": desk.feed_status,
        "database": "ok" if desk.db_ok else "unavailable",
        "seq": desk.view.seq,
    }
