"""``/v1/stream``: the monitor's events and margin updates over a WebSocket.

Query parameters: ``since`` (an event id: every stored event after it is sent first, then
the live ones, with no gap and no repeat; default: only new events), ``account``
(repeatable; a trader key follows only its own account) and ``margins`` (``true`` by
default: also each followed account's new figures after every input that touched it).

Messages from the server (JSON text frames)::

    {"type": "hello", "last_id": 41, "seq": 3145730}
    {"type": "event", "id": 42, "seq": 3145731, "kind": "margin_call", "account": "acct-007",
     "market_time": "...", "payload": {... figures, cause, previous ...}}
    {"type": "margin", "seq": 3145731, "account": "acct-007", "figures": {...}}

Events are sent in commit order (their ``id``); a client that reconnects with ``since`` =
the last id it saw resumes exactly. A client too slow to keep up (its buffer of
``stream_queue`` messages is full) is closed with code 4008 and resumes the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from portmargin.service._auth import authenticate
from portmargin.service._desk import Desk, event_json
from portmargin.service._problems import Problem
from portmargin.storage._api import events_after

__all__ = ["router"]

router = APIRouter(prefix="/v1")
_PAGE = 500


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    """See the module docstring."""
    desk: Desk = ws.app.state.desk
    try:
        caller = authenticate(ws)
        since_text = ws.query_params.get("since")
        since = None if since_text is None else int(since_text)
        if since is not None and since < 0:
            raise ValueError
    except Problem as exc:
        await ws.close(code=4000 + exc.status, reason=exc.detail[:120])
        return
    except ValueError:
        await ws.close(code=4422, reason="since: expected an event id >= 0")
        return
    wanted = ws.query_params.getlist("account")
    if caller.role == "trader":
        if any(a != caller.account for a in wanted):
            await ws.close(code=4404, reason="account not found")
            return
        wanted = [caller.account] if caller.account else []
    margins = ws.query_params.get("margins", "true").lower() != "false"
    accounts = frozenset(wanted) if wanted else None
    sub = desk.hub.subscribe(accounts, desk.settings.stream_queue)
    await ws.accept()
    try:
        last = desk.view.last_event_id if since is None else since
        await ws.send_json({"type": "hello", "last_id": last, "seq": desk.view.seq})
        if since is not None:
            last = await _backlog(ws, desk, since, accounts)
        reader = asyncio.create_task(_drain_client(ws))
        try:
            while True:
                getter = asyncio.create_task(sub.queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    return
                msg = getter.result()
                if msg["type"] == "overflow":
                    await ws.close(code=4008, reason=f"too slow; reconnect with since={last}")
                    return
                if msg["type"] == "event":
                    if msg["id"] <= last:
                        continue
                    last = msg["id"]
                elif not margins:
                    continue
                await ws.send_json(msg)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        return
    finally:
        desk.hub.unsubscribe(sub)


async def _backlog(ws: WebSocket, desk: Desk, since: int, accounts: frozenset[str] | None) -> int:
    """Send the stored events after ``since`` (of ``accounts``); returns the last id sent."""
    last = since
    one = next(iter(accounts)) if accounts is not None and len(accounts) == 1 else None
    while True:
        page = await asyncio.to_thread(events_after, desk.store, last, account_id=one, limit=_PAGE)
        for n in page:
            last = n.id
            if accounts is None or n.event.account_id in accounts:
                await ws.send_json({"type": "event", **event_json(n)})
        if len(page) < _PAGE:
            return last


async def _drain_client(ws: WebSocket) -> Any:
    """Read (and answer pings from) the client until it goes away."""
    while True:
        try:
            msg = await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if msg.strip() == '"ping"' or msg.strip() == "ping":
            await ws.send_json({"type": "pong"})
