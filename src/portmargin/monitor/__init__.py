"""Real-time margin monitoring: input events, their validation, market feeds and the monitor."""

from portmargin.monitor._engine import Monitor, RunStats, market_to_dict, states_of
from portmargin.monitor._events import (
    SEQ_MAX,
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
from portmargin.monitor._validate import AMOUNT_MAX, BALANCE_MAX, QUANTITY_MAX

__all__ = [
    "AMOUNT_MAX",
    "BALANCE_MAX",
    "CHAIN_FILES",
    "QUANTITY_MAX",
    "SEQ_MAX",
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
    "states_of",
    "to_feed_line",
]
