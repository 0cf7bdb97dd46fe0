from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portmargin.errors import InstrumentError
from portmargin.instruments import (
    InstrumentKind,
    OptionType,
    ProductSpec,
    Settlement,
    expiry_code,
    parse_instrument,
)


@pytest.mark.parametrize(
    ("name", "kind", "expiry", "strike", "cp", "settle_ccy"),
    [
        (
            "BTC-27MAR26-70000-C",
            InstrumentKind.OPTION,
            datetime(2026, 3, 27, 8, tzinfo=UTC),
            70000.0,
            OptionType.CALL,
            "BTC",
        ),
        (
            "ETH-6MAR26-3500-P",
            InstrumentKind.OPTION,
            datetime(2026, 3, 6, 8, tzinfo=UTC),
            3500.0,
            OptionType.PUT,
            "ETH",
        ),
        (
            "BTC-27MAR26",
            InstrumentKind.FUTURE,
            datetime(2026, 3, 27, 8, tzinfo=UTC),
            None,
            None,
            "BTC",
        ),
        ("BTC-PERPETUAL", InstrumentKind.PERPETUAL, None, None, None, "BTC"),
        ("BTC_USDC", InstrumentKind.SPOT, None, None, None, "USDC"),
        (
            "BTC_USDC-27MAR26-70000-C",
            InstrumentKind.OPTION,
            datetime(2026, 3, 27, 8, tzinfo=UTC),
            70000.0,
            OptionType.CALL,
            "USDC",
        ),
    ],
)
def test_parse_known_names(
    name: str,
    kind: InstrumentKind,
    expiry: datetime | None,
    strike: float | None,
    cp: OptionType | None,
    settle_ccy: str,
) -> None:
    inst = parse_instrument(name)
    assert inst.kind is kind
    assert inst.expiry == expiry
    assert inst.strike == strike
    assert inst.option_type is cp
    assert inst.settlement_currency == settle_ccy
    assert inst.name == name


def test_btc_eth_are_inverse_one_coin() -> None:
    inst = parse_instrument("BTC-27MAR26-70000-C")
    assert inst.is_inverse
    assert inst.multiplier == 1.0
    assert inst.product.settlement is Settlement.INVERSE


def test_decimal_strikes_and_custom_products() -> None:
    xyz = ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)
    inst = parse_instrument("XYZ-20MAR26-80.5-P", {"XYZ": xyz})
    assert inst.strike == 80.5
    assert inst.multiplier == 100.0
    assert parse_instrument("XYZ-20MAR26-0d5-C", {"XYZ": xyz}).strike == 0.5


def test_lower_case_is_canonicalised() -> None:
    assert parse_instrument("btc-27mar26-70000-c").name == "BTC-27MAR26-70000-C"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("BTC-30FEB26-70000-C", "not a real date"),
        ("BTC-27XYZ26-70000-C", "unknown month"),
        ("BTC-27MAR26-0-C", "strike must be > 0"),
        ("BTC-27MAR26-abc-C", "not a number"),
        ("BTC-27MAR26-70000-X", "C or P"),
        ("FOO-27MAR26", "unknown product"),
        ("BTC", "not a recognised name"),
        ("BTC-27MAR26-70000", "not a recognised name"),
        ("", "empty"),
    ],
)
def test_bad_names_are_rejected_with_the_name(name: str, reason: str) -> None:
    with pytest.raises(InstrumentError, match=reason) as info:
        parse_instrument(name)
    assert repr(name) in str(info.value)


def test_expiry_code_round_trip() -> None:
    assert expiry_code(datetime(2026, 3, 6, 8, tzinfo=UTC)) == "6MAR26"
