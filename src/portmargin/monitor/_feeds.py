r"""Market sources: a deterministic replay of recorded Deribit data and a simulated feed.

**Replay** (:class:`ReplayFeed`) of two Deribit chain snapshots ``t0 < t1`` and the
perpetual series between them, in ``steps`` equal time steps ``t_k = t0 + k(t1 − t0)/steps``
(``w = k/steps``), one update per underlying per step (seq 1, 2, ... in order)::

    perp(t)   log-linear interpolation of the recorded perpetual prices (flat outside)
    index_k   = perp(t_k) · [(1−w)·S0/P0 + w·S1/P1]            (index/perp basis blended)
    F_k(e)    = index_k · [(1−w)·F0(e)/S0 + w·F1(e)/S1]        (expiries in both chains)
    σ_k(i)    = (1−w)·σ0(i) + w·σ1(i)                          (options in both chains)

so step 0 reproduces the first chain and the last step the second. Only instruments listed
in both snapshots are replayed (the Feb-5 expiries die at 08:00 that day). The first update
of an underlying at or after one of its expiries ``e`` (an expiry of the first chain)
carries the settlement price ``index(e)``, the index formula above at ``t = e`` (Deribit
settles on a 30-minute average of the index, which the replay's path does not resolve).

The data are the files of ``data_dir``, or when none is given the compact copy shipped in
the package (:mod:`portmargin.monitor._data`, the same numbers: the replay is equal).

**Simulated** (:class:`SimulatedFeed`), seeded, from a base snapshot: correlated BTC/ETH
log-prices with a stochastic vol level and smile tilt::

    d ln S_u = −½ v_u² dt + v_u √dt ε_u,     corr(ε_BTC, ε_ETH) = ρ
    x_{k+1}  = x_k − κ x_k dt + η √dt ζ     (log vol level, mean-reverting)
    s_{k+1}  = s_k − κ s_k dt + ξ √dt χ     (smile tilt)
    σ_k(i)   = max(σ0(i) · e^{x_k} · (1 + s_k · ln(K/F0)), 0.05),   v_u = σ_ATM,u · e^{x_k}
    F_k(e)   = F0(e) · S_k / S0
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np

from portmargin.errors import InputError
from portmargin.instruments import Option
from portmargin.io import load_market
from portmargin.io._common import parse_time
from portmargin.market.snapshot import MarketSnapshot
from portmargin.monitor._data import packaged_crash_day
from portmargin.monitor._events import FeedItem, MarketUpdate, parse_feed_line

__all__ = [
    "CHAIN_FILES",
    "JsonlFeed",
    "ReplayFeed",
    "SimulatedFeed",
    "common_instruments",
    "load_crash_day",
]

CHAIN_FILES = (
    "deribit_options_snapshot_20260204T213308Z.csv",
    "deribit_options_snapshot_20260205T212937Z.csv",
)
UNDERLYINGS = ("BTC", "ETH")


def load_crash_day(
    data_dir: Path | str | None = None,
) -> tuple[MarketSnapshot, MarketSnapshot, Path]:
    """The two chain snapshots of the 2026-02-05 crash and the perpetual series' path.

    ``data_dir`` holds the raw files (:data:`CHAIN_FILES` and
    ``perpetual_futures_prices.csv``); ``None`` means the compact file in the package (the
    series' path is then that ``crash_day.csv.gz``, whose perpetual rows
    :class:`ReplayFeed` reads, skipping the chain rows that have no perpetual price).
    """
    if data_dir is None:
        return packaged_crash_day()
    folder = Path(data_dir)
    m0 = load_market(folder / CHAIN_FILES[0])
    m1 = load_market(folder / CHAIN_FILES[1])
    return m0, m1, folder / "perpetual_futures_prices.csv"


def common_instruments(m0: MarketSnapshot, m1: MarketSnapshot) -> list[str]:
    """Options quoted in both snapshots and still alive at the later one, sorted."""
    return sorted(
        n
        for n in set(m0.option_iv) & set(m1.option_iv)
        if (m1.instrument(n).expiry or m1.valuation_time) > m1.valuation_time
    )


def _perp_series(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out: dict[str, list[tuple[float, float]]] = {}
    raw = path.read_bytes()
    text = gzip.decompress(raw) if path.suffix == ".gz" else raw
    with io.StringIO(text.decode("utf-8"), newline="") as fh:
        for row in csv.DictReader(fh):
            price = (row.get("perp_futures_mark_price") or "").strip()
            if not price:
                continue
            t = parse_time(row["obs_datetime"], where=f"{path}: obs_datetime").timestamp()
            out.setdefault(row["coin"], []).append((t, math.log(float(price))))
    series = {}
    for coin, pts in out.items():
        pts.sort()
        series[coin] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    return series


class ReplayFeed:
    """Deterministic replay of the crash day (see the module docstring)."""

    name = "replay"

    def __init__(self, data_dir: Path | str | None = None, *, steps: int = 24) -> None:
        if steps < 1:
            raise InputError("replay: `steps` must be >= 1")
        self.steps = steps
        self.m0, self.m1, perp_path = load_crash_day(data_dir)
        self.perp = _perp_series(perp_path)
        self.options = common_instruments(self.m0, self.m1)
        self.name = f"replay:{steps}"
        self.expiries = {
            u: sorted({e for n in self.m0.option_names(u) if (e := _expiry(self.m0, n))})
            for u in UNDERLYINGS
        }

    def times(self) -> list[datetime]:
        """The replay's step times."""
        t0, t1 = self.m0.valuation_time, self.m1.valuation_time
        return [t0 + (t1 - t0) * (k / self.steps) for k in range(self.steps + 1)]

    def __iter__(self) -> Iterator[FeedItem]:
        seq = 0
        times = self.times()
        for k, t in enumerate(times):
            w = k / self.steps
            for und in UNDERLYINGS:
                seq += 1
                passed = [e for e in self.expiries[und] if k > 0 and times[k - 1] < e <= t]
                yield self._update(seq, t, w, und, passed)

    def index_at(self, und: str, t: datetime) -> tuple[float, float]:
        """``(index, perpetual)`` of the replay's path at ``t`` (module docstring)."""
        m0, m1 = self.m0, self.m1
        t0, t1 = m0.valuation_time, m1.valuation_time
        w = (t - t0) / (t1 - t0)
        ts, logp = self.perp[und]
        perp = float(np.exp(np.interp(t.timestamp(), ts, logp)))
        p0 = float(np.exp(np.interp(t0.timestamp(), ts, logp)))
        p1 = float(np.exp(np.interp(t1.timestamp(), ts, logp)))
        s0, s1 = m0.index_price(und), m1.index_price(und)
        return perp * ((1 - w) * s0 / p0 + w * s1 / p1), perp

    def _update(
        self, seq: int, t: datetime, w: float, und: str, passed: list[datetime]
    ) -> MarketUpdate:
        m0, m1 = self.m0, self.m1
        ts, logp = self.perp[und]
        perp = float(np.exp(np.interp(t.timestamp(), ts, logp)))
        p0 = float(np.exp(np.interp(m0.valuation_time.timestamp(), ts, logp)))
        p1 = float(np.exp(np.interp(m1.valuation_time.timestamp(), ts, logp)))
        s0, s1 = m0.index_price(und), m1.index_price(und)
        index = perp * ((1 - w) * s0 / p0 + w * s1 / p1)
        names = [n for n in self.options if m0.instrument(n).underlying == und]
        expiries = sorted({e for n in names if (e := m0.instrument(n).expiry) is not None})
        forwards = {
            e: index * ((1 - w) * m0.forward(und, e) / s0 + w * m1.forward(und, e) / s1)
            for e in expiries
        }
        vols = {n: (1 - w) * m0.option_iv[n] + w * m1.option_iv[n] for n in names}
        settlements = {e: self.index_at(und, e)[0] for e in passed}
        return MarketUpdate(
            seq,
            t,
            und,
            index,
            perp,
            MappingProxyType(forwards),
            MappingProxyType(vols),
            MappingProxyType(settlements),
            position=seq,
        )


def _expiry(market: MarketSnapshot, name: str) -> datetime | None:
    return market.instrument(name).expiry


class SimulatedFeed:
    """Seeded simulated live feed around a base snapshot (see the module docstring)."""

    def __init__(
        self,
        base: MarketSnapshot,
        *,
        seed: int = 0,
        steps: int = 1_000,
        dt_seconds: float = 60.0,
        rho: float = 0.8,
        kappa: float = 50.0,
        eta: float = 1.5,
        xi: float = 0.5,
        options: list[str] | None = None,
    ) -> None:
        self.base = base
        self.seed = seed
        self.steps = steps
        self.dt_seconds = dt_seconds
        self.rho, self.kappa, self.eta, self.xi = rho, kappa, eta, xi
        self.options = sorted(options if options is not None else base.option_iv)
        self.name = f"simulated:{seed}"

    def __iter__(self) -> Iterator[FeedItem]:
        rng = np.random.default_rng(self.seed)
        dt = self.dt_seconds / (365.0 * 86400.0)
        base = self.base
        unds = [u for u in UNDERLYINGS if u in base.underlyings]
        names = {u: [n for n in self.options if base.instrument(n).underlying == u] for u in unds}
        iv0 = {u: np.array([base.option_iv[n] for n in names[u]]) for u in unds}
        k0 = {}
        for u in unds:
            opts = [o for n in names[u] if isinstance(o := base.instrument(n), Option)]
            k0[u] = np.array([math.log(o.strike / base.forward(u, o.expiry)) for o in opts])
        atm = {u: float(np.median(iv0[u])) if iv0[u].size else 0.6 for u in unds}
        expiries = {
            u: sorted({d for n in names[u] if (d := base.instrument(n).expiry) is not None})
            for u in unds
        }
        logs = dict.fromkeys(unds, 0.0)
        x = 0.0
        s = 0.0
        chol = np.linalg.cholesky(np.array([[1.0, self.rho], [self.rho, 1.0]]))
        seq = 0
        for k in range(self.steps + 1):
            t = base.valuation_time + timedelta(seconds=self.dt_seconds * k)
            if k > 0:
                eps = chol @ rng.standard_normal(2)
                for i, u in enumerate(unds):
                    v = atm[u] * math.exp(x)
                    logs[u] += -0.5 * v * v * dt + v * math.sqrt(dt) * float(eps[min(i, 1)])
                x += -self.kappa * x * dt + self.eta * math.sqrt(dt) * float(rng.standard_normal())
                s += -self.kappa * s * dt + self.xi * math.sqrt(dt) * float(rng.standard_normal())
            for u in unds:
                seq += 1
                ratio = math.exp(logs[u])
                vols = np.maximum(iv0[u] * math.exp(x) * (1.0 + s * k0[u]), 0.05)
                yield MarketUpdate(
                    seq,
                    t,
                    u,
                    base.index_price(u) * ratio,
                    base.perpetual_price(u) * ratio,
                    MappingProxyType({e: base.forward(u, e) * ratio for e in expiries[u]}),
                    MappingProxyType(dict(zip(names[u], vols.tolist(), strict=True))),
                    position=seq,
                )


class JsonlFeed:
    """Input events from a JSON-lines file (see :mod:`portmargin.monitor._events`).

    Each item's ``position`` is its line number (1-based; blank lines are skipped but
    counted), the resume key. Bytes that are not UTF-8 are replaced (the line is then
    rejected as malformed or for its content, never fatal).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{self.path.name}"

    def __iter__(self) -> Iterator[FeedItem]:
        with self.path.open(encoding="utf-8", errors="replace", newline="") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                yield parse_feed_line(line, position=number)
