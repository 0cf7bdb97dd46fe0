"""SPAN files: read both formats, margin on the published arrays by hand, recompute, refuse.

The book of ``span_files.py`` (two combined commodities, written from CME's layouts) is
margined by hand below from its published arrays, following CME "Components of SPAN"
(http://www.cme.com/clearing/rmspan/span/components.html): scan risk and its time / vol /
price split, the intra-commodity tier spread, the short option minimum, the weighted-price-risk
inter-commodity credit, ``max(scan + intra − inter, SOM)``, initial = 1.1 × maintenance, and
net option value in equity.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import span_files as sf

import portmargin as pm
from portmargin.errors import InputError, ParameterError
from portmargin.methods import load_method
from portmargin.pricing import black76_price
from portmargin.spanfile import (
    SpanFileMethod,
    load_span_file,
    read_pa2,
    recompute_arrays,
    span_margin,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("span")
    xml = folder / "tst.20240517.s.spn"
    pa2 = folder / "tst.20240517.s.pa2"
    xml.write_text(sf.xml_file(), encoding="utf-8")
    pa2.write_text(sf.pa2_file(), encoding="latin-1")
    return {"xml": xml, "pa2": pa2}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="latin-1")
    return path


# ----------------------------------------------------------------------------------------
# The book by hand


def test_book_margined_by_hand_from_the_published_arrays(files: dict[str, Path]) -> None:
    # CC1 scenario losses L_j = 2·FUT − 1·FUT − 3·CALL + 1·PUT = FUT − 3·CALL + PUT:
    #   L_1 = −10, L_2 = 7, ..., L_12 = −100 + 186 + 14 = 100, L_15 = −99 + 480 + 10 = 391.
    # Scan = 391 (point 15, the extreme up move, paired with itself: vol risk 0);
    # time risk = (L_1 + L_2)/2 = −1.5; price risk = 391 + 1.5 − 0 = 392.5.
    # Deltas (composite × DSF 1): June 2 − 3·0.55 − 0.30 = 0.05 (tier 1), September −1
    # (tier 2): one flat spread of 0.05 at 30 USD: intra = 1.5. SOM: 3 short calls × 5 = 15.
    # CC2: +2 FU2: L_13 = 2·60 = 120 = scan = price risk; delta +2; WFPR 120/2 = 60.
    # Inter CC1 (A, 1) vs CC2 (B, 2): CC1 short 0.95, CC2 long 2 → n = min(0.95, 2/2) = 0.95;
    #   CC1 credit 0.95·1·(392.5/0.95)·0.5 = 196.25, CC2 credit 0.95·2·60·0.5 = 57.
    # Risk: CC1 max(391 + 1.5 − 196.25, 15) = 196.25; CC2 120 − 57 = 63; MM = 259.25,
    # IM = 1.1·259.25 = 285.175. NOV = −3·2.5·10 + 1·1.2·10 = −63; equity = 1000 − 63 = 937.
    f = load_span_file(files["xml"])
    r = span_margin(f, sf.BOOK, {"USD": 1000.0})
    by = {u.underlying: u for u in r.by_underlying}
    cc1, cc2 = by["CC1"], by["CC2"]
    assert cc1.scanning_risk == pytest.approx(391.0, abs=1e-9)
    assert cc1.details["time_risk"] == pytest.approx(-1.5, abs=1e-9)
    assert cc1.details["vol_risk"] == pytest.approx(0.0, abs=1e-9)
    assert cc1.details["price_risk"] == pytest.approx(392.5, abs=1e-9)
    assert cc1.components["span_intra_commodity"] == pytest.approx(1.5, abs=1e-9)
    assert cc1.components["span_inter_commodity"] == pytest.approx(-196.25, abs=1e-9)
    assert cc1.components["span_short_option_minimum"] == 0.0  # 15 < 196.25
    assert cc1.requirement == pytest.approx(196.25, abs=1e-9)
    assert cc1.worst_scenario.index == 14 and cc1.worst_scenario.price_move == 3.0
    assert cc2.scanning_risk == pytest.approx(120.0, abs=1e-9)
    assert cc2.components["span_inter_commodity"] == pytest.approx(-57.0, abs=1e-9)
    assert r.currency == "USD"
    assert r.maintenance_margin == pytest.approx(259.25, abs=1e-9)
    assert r.initial_margin == pytest.approx(285.175, abs=1e-9)
    assert r.equity == pytest.approx(937.0, abs=1e-9)
    assert r.by_currency[0].details["net_option_value"] == pytest.approx(-63.0, abs=1e-9)
    assert r.model == "spanfile" and r.model_version == "TST 2024-05-17 settlement (xml)"
    # Euler: the positions' contributions add up to each CC's scan risk
    for u in r.by_underlying:
        own = [p for p in r.positions if u.underlying == _cc(p.instrument)]
        assert sum(p.scanning_contribution for p in own) == pytest.approx(u.scanning_risk)
    assert r.to_dict()["risk_matrix"]["CC1"]["binding"]["index"] == 14


def _cc(name: str) -> str:
    return "CC2" if ":FU2:" in name else "CC1"


def test_short_option_minimum_binds_when_the_scan_is_small(tmp_path: Path) -> None:
    # SOM at 500 USD per short option. 1 short put: scan = max_j(−PUT_j) = 95 (point 16), SOM
    # 500 binds: MM = 500, the SOM component is the top-up 405. 1 short call + 2 short puts:
    # L = −CALL − 2·PUT peaks at L_16 = −8 + 190 = 182; gross SOM 3 × 500 = 1,500, max
    # (larger side) 2 × 500 = 1,000.
    text = sf.xml_file().replace("<val>5</val>", "<val>500</val>")
    f = load_span_file(_write(tmp_path, "som.spn", text))
    r = span_margin(f, {"TST:OPT:OOF:202406:P:95": -1})
    (u,) = r.by_underlying
    assert u.scanning_risk == pytest.approx(95.0)
    assert u.components["span_short_option_minimum"] == pytest.approx(405.0)
    assert r.maintenance_margin == pytest.approx(500.0)
    book = {"TST:OPT:OOF:202406:C:100": -1, "TST:OPT:OOF:202406:P:95": -2}
    gross = span_margin(f, book)
    assert gross.by_underlying[0].scanning_risk == pytest.approx(182.0)
    assert gross.maintenance_margin == pytest.approx(1_500.0)
    f_max = load_span_file(_write(tmp_path, "som_max.spn", text.replace("GROSS", "MAX", 1)))
    assert span_margin(f_max, book).maintenance_margin == pytest.approx(1_000.0)


def test_pa2_reads_the_same_book(files: dict[str, Path]) -> None:
    x = span_margin(load_span_file(files["xml"]), sf.BOOK, {"USD": 1000.0}).to_dict()
    p = span_margin(load_span_file(files["pa2"]), sf.BOOK, {"USD": 1000.0}).to_dict()
    for key in ("model_version", "market", "notes"):
        x.pop(key)
        p.pop(key)
    assert _close(p, x)


def _close(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys()
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b)
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-6)  # scan multiples: 6 decimals in XML
        return True
    assert a == b
    return True


def test_pa2_decoding_traps(tmp_path: Path, files: dict[str, Path]) -> None:
    base = span_margin(load_span_file(files["pa2"]), sf.BOOK).maintenance_margin
    # risk exponent 1 with the arrays written ten times smaller; CR CR LF line ends;
    # records truncated after their last non-blank byte (record() strips trailing blanks)
    f1 = load_span_file(_write(tmp_path, "e.pa2", sf.pa2_file(exponent=1, crcrlf=True)))
    assert span_margin(f1, sf.BOOK).maintenance_margin == pytest.approx(base, rel=1e-12)
    # no type B record: the delta scaling factor is 1
    assert all(c.dsf == 1.0 for c in f1.contracts.values())
    # the strike as written in the file or normalised, with or without the exchange
    c = f1.contract("OPT:OOF:202406:C:100.00")
    assert c.name == "TST:OPT:OOF:202406:C:100" and c.price == 2.5 and c.cvf == 10.0
    assert f1.contract("TST:OPT:OOF:202406:P:95").composite_delta == -0.30


# ----------------------------------------------------------------------------------------
# One clear line per bad file


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.spn", "<spanFile><pointInTime>", "a.spn: line 1, column 23: not well-formed XML"),
        ("b.spn", "<notSpan/>", "b.spn: <notSpan>: not a SPAN XML file"),
        (
            "c.spn",
            sf.xml_file(drop="p"),
            "c.spn: exchange TST PHY UND (pfId 1)/phy cId 10: <p> missing",
        ),
        (
            "d.spn",
            sf.xml_file(call_array=[1.0] * 15),
            "d.spn: exchange TST OOF OPT (pfId 3)/series 202406/opt cId 30/ra r 1: 15 array "
            "values, the pointDef has 16",
        ),
        ("e.txt", "hello", "e.txt: not a SPAN file"),
    ],
)
def test_bad_xml_files_are_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(InputError) as exc:
        load_span_file(path)
    assert str(exc.value) == message.replace(name, str(path), 1) or (
        str(exc.value).startswith(f"{path}: ") and message.split(": ", 1)[1] in str(exc.value)
    )
    assert "\n" not in str(exc.value)


def _pa2_lines() -> list[str]:
    return sf.pa2_file().splitlines()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda ls: [x.replace("U2", "UP", 1) if x.startswith("0 ") else x for x in ls],
            "line 1 (record 0): format (bytes 36-37): Paris expanded (UP) files are not supported",
        ),
        (
            lambda ls: [x for x in ls if not x.startswith("81")][:],
            "(record 82): risk array: record 82 without its record 81 just before",
        ),
        (
            lambda ls: [x.replace("0010000A", "00X0000A") if x.startswith("6 ") else x for x in ls],
            "(record 6): leg 1 delta per spread: bytes 27-33 '00X0000' are not digits",
        ),
        (
            lambda ls: [
                x.replace("FU2       FUT2+", "FUX       FUT2+") if x.startswith("2 ") else x
                for x in ls
            ],
            "(record 81): product: TST FU2 (FUT) is in no type 2 record",
        ),
        (lambda ls: ls[1:], "line 1 (record T): an expanded SPAN file starts with a type 0 header"),
    ],
)
def test_bad_pa2_files_are_one_line(tmp_path: Path, edit: object, message: str) -> None:
    lines = edit(_pa2_lines())  # type: ignore[operator]
    path = _write(tmp_path, "bad.pa2", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as exc:
        read_pa2(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_instrument_is_named(files: dict[str, Path]) -> None:
    f = load_span_file(files["xml"])
    with pytest.raises(InputError, match=r"^book: positions: 'TST:FUT:FUT:202412': not a contract"):
        span_margin(f, {"TST:FUT:FUT:202412": 1}, name="book")


# ----------------------------------------------------------------------------------------
# The method


def test_spanfile_is_a_method(files: dict[str, Path]) -> None:
    method = load_method("spanfile", params_file=files["pa2"])
    assert isinstance(method, SpanFileMethod)
    assert (method.name, method.family) == ("spanfile", "portfolio")
    book = pm.Portfolio.of(sf.BOOK, {"USD": 1000.0})
    r = pm.margin(book, pm.demo_market(), method)  # the market is not used
    assert r.maintenance_margin == pytest.approx(259.25)
    with pytest.raises(ParameterError, match="give the SPAN file with --params"):
        load_method("spanfile")
    with pytest.raises(ParameterError, match="--cross does not apply"):
        load_method("spanfile", params_file=files["pa2"], cross=True)


# ----------------------------------------------------------------------------------------
# Recomputing the arrays from the file's pricing inputs


def test_recompute_futures_and_an_option_by_hand(tmp_path: Path) -> None:
    # Futures: a_j = −p_j·PSR·w_j with PSR 100 USD: the published FUT (2 decimals) agrees to
    # 0.005 USD. The call on the June future (F = 100, K = 100, T = 0.1, σ = 0.2, r = 5 %,
    # VSR 25 % of σ, PSR 100 USD / CVF 10 = 10 price points, one trading day of look-ahead):
    #   a_j = −10·w_j·(e^{−r(T−τ)}·B76(100 + 10·p_j, 100, T − τ, 0.2·(1 + 0.25·v_j))
    #                 − e^{−rT}·B76(100, 100, T, 0.2))
    # with p_j the file's multiples as written (0.333333, six decimals, as a CCP's file).
    tau, r, T = 1 / 252, 0.05, 0.1
    v0 = math.exp(-r * T) * float(black76_price(100.0, 100.0, T, 0.2, True))
    call = [
        -10.0
        * w
        * (
            math.exp(-r * (T - tau))
            * float(black76_price(100.0 + 10.0 * p, 100.0, T - tau, 0.2 * (1 + 0.25 * v), True))
            - v0
        )
        for p, v, w in zip([round(x, 6) for x in sf.POINTS], sf.VOLS, sf.WEIGHTS, strict=True)
    ]
    path = _write(tmp_path, "hand.spn", sf.xml_file(call_array=[round(a, 6) for a in call]))
    f = load_span_file(path)
    report = recompute_arrays(f, lookahead_years=tau)
    checks = {c.name: c for c in report.checks}
    assert checks["TST:FUT:FUT:202406"].max_abs_diff <= 0.005 + 1e-12
    assert checks["TST:OPT:OOF:202406:C:100"].max_abs_diff < 1e-6
    # the put's published array is invented: far from its recomputation, and reported
    assert report.worst is not None and report.worst.name == "TST:OPT:OOF:202406:P:95"
    assert "largest difference" in report.summary()
    # an option on a future keeps the futures price: "held" gives the same call array
    held = recompute_arrays(
        f, lookahead_years=tau, forward="held", names=["TST:OPT:OOF:202406:C:100"]
    )
    assert held.checks[0].max_abs_diff < 1e-6
    with pytest.raises(InputError, match="states no look-ahead time"):
        recompute_arrays(f)


REAL = os.environ.get("PORTMARGIN_REAL_SPAN_FILE")


@pytest.mark.skipif(REAL is None, reason="set PORTMARGIN_REAL_SPAN_FILE to a clearing house's .spn")
def test_a_clearing_house_file_is_reproduced_with_the_rolled_convention() -> None:
    # A public clearing-house SPAN file (e.g. the Takasbank file of 2016-05-17 shipped in
    # martingale/spanTAKASBANK:src/takas.spn@f36617861ec9bcb063c2cff12243caf4b18df587): equity
    # options at r = 10 %, 14 days, one trading day of look-ahead.
    assert REAL is not None
    f = load_span_file(REAL)
    rolled = recompute_arrays(f, lookahead_years=1 / 252)
    held = recompute_arrays(f, lookahead_years=1 / 252, forward="held")
    assert rolled.max_relative < 1e-3
    assert held.max_relative > 3 * rolled.max_relative
