"""Real-time margin monitoring: input events, market feeds and the event-driven monitor."""

from portmargin.monitor._engine import Monitor, RunStats, market_to_dict
from portmargin.monitor._events import (
    AccountChange,
    FeedItem,
    Malformed,
    MarketUpdate,
    parse_feed_line,
    to_feed_line,
)
from portmargin.monitor._feeds import (
    CHAIN_FILES,
    JsonlFeed,
    ReplayFeed,
    SimulatedFeed,
    common_instruments,
    load_crash_day,
)

__all__ = [
    "CHAIN_FILES",
    "AccountChange",
    "FeedItem",
    "JsonlFeed",
    "Malformed",
    "MarketUpdate",
    "Monitor",
    "ReplayFeed",
    "RunStats",
    "SimulatedFeed",
    "common_instruments",
    "load_crash_day",
    "market_to_dict",
    "parse_feed_line",
    "to_feed_line",
]
