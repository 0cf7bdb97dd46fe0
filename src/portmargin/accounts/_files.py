"""The accounts file: many accounts with balances and positions, plus optional settings.

JSON::

    {"settings": {"haircuts": {"BTC": 0.02}, "min_pm_equity_usd": 10000},
     "accounts": [{"id": "acct-001", "balances": {"BTC": 1.5, "USDC": 20000},
                   "positions": [{"instrument": "BTC-27MAR26-70000-P", "quantity": -2}],
                   "pm_approved": true}]}

``pm_approved`` (default true) is the venue's grant of portfolio margin to the account; an
account without it is margined under the settings' ``fallback_rule_set`` whatever its equity.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portmargin.accounts._account import Account, AccountSettings
from portmargin.accounts._policy import DEFAULT_MIN_PM_EQUITY_USD
from portmargin.errors import InputError, PortmarginError
from portmargin.io._common import read_json, validation_message

__all__ = ["accounts_from_dict", "load_accounts"]


class _Position(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instrument: str = Field(min_length=1)
    quantity: float = Field(allow_inf_nan=False)


class _Account(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    balances: dict[str, float] = {}
    positions: list[_Position] = []
    pm_approved: bool = True


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    haircuts: dict[str, float] | None = None
    margin_call_level: float = 1.0
    liquidation_level: float = 1.0
    min_pm_equity_usd: float = DEFAULT_MIN_PM_EQUITY_USD
    fallback_rule_set: str = "strategy"


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
        ``source: field: reason`` for invalid fields or duplicate account ids.
    """
    try:
        doc = _File.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(source, exc)) from None
    out: list[Account] = []
    seen: set[str] = set()
    for i, a in enumerate(doc.accounts):
        if a.id in seen:
            raise InputError(f"{source}: accounts.{i}.id: duplicate account id {a.id!r}")
        seen.add(a.id)
        pos: dict[str, float] = {}
        for p in a.positions:
            pos[p.instrument.strip()] = pos.get(p.instrument.strip(), 0.0) + p.quantity
        try:
            out.append(Account(a.id, pos, a.balances, a.pm_approved))
        except PortmarginError as exc:
            raise InputError(f"{source}: accounts.{i}: {exc}") from None
    st = doc.settings or _Settings()
    try:
        kwargs: dict[str, object] = {
            "margin_call_level": st.margin_call_level,
            "liquidation_level": st.liquidation_level,
            "min_pm_equity_usd": st.min_pm_equity_usd,
            "fallback_rule_set": st.fallback_rule_set,
        }
        if st.haircuts is not None:
            kwargs["haircuts"] = st.haircuts
        settings = AccountSettings(**kwargs)  # type: ignore[arg-type]
    except PortmarginError as exc:
        raise InputError(f"{source}: {exc}") from None
    return out, settings


def load_accounts(path: Path | str) -> tuple[list[Account], AccountSettings]:
    """Load an accounts JSON file (see the module docstring)."""
    p = Path(path)
    return accounts_from_dict(read_json(p), source=str(p))
