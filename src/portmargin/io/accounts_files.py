"""The accounts file: many accounts with balances and positions, plus optional settings.

JSON::

    {"settings": {"haircuts": {"BTC": 0.02}, "min_pm_equity_usd": 10000},
     "accounts": [{"id": "acct-001", "balances": {"BTC": 1.5, "USDC": 20000},
                   "positions": [{"instrument": "BTC-27MAR26-70000-P", "quantity": -2}],
                   "pm_approved": true}]}

``pm_approved`` (default true) is the venue's grant of portfolio margin to the account; an
account without it is margined under the settings' ``fallback_rule_set`` whatever its equity.
Other top-level keys (``description``, ...) are allowed and ignored.

Every value is checked against :mod:`portmargin.io.limits`: ids of 1 to 200 characters and
unique, instrument names of at most 100, ``|quantity| ≤ 1e9`` contracts (per position and
net per instrument), ``|balance| ≤ 1e12`` units; JSON keys appear once per object; the
document is at most 256 MiB. The settings are checked by
:class:`~portmargin.accounts.AccountSettings`. Every error is one :class:`InputError` line,
``file: accounts.3.positions.0.quantity: reason``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portmargin.errors import InputError, PortmarginError
from portmargin.io import limits
from portmargin.io._common import read_json, validation_message
from portmargin.io.portfolio_files import Number

if TYPE_CHECKING:  # the accounts package imports this module: no import cycle at run time
    from portmargin.accounts import Account, AccountSettings

__all__ = ["accounts_from_dict", "load_accounts"]


class _Position(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instrument: str = Field(min_length=1)
    quantity: Number


class _Account(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    balances: dict[str, Number] = {}
    positions: list[_Position] = []
    pm_approved: bool = True


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    haircuts: dict[str, Number] | None = None
    margin_call_level: Number | None = None
    liquidation_level: Number | None = None
    min_pm_equity_usd: Number | None = None
    fallback_rule_set: str | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="allow")
    settings: _Settings | None = None
    accounts: list[_Account]


def accounts_from_dict(
    data: object, *, source: str = "accounts"
) -> tuple[list[Account], AccountSettings]:
    """Validate a parsed accounts document.

    Raises
    ------
    InputError
        ``source: field: reason`` for invalid fields, values beyond the limits or duplicate
        account ids.
    """
    from portmargin.accounts import Account, AccountSettings

    try:
        doc = _File.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(source, exc)) from None
    out: list[Account] = []
    seen: set[str] = set()
    for i, a in enumerate(doc.accounts):
        at = f"{source}: accounts.{i}"
        limits.check_id(a.id, f"{at}.id")
        if a.id in seen:
            raise InputError(f"{at}.id: duplicate account id {a.id!r}")
        seen.add(a.id)
        pos: dict[str, float] = {}
        for k, p in enumerate(a.positions):
            name = limits.check_instrument(p.instrument.strip(), f"{at}.positions.{k}.instrument")
            limits.check_quantity(p.quantity, f"{at}.positions.{k}.quantity")
            pos[name] = pos.get(name, 0.0) + p.quantity
        for name, qty in pos.items():
            limits.check_quantity(qty, f"{at}.positions: net quantity of {name!r}")
        for ccy, amount in a.balances.items():
            limits.check_currency(ccy, f"{at}.balances")
            limits.check_balance(amount, f"{at}.balances.{ccy}")
        try:
            out.append(Account(a.id, pos, a.balances, a.pm_approved))
        except PortmarginError as exc:
            raise InputError(f"{at}: {exc}") from None
    st = doc.settings or _Settings()
    kwargs: dict[str, Any] = {k: v for k, v in st.model_dump().items() if v is not None}
    try:
        settings = AccountSettings(**kwargs)
    except PortmarginError as exc:
        raise InputError(f"{source}: {exc}") from None
    return out, settings


def load_accounts(path: Path | str) -> tuple[list[Account], AccountSettings]:
    """Load an accounts JSON file (see the module docstring).

    Raises
    ------
    InputError
        One line naming the file, the field and the reason.
    """
    p = Path(path)
    return accounts_from_dict(read_json(p, strict=True), source=str(p))
