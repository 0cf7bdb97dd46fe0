"""The crash-day data shipped in the package: small, reproducible, and the same replay.

The comparisons with the raw files skip cleanly when ../shared/data is absent (a fresh
clone); the packaged replay itself always runs.
"""

from __future__ import annotations

from pathlib import Path

from portmargin.market import MarketSnapshot
from portmargin.monitor import ReplayFeed, load_crash_day
from portmargin.monitor._data import PACKAGED_FILES, derive_crash_day, packaged_dir


def _same(a: MarketSnapshot, b: MarketSnapshot) -> None:
    assert a.valuation_time == b.valuation_time
    assert a.source == b.source
    assert dict(a.underlyings) == dict(b.underlyings)
    assert dict(a.forwards) == dict(b.forwards)
    assert dict(a.futures) == dict(b.futures)
    assert dict(a.quotes) == dict(b.quotes)
    assert dict(a.option_iv) == dict(b.option_iv)
    assert dict(a.option_price) == dict(b.option_price)


def test_the_package_ships_a_few_hundred_kb_at_most() -> None:
    sizes = {name: (packaged_dir() / name).stat().st_size for name in PACKAGED_FILES}
    assert sum(sizes.values()) < 200_000, sizes
    assert (packaged_dir() / "README.md").is_file()


def test_the_packaged_replay_runs_without_the_raw_files() -> None:
    feed = ReplayFeed(steps=2)
    items = list(feed)
    assert [(x.seq, getattr(x, "underlying", None)) for x in items] == [
        (1, "BTC"),
        (2, "ETH"),
        (3, "BTC"),
        (4, "ETH"),
        (5, "BTC"),
        (6, "ETH"),
    ]
    m0, m1, _ = load_crash_day()
    assert round(m0.index_price("BTC")) == 73105  # the raw README's medians
    assert round(m1.index_price("BTC")) == 63858


def test_the_packaged_files_are_derived_byte_for_byte(crash_dir: Path, tmp_path: Path) -> None:
    for path in derive_crash_day(crash_dir, tmp_path):
        assert path.read_bytes() == (packaged_dir() / path.name).read_bytes(), path.name


def test_the_packaged_replay_equals_the_replay_of_the_raw_files(crash_dir: Path) -> None:
    raw, packaged = load_crash_day(crash_dir), load_crash_day()
    _same(raw[0], packaged[0])
    _same(raw[1], packaged[1])
    for steps in (3, 24):
        assert list(ReplayFeed(crash_dir, steps=steps)) == list(ReplayFeed(steps=steps))
