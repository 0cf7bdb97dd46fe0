"""The risk dashboard: server-rendered pages, a little vanilla JavaScript, SVG charts.

``/dashboard`` lists the accounts by margin ratio (worst pool first) with status colours
and counts, a margin-call feed, and live updates over ``/v1/stream``; ``/dashboard/accounts/
{id}`` shows one account: per-pool figures, components, the price × vol risk matrix of each
underlying as a heatmap with the binding cell marked, positions with their contributions,
and a what-if form (``POST /v1/whatif``). The browser signs in once with an API key
(``/dashboard/login``), kept in an HttpOnly ``SameSite=Strict`` cookie; every page and call
obeys the key's role as the API does.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from portmargin.errors import PortmarginError
from portmargin.service._auth import COOKIE, Principal, authenticate
from portmargin.service._desk import Desk
from portmargin.service._problems import Problem

__all__ = ["heatmap_svg", "matrices", "mount_static", "router"]

_HERE = Path(__file__).resolve().parent
_ENV = Environment(
    loader=FileSystemLoader(str(_HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)
router = APIRouter(include_in_schema=False)


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's script and style sheet under ``/static``."""
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")


def _page(name: str, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(name).render(**ctx))


def _who(request: Request) -> Principal | None:
    try:
        return authenticate(request, method="GET")
    except Problem:
        return None


@router.get("/")
async def root() -> Response:
    """The dashboard."""
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard/login")
async def login_form(error: str | None = None) -> HTMLResponse:
    """Sign in with an API key."""
    return _page("login.html", error=error)


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    """Check the key and keep it in the session cookie."""
    from portmargin.storage._api import verify_key

    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    desk: Desk = request.app.state.desk
    if not key or verify_key(desk.store, key) is None:
        return _page("login.html", error="That key is not valid.")
    resp = RedirectResponse("/dashboard", status_code=303)
    resp.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/")
    return resp


@router.post("/dashboard/logout")
async def logout() -> Response:
    """Forget the key."""
    resp = RedirectResponse("/dashboard/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@router.get("/dashboard")
async def accounts_page(request: Request) -> Response:
    """The accounts table, counts and the margin-call feed."""
    from portmargin.service._routes import account_row, market_view

    who = _who(request)
    if who is None:
        return RedirectResponse("/dashboard/login", status_code=303)
    desk: Desk = request.app.state.desk
    view = desk.view
    rows = [
        account_row(a, view.margins.get(a), view.statuses.get(a, "healthy"))
        for a in view.accounts
        if who.sees(a)
    ]
    rows.sort(
        key=lambda r: (
            -(
                r["margin_ratio"]
                if r["margin_ratio"] is not None
                else math.inf
                if r["pools"]
                else -1.0
            )
        )
    )
    counts = {"healthy": 0, "margin_call": 0, "liquidation": 0}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return _page(
        "accounts.html",
        rows=rows,
        counts=counts,
        market=market_view(desk),
        role=who.role,
        last_id=view.last_event_id,
    )


@router.get("/dashboard/accounts/{account_id}")
async def account_page(request: Request, account_id: str) -> Response:
    """One account: pools, components, heatmaps, positions and the what-if form."""
    who = _who(request)
    if who is None:
        return RedirectResponse("/dashboard/login", status_code=303)
    desk: Desk = request.app.state.desk
    view = desk.view
    acct = view.accounts.get(account_id)
    if acct is None or not who.sees(account_id):
        return HTMLResponse(_ENV.get_template("missing.html").render(account=account_id), 404)
    m = view.margins.get(account_id)
    detail: dict[str, Any] = {}
    if view.market is not None:
        detail = await run_in_threadpool(_detail, desk, acct.portfolio(), view.market)
    return _page(
        "account.html",
        account=acct,
        figures=None if m is None else m.to_dict(),
        detail=detail,
        stale=desk.stale_problem(),
        role=who.role,
    )


def _detail(desk: Desk, book: Any, market: Any) -> dict[str, Any]:
    """Components, positions and heatmaps of a book on the service's market."""
    from portmargin.cli._margin import margin_json

    try:
        res = desk.model.margin(book, market)
    except PortmarginError as exc:
        return {"error": str(exc)}
    doc = margin_json(res, {})
    return {
        "components": {p.currency: dict(p.components) for p in res.by_currency},
        "positions": doc["positions"],
        "heatmaps": [(name, heatmap_svg(mx)) for name, mx in matrices(doc).items()],
    }


# -- the risk matrix ---------------------------------------------------------------------------
def matrices(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per underlying: ``price_moves``, ``vol_shocks``, ``pnl[row][col]`` and ``binding``.

    Uses the margin document's ``risk_matrix`` when it has one in that shape, else builds the
    grid from its scenario lines (standard and extended moves as columns, vol shocks as rows;
    a cell holds the worst P&L of the scenarios on it). ``binding`` is the (row, column) of
    the underlying's worst scenario.
    """
    given = doc.get("risk_matrix")
    if isinstance(given, Mapping) and given:
        try:
            return {str(k): _from_risk_matrix(v) for k, v in given.items()}
        except (KeyError, IndexError, TypeError, ValueError):
            pass  # another shape: build it from the scenario lines below
    out: dict[str, dict[str, Any]] = {}
    for name, u in (doc.get("by_underlying") or {}).items():
        lines = [s for s in doc.get("scenarios", []) if s.get("underlying") == name.split("/")[0]]
        if not lines:
            continue
        moves = sorted({float(s["price_move"]) for s in lines})
        vols = sorted({float(s["vol_shock"]) for s in lines}, reverse=True)
        grid: list[list[float | None]] = [[None] * len(moves) for _ in vols]
        for s in lines:
            r, c = vols.index(float(s["vol_shock"])), moves.index(float(s["price_move"]))
            v = float(s["pnl"])
            cell = grid[r][c]
            grid[r][c] = v if cell is None else min(cell, v)
        w = u.get("worst_scenario") or {}
        binding = None
        if "price_move" in w and "vol_shock" in w:
            binding = [vols.index(float(w["vol_shock"])), moves.index(float(w["price_move"]))]
        out[name] = {
            "price_moves": moves,
            "vol_shocks": vols,
            "pnl": grid,
            "binding": binding,
            "currency": u.get("currency", ""),
        }
    return out


def _from_risk_matrix(m: Mapping[str, Any]) -> dict[str, Any]:
    """The margin JSON's ``risk_matrix`` entry (``pnl[price move][vol shock]``) as rows of vols."""
    moves = [float(x) for x in m["price_moves"]]
    vols = [float(x) for x in m["vol_shocks"]]
    pnl = m["pnl"]
    if len(pnl) != len(moves) or any(len(row) != len(vols) for row in pnl):
        raise ValueError("unexpected risk_matrix shape")
    order = sorted(range(len(vols)), key=lambda j: -vols[j])
    grid = [[pnl[c][j] for c in range(len(moves))] for j in order]
    b = m.get("binding")
    binding = None
    if isinstance(b, Mapping) and "row" in b and "col" in b:
        binding = [order.index(int(b["col"])), int(b["row"])]
    return {
        "price_moves": moves,
        "vol_shocks": [vols[j] for j in order],
        "pnl": grid,
        "binding": binding,
        "currency": m.get("currency", ""),
    }


def heatmap_svg(mx: Mapping[str, Any], *, cell: int = 34) -> str:
    """An SVG heatmap of a risk matrix: losses red, gains green, the binding cell outlined."""
    moves: Sequence[float] = mx["price_moves"]
    vols: Sequence[float] = mx["vol_shocks"]
    grid: Sequence[Sequence[float | None]] = mx["pnl"]
    binding = mx.get("binding")
    worst = max((abs(v) for row in grid for v in row if v is not None), default=0.0) or 1.0
    left, top = 64, 22
    width, height = left + cell * len(moves) + 4, top + cell * len(vols) + 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{width}" '
        f'height="{height}" role="img" aria-label="risk matrix">'
    ]
    for c, mv in enumerate(moves):
        x = left + c * cell + cell / 2
        parts.append(
            f'<text x="{x:.0f}" y="{top + cell * len(vols) + 14}" font-size="9" '
            f'text-anchor="middle">{mv:+.0%}</text>'
        )
    for r, vs in enumerate(vols):
        y = top + r * cell + cell / 2 + 3
        parts.append(
            f'<text x="{left - 6}" y="{y:.0f}" font-size="9" text-anchor="end">vol {vs:+.0%}</text>'
        )
        for c, _ in enumerate(moves):
            v = grid[r][c]
            x0, y0 = left + c * cell, top + r * cell
            if v is None:
                fill = "#eee"
            else:
                a = min(abs(v) / worst, 1.0)
                fill = f"rgba(200,30,30,{a:.3f})" if v < 0 else f"rgba(30,150,60,{a:.3f})"
            title = (
                "" if v is None else html.escape(f"P&L {v:,.6g} at {moves[c]:+.0%}, vol {vs:+.0%}")
            )
            parts.append(
                f'<rect x="{x0}" y="{y0}" width="{cell - 1}" height="{cell - 1}" fill="{fill}">'
                f"<title>{title}</title></rect>"
            )
    if binding is not None:
        r, c = binding
        parts.append(
            f'<rect class="binding" x="{left + c * cell}" y="{top + r * cell}" width="{cell - 1}" '
            f'height="{cell - 1}" fill="none" stroke="#000" stroke-width="3"/>'
        )
    ccy = html.escape(str(mx.get("currency", "")))
    parts.append(
        f'<text x="{left}" y="12" font-size="10">price move → (P&amp;L in {ccy}; '
        "outlined: binding)</text></svg>"
    )
    return "".join(parts)
