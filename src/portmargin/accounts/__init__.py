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
    AccountStatus,
    classify,
    evaluate_account,
    haircut_usd,
    instrument_known,
    margin_usd,
    usd_rate,
)
from portmargin.accounts._batch import BatchMargin
from portmargin.accounts._files import accounts_from_dict, load_accounts
from portmargin.accounts._whatif import WhatIf, parse_trade, trade_cash, what_if
from portmargin.accounts.attribution import Attribution, PositionAttribution, attribute

__all__ = [
    "BALANCE_CURRENCIES",
    "Account",
    "AccountMargin",
    "AccountSettings",
    "AccountStatus",
    "Attribution",
    "BatchMargin",
    "PositionAttribution",
    "WhatIf",
    "accounts_from_dict",
    "attribute",
    "classify",
    "evaluate_account",
    "haircut_usd",
    "instrument_known",
    "load_accounts",
    "margin_usd",
    "parse_trade",
    "trade_cash",
    "usd_rate",
    "what_if",
]
