"""Load and soak of the margin service: what-ifs and margins during the crash-day replay.

``python -m benchmarks._service [SECONDS] [RATE]`` starts ``portmargin serve --feed replay``
in a subprocess on 127.0.0.1 (a temporary SQLite database, the 300 example accounts, the
crash day paced to last the run), follows ``/v1/stream`` from event 0, and sends an
open-loop load from asyncio httpx clients: ``RATE`` requests per second, alternating a
20-leg ``POST /v1/whatif`` and a 20-leg ``POST /v1/margin``, for ``SECONDS`` seconds. It
prints throughput, p50/p99 latency per endpoint, errors, and the stream check (every stored
event received once, in commit order). Traffic stays on 127.0.0.1 and is bounded by RATE.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

SERVER = """
import sys, uvicorn
from portmargin.cli._serve import SWITCH_INTERVAL
sys.setswitchinterval(SWITCH_INTERVAL)  # as `portmargin serve` does
from portmargin.service import ServiceSettings, create_app
feed = None if sys.argv[5] == "static" else sys.argv[5]
s = ServiceSettings(db_url=sys.argv[1], feed=feed, speed=float(sys.argv[2]), replay_steps=96,
                    accounts_file=sys.argv[3], port=int(sys.argv[4]), rate_per_second=100000.0)
uvicorn.run(create_app(s), host="127.0.0.1", port=s.port, log_level="warning",
            ws="websockets-sansio")
"""


def _book(n: int = 20) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = json.loads((REPO / "examples" / "accounts.json").read_text())
    names = sorted(
        {
            p["instrument"]
            for a in doc["accounts"]
            for p in a["positions"]
            if p["instrument"].startswith("BTC-") and p["instrument"].count("-") == 3
        }
    )
    legs = [{"instrument": x, "quantity": (-1.0) ** i} for i, x in enumerate(names[:n])]
    trade = [{"instrument": names[n], "quantity": -1.0}]
    return {"cash": {"BTC": 5.0}, "positions": legs}, trade


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def _load(base: str, key: str, seconds: float, rate: float) -> dict[str, Any]:
    import httpx

    book, trade = _book()
    bodies = {
        "/v1/whatif": {"portfolio": book, "trades": trade},
        "/v1/margin": {"portfolio": book},
    }
    lat: dict[str, list[float]] = {p: [] for p in bodies}
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:
        for p, b in bodies.items():  # warm the method caches, once the feed has priced
            deadline = time.monotonic() + 120.0
            while True:
                r = await c.post(p, json=b)
                if r.status_code != 503 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)  # 503: no (or stale) market data yet on a busy machine
            r.raise_for_status()

        async def one(path: str) -> None:
            t0 = time.perf_counter()
            try:
                r = await c.post(path, json=bodies[path])
                if r.status_code != 200:
                    errors.append(f"{path} {r.status_code} {r.text[:120]}")
                    return
            except httpx.HTTPError as exc:
                errors.append(f"{path} {type(exc).__name__}")
                return
            lat[path].append((time.perf_counter() - t0) * 1e3)

        tasks = []
        start = time.perf_counter()
        n = int(seconds * rate)
        paths = list(bodies)
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(paths[i % 2])))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    out: dict[str, Any] = {"requests": n, "seconds": wall, "throughput": n / wall, "errors": errors}
    for p, xs in lat.items():
        out[p] = {"n": len(xs), "p50_ms": _pct(xs, 0.5), "p99_ms": _pct(xs, 0.99)}
    return out


async def _follow(base: str, key: str, got: list[int], stop: asyncio.Event) -> None:
    import websockets

    url = base.replace("http://", "ws://") + "/v1/stream?since=0&margins=false"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            msg = json.loads(raw)
            if msg["type"] == "event":
                got.append(int(msg["id"]))


def service_load(
    seconds: float = 30.0, rate: float = 200.0, feed: str = "replay"
) -> dict[str, Any]:
    """Run the load (see the module docstring) and return its figures."""
    from portmargin.storage import open_store
    from portmargin.storage._api import create_key, events_after

    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'pm.db'}"
        with open_store(db) as store:
            _, key = create_key(store, role="risk", rate_per_second=1e5)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        speed = 86_400.0 / (seconds + 10.0)  # the crash day lasts the run
        env = dict(os.environ)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVER,
                db,
                str(speed),
                str(REPO / "examples" / "accounts.json"),
                str(port),
                feed,
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            import httpx

            end = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > end:
                    raise RuntimeError("the service did not start")
                time.sleep(0.2)

            async def run() -> tuple[dict[str, Any], list[int]]:
                got: list[int] = []
                stop = asyncio.Event()
                follower = asyncio.create_task(_follow(base, key, got, stop))
                res = await _load(base, key, seconds, rate)
                await asyncio.sleep(2.0)
                stop.set()
                await follower
                return res, got

            res, got = asyncio.run(run())
            health = httpx.get(f"{base}/v1/health", timeout=5).json()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        with open_store(db, create=False) as store:
            stored = [n.id for n in events_after(store, 0, limit=10_000_000)]
        upto = [i for i in stored if i <= (got[-1] if got else 0)]
        res["events_stored"] = len(stored)
        res["events_received"] = len(got)
        res["events_lost"] = len(set(upto) - set(got))
        res["events_duplicated"] = len(got) - len(set(got))
        res["events_in_order"] = got == sorted(got)
        res["monitor_seq"] = health.get("seq")
        return res


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 200.0
    feed = sys.argv[3] if len(sys.argv) > 3 else "replay"
    res = service_load(seconds, rate, feed)
    errors = res.pop("errors")
    print(json.dumps(res, indent=2))
    print(f"errors: {len(errors)}", *errors[:5], sep="\n  ")


if __name__ == "__main__":
    main()
