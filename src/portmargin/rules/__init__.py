"""Rules-based (strategy-based) margin with optimal strategy pairing.

Rule sets are TOML data (``deribit-standard``, ``strategy``, ``cboe`` or a user file);
:func:`rules_margin` groups the legs of each underlying into recognised strategies with the
minimum total requirement (an exact MILP on HiGHS) and reports it net of the positions'
mark-to-market, with the gross figure and a greedy baseline beside it.
Method and sources: ``docs/methodology/rules.md``.
"""

from portmargin.rules._engine import (
    SEARCH_TIME_LIMIT,
    PoolResult,
    RulesResult,
    StrategyGroup,
    rules_margin,
)
from portmargin.rules._market import RulesMarket
from portmargin.rules._params import RuleSet, load_rule_set

__all__ = [
    "SEARCH_TIME_LIMIT",
    "PoolResult",
    "RuleSet",
    "RulesMarket",
    "RulesResult",
    "StrategyGroup",
    "load_rule_set",
    "rules_margin",
]
