"""The 5 Feb 2026 crash day over all 300 example accounts: the calls a risk desk expects.

The accounts (examples/make_accounts.py) are sized on the first snapshot with equity
between 1.15x and 3x their initial margin, so a desk expects: nobody in trouble at the
start; calls only once the market has fallen; the books that lose on a fall (short puts,
strangles, long perpetuals) called, short calls never; and, within a kind of book, the
thinnest cushions called first. Perpetual P&L must reach equity (variation margin).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from portmargin.accounts import Account, evaluate_account, load_accounts
from portmargin.models import load_model
from portmargin.monitor import Monitor, ReplayFeed, load_crash_day
from portmargin.storage import StoredEvent, open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEPS = 12


@dataclass
class Replay:
    start: dict[str, Account]
    end: dict[str, Account]
    cushion: dict[str, float]
    events: list[StoredEvent]
    index: dict[int, dict[str, float]]  # seq -> index prices after that event
    perp0: dict[str, float]
    perp1: dict[str, float]


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    accts, settings = load_accounts(EXAMPLES / "accounts.json")
    model = load_model("deribit")
    m0, _, _ = load_crash_day()  # the packaged data: the raw files' numbers, on any clone
    cushion = {}
    for a in accts:
        m = evaluate_account(a, m0, model, settings)
        cushion[a.account_id] = m.equity_usd / m.initial_margin_usd
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('crash') / 'c.db'}")
    store.save_accounts(accts)
    feed = ReplayFeed(steps=STEPS)
    mon = Monitor(store, model, settings, feed_name=feed.name)
    index: dict[int, dict[str, float]] = {}
    perps: list[dict[str, float]] = []

    def record(m: Monitor) -> None:
        assert m.market is not None
        index[m.last_seq] = {u: m.market.index_price(u) for u in m.market.underlyings}
        perps.append({u: s.perpetual for u, s in m.states.items() if s.perpetual is not None})

    mon.run(feed, on_step=record)
    return Replay(
        {a.account_id: a for a in accts},
        dict(mon.accounts),
        cushion,
        store.events(kinds=["margin_call", "liquidation", "healthy"]),
        index,
        perps[1],  # after the first step's BTC and ETH updates
        perps[-1],
    )


def _first_calls(r: Replay) -> dict[str, int]:
    first: dict[str, int] = {}
    for e in r.events:
        if e.kind in ("margin_call", "liquidation") and e.account_id is not None:
            first.setdefault(e.account_id, e.seq)
    return first


def test_every_account_starts_healthy(replay: Replay) -> None:
    assert all(c >= 1.15 - 1e-9 for c in replay.cushion.values())
    assert not [e for e in replay.events if e.seq <= 2], "no status change on the first step"


def test_calls_come_only_once_the_market_has_fallen(replay: Replay) -> None:
    first = _first_calls(replay)
    assert len(first) >= 60, "a 12 % fall must call a fifth of these thin-cushion books"
    start = replay.index[2]
    for seq in set(first.values()):
        now = replay.index[seq]
        assert min(now[u] / start[u] for u in start) < 0.985, seq


def test_the_books_that_lose_on_a_fall_are_called_and_short_calls_never(replay: Replay) -> None:
    first = _first_calls(replay)

    def kind(a: Account) -> str:
        names = list(a.positions)
        if any(n.endswith("PERPETUAL") for n in names):
            return "perp"
        if all(n.endswith("-C") for n in names):
            return "short_call"
        return "puts"

    called = {"perp": 0, "short_call": 0, "puts": 0}
    for acct_id, a in replay.start.items():
        if acct_id in first:
            called[kind(a)] += 1
    assert called["short_call"] == 0
    assert called["puts"] >= 40
    assert called["perp"] >= 1


def test_thinnest_cushions_are_called_first(replay: Replay) -> None:
    first = _first_calls(replay)
    for und in ("BTC", "ETH"):
        ids = [
            i
            for i in first
            if all(n.startswith(und + "-") and n.endswith("-P") for n in replay.start[i].positions)
            and len(replay.start[i].positions) == 1
        ]
        assert len(ids) >= 8, und
        rho = spearmanr([replay.cushion[i] for i in ids], [first[i] for i in ids]).statistic
        assert rho > 0.8, (und, rho)


def test_status_events_carry_consistent_figures(replay: Replay) -> None:
    keys = [(e.seq, e.ordinal) for e in replay.events]
    assert keys == sorted(keys)
    for e in replay.events:
        fig = e.payload["figures"]
        if e.kind == "liquidation":
            assert fig["equity"] < fig["maintenance_margin"]
        elif e.kind == "margin_call":
            assert fig["maintenance_margin"] <= fig["equity"] < fig["initial_margin"]
        else:
            assert fig["equity"] >= fig["initial_margin"]


def test_perpetual_pnl_is_settled_into_the_balance(replay: Replay) -> None:
    # Telescoping variation margin: over the day the balance moves by the P&L from the first
    # mark the monitor saw, F₀, to the last, F₁. BTC-/ETH-PERPETUAL are inverse with a fixed
    # USD face, so q₀ coins at F₀ (face q₀·F₀ USD) settle q₀·(1 − F₀/F₁) coin in total and
    # are q₀·F₀/F₁ coins at F₁ (deribit.md §1.4: PnL_coin = Q·(1 − 1/(1+m)) per step); the
    # USDC collateral of these books is untouched.
    checked = 0
    for acct_id, a in replay.start.items():
        if not any(n.endswith("PERPETUAL") and "_USDC" not in n for n in a.positions):
            continue  # the inverse perpetuals (linear ones: the next test)
        ((name, q),) = a.positions.items()
        und = name.split("-")[0]
        f0, f1 = replay.perp0[und], replay.perp1[und]
        end = replay.end[acct_id]
        gained = end.balances[und] - a.balances.get(und, 0.0)
        assert gained == pytest.approx(q * (1 - f0 / f1), rel=1e-9)
        assert end.positions[name] == pytest.approx(q * f0 / f1, rel=1e-12)
        assert end.balances.get("USDC", 0.0) == a.balances.get("USDC", 0.0)
        checked += 1
    assert checked >= 20


def test_linear_perpetual_pnl_is_settled_in_usdc(replay: Replay) -> None:
    # A USDC-settled perpetual of size q (coins) settles M·q·(F₁ − F₀) USDC in total (the
    # linear delta-one P&L, telescoping over the steps) and keeps its size.
    checked = 0
    for acct_id, a in replay.start.items():
        names = [n for n in a.positions if n.endswith("_USDC-PERPETUAL")]
        if not names:
            continue
        ((name, q),) = a.positions.items()
        und = name.split("_")[0]
        f0, f1 = replay.perp0[und], replay.perp1[und]
        end = replay.end[acct_id]
        gained = end.balances["USDC"] - a.balances["USDC"]
        assert gained == pytest.approx(q * (f1 - f0), rel=1e-9)
        assert end.positions[name] == q
        checked += 1
    assert checked >= 20


def test_a_market_move_never_switches_the_margin_method(replay: Replay) -> None:
    # Every account starts eligible for portfolio margin; the gate is not re-applied on
    # market moves, so nobody falls off a cliff into the rules fallback mid-crash, and with
    # it every liquidation is preceded by a margin call (IM = 1.25 MM gives the warning).
    assert {e.payload["figures"]["method"] for e in replay.events} == {"portfolio"}
    seen: dict[str, str] = {}
    for e in replay.events:
        assert e.account_id is not None
        if e.kind == "liquidation":
            assert seen.get(e.account_id) == "margin_call", e.account_id
        seen[e.account_id] = e.kind
