"""Accounts: balances with haircuts, margin status, what-if checks and attribution.

>>> import portmargin as pm
>>> from portmargin.accounts import Account, evaluate_account
>>> acct = Account("a1", {"BTC-27MAR26-70000-P": -1.0}, {"BTC": 1.0})
>>> m = evaluate_account(acct, pm.demo_market(), pm.load_model("deribit"))
>>> m.status.value, m.method
('healthy', 'portfolio')
"""

from portmargin.accounts._account import (
    BALANCE_CURRENCIES,
    Account,
    AccountMargin,
    AccountSettings,
    PoolFigures,
    account_margin,
    canonical_positions,
    evaluate_account,
    haircut_usd,
    instrument_known,
    margin_usd,
)
from portmargin.accounts._batch import BatchMargin, PoolArrays
from portmargin.accounts._files import accounts_from_dict, load_accounts
from portmargin.accounts._ledger import Ledger
from portmargin.accounts._policy import (
    DEFAULT_MIN_PM_EQUITY_USD,
    STATUSES,
    AccountStatus,
    Decision,
    classify,
    classify_many,
    pre_trade,
    qualifies,
)
from portmargin.accounts._whatif import WhatIf, parse_trade, trade_cash, what_if
from portmargin.accounts.attribution import Attribution, PositionAttribution, attribute
from portmargin.units import usd_rate

__all__ = [
    "BALANCE_CURRENCIES",
    "DEFAULT_MIN_PM_EQUITY_USD",
    "STATUSES",
    "Account",
    "AccountMargin",
    "AccountSettings",
    "AccountStatus",
    "Attribution",
    "BatchMargin",
    "Decision",
    "Ledger",
    "PoolArrays",
    "PoolFigures",
    "PositionAttribution",
    "WhatIf",
    "account_margin",
    "accounts_from_dict",
    "attribute",
    "canonical_positions",
    "classify",
    "classify_many",
    "evaluate_account",
    "haircut_usd",
    "instrument_known",
    "load_accounts",
    "margin_usd",
    "parse_trade",
    "pre_trade",
    "qualifies",
    "trade_cash",
    "usd_rate",
    "what_if",
]
