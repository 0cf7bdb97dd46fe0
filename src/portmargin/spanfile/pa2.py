r"""Read an expanded positional SPAN file (``.pa2``, format ``U2``) into a :class:`SpanFile`.

Fixed-width records, one per line, positions 1-based and inclusive as CME's layouts print
them ("Risk Parameter File Layouts for the Positional Formats",
https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46301203: Type 2 Expanded
…/46104629, Type 6 Expanded …/46071819, Type 8 Expanded …/46235915, Type B …/46989313, Type S
…/47087663; the Type 0, 3, 4, C, P and T fields as transcribed by the readers cited in
``docs/methodology/span-files.md``). ``9(n)`` is unsigned digits, ``V`` an implied decimal
point, signs are separate bytes (``-`` negative, anything else positive). Lines are padded with
blanks to the longest layout before slicing (producers drop trailing blanks); lines shorter
than two characters are skipped (``CR CR LF`` line ends).

Records read::

    0   header: organisation 3-8, business date 9-16, S/I 17, format 36-37 (U2 only)
    2   combined commodity 7-12, risk exponent 13, currency 14-16, option style 18
        (P or blank: premium), six product slots from 23: code X(10), type X(3),
        risk-array decimal locator 9 and its sign
    3   intra tiers (4 × number, start, end CCYYMM from 11), I/M ratios 69-80 9V9(3)
        (member, hedger, speculator)
    C   tier spreads: priority 11-12, legs 13-14, charge 15-21 9(7) per spread, legs from
        22 of 7 bytes (leg, tier, delta per spread, side)
    4   short option minimum 63-69 9(7) per contract, maintenance factors 70-78 9V9(2)
        (member, hedger, speculator), SOM method 79 (1 = larger side); spot months (method 10)
    B   per futures month / option series: DSF 86-91 9(2)V9(4) (blank: 1), pricing inputs
        (vol 37-44, vol scan 45-52, price scan 53-57, rate 68-72, time 73-79, look-ahead
        80-85, dividend 112-119, scan quotation methods 164/165)
    P   price and strike decimal locators 34-36 / 37-39 (signed), CVF 42-55 9(7)V9(7) with
        exponent 73-75, valuation method 117-121
    6   inter spreads: priority 6-9, rate 10-16 9(3)V9(4) **percent** (flat credit method F:
        9(5)V9(2) money), four legs from 17 of 18 bytes (exchange, flag, CC, delta per spread
        9(3)V9(4), side), method 89-90 (04: scanning-based), credit method 101, leg tiers
        102-109, group flag 110 (S: super)
    S   scan / inter / SOM tiers (method 9-10), WFPR method 83, tier SOM rates 104-138
    81/82, 83/84   risk arrays (16 values 9(5) or 9(8) + sign, scaled ×10^exponent ÷
        10^locator), composite delta 9V9(4) + sign, implied vol, settlement price
    T   currency conversion: from 3-5, to 7-9, multiplier 11-20 9(4)V9(6)

Other records (1, 5, E, V, 9x, R, X, Y, Z) are skipped; a skipped record type that changes the
margin (E: series spreads) is listed in the file's ``notes``. Array values scale as EFS
Spheres does (``value × 10^(risk exponent) ÷ 10^(locator)``,
``LasagniAndrea/Data:Bobcat/Source/SpheresServices/SpheresIO/IOInput/MarginParameters/RiskData_SPAN_Import_Map.xsl@69f92d4``).
The requirement is the arrays' account type's (header byte 59: H, M or S; speculator when
blank): ``MM = Risk × maintenance factor``, ``IM = MM × I/M ratio`` (type 4, type 3).

Every problem is one line: ``<file>: line N (record XX): <field>: <reason>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from portmargin.errors import InputError
from portmargin.spanfile.model import (
    CombinedCommodity,
    Contract,
    DeltaPoint,
    ScanningSpreadDef,
    ScanPoint,
    SpanFile,
    Spread,
    SpreadLeg,
    Tier,
    contract_name,
    month_key,
)

__all__ = ["read_pa2"]

_WIDTH = 200  # every layout ends before this byte (84: 192)
_DELTA_WEIGHTS = (0.037, 0.111, 0.217, 0.270, 0.217, 0.111, 0.037)
_ACCOUNT = {"M": 0, "H": 1, "S": 2}


class _Bad(Exception):  # noqa: N818 (internal: becomes one InputError line)
    """A problem in one record (turned into one InputError line by :func:`read_pa2`)."""


@dataclass
class _Line:
    """One record being read: the padded text, its line number and record id."""

    text: str
    number: int
    rid: str

    def s(self, a: int, b: int) -> str:
        """Bytes ``a..b`` (1-based, inclusive), stripped."""
        return self.text[a - 1 : b].strip()

    def bad(self, what: str, reason: str) -> _Bad:
        return _Bad(f"line {self.number} (record {self.rid.strip()}): {what}: {reason}")

    def digits(self, a: int, b: int, what: str, default: int | None = None) -> int:
        raw = self.s(a, b)
        if not raw:
            if default is None:
                raise self.bad(what, f"bytes {a}-{b} are blank")
            return default
        if not raw.isdigit():
            raise self.bad(what, f"bytes {a}-{b} {raw!r} are not digits")
        return int(raw)

    def num(
        self,
        a: int,
        b: int,
        decimals: int,
        what: str,
        *,
        sign_at: int | None = None,
        default: float | None = None,
    ) -> float:
        if default is not None and not self.s(a, b):
            return default
        out = float(self.digits(a, b, what)) / 10.0**decimals
        if sign_at is not None and self.text[sign_at - 1] == "-":
            out = -out
        return out

    def signed_int(self, a: int, b: int, what: str) -> int:
        raw = self.s(a, b)
        if not raw:
            return 0
        try:
            return int(raw)
        except ValueError:
            raise self.bad(what, f"bytes {a}-{b} {raw!r} are not a signed integer") from None


@dataclass
class _CC:
    code: str
    exch: str
    currency: str
    exponent: int
    premium: bool
    intra: list[Tier] = field(default_factory=list)
    ratios: tuple[float, float, float] = (1.0, 1.0, 1.0)
    factors: tuple[float, float, float] = (1.0, 1.0, 1.0)
    som_rate: float = 0.0
    som_max: bool = False
    som_tiers: list[tuple[Tier, float]] = field(default_factory=list)
    scan_tiers: list[Tier] = field(default_factory=list)
    inter_tiers: list[Tier] = field(default_factory=list)
    per_month_scan: bool = False
    wfpr: str = "normal"
    spreads: list[Spread] = field(default_factory=list)
    spot: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class _Array:
    key: str
    values: list[float]
    line: _Line
    delta: float = 0.0
    vol: float | None = None
    price_raw: int = 0
    price_neg: bool = False
    hp_price: int | None = None
    strike_neg: bool = False
    cvf: float = 0.0


def read_pa2(path: str | Path) -> SpanFile:
    """Read an expanded positional SPAN file (module docstring).

    Raises
    ------
    InputError
        One line naming the file, the line and record, the field and the reason.
    """
    src = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{src}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    try:
        return _read(src, raw.decode("latin-1"))
    except _Bad as exc:
        raise InputError(f"{src}: {exc}") from None


def _read(src: str, text: str) -> SpanFile:
    lines: list[_Line] = []
    for number, rec in enumerate(text.splitlines(), start=1):
        if len(rec.strip()) < 2:
            continue
        padded = rec.ljust(_WIDTH)
        lines.append(_Line(padded, number, padded[0:2]))
    if not lines or lines[0].rid != "0 ":
        first = lines[0] if lines else None
        where = f"line {first.number} (record {first.rid.strip()})" if first else "line 1"
        raise _Bad(f"{where}: an expanded SPAN file starts with a type 0 header record")
    head = lines[0]
    fmt = head.s(36, 37)
    if fmt == "UP":
        raise head.bad("format (bytes 36-37)", "Paris expanded (UP) files are not supported")
    if fmt != "U2":
        raise head.bad("format (bytes 36-37)", f"{fmt!r} is not U2 (expanded unpacked)")
    org = head.s(3, 8)
    d = head.digits(9, 16, "business date")
    try:
        when = date(d // 10000, d // 100 % 100, d % 100)
    except ValueError:
        raise head.bad("business date", f"{d} is not a date CCYYMMDD") from None
    settlement = head.s(17, 17) != "I"
    account = _ACCOUNT.get(head.s(59, 59) or "S", 2)
    products: dict[tuple[str, str, str], tuple[str, int, int]] = {}  # → cc, locator, sign
    ccs: dict[str, _CC] = {}
    b_records: dict[tuple[str, str, str, str, str], _Line] = {}
    p_records: dict[tuple[str, str, str], _Line] = {}
    arrays: list[_Array] = []
    pending: _Array | None = None
    inter: list[Spread] = []
    scanning: list[ScanningSpreadDef] = []
    usd: dict[str, float] = {"USD": 1.0}
    notes: list[str] = []
    skipped: set[str] = set()
    for ln in lines[1:]:
        rid = ln.rid
        if rid in ("81", "83"):
            if pending is not None:
                raise pending.line.bad(
                    "risk array", f"record {pending.line.rid} without its second record"
                )
            pending = _first_array(ln)
        elif rid in ("82", "84"):
            if (
                pending is None
                or pending.key != ln.text[2:54]
                or int(rid) != int(pending.line.rid) + 1
            ):
                raise ln.bad(
                    "risk array", f"record {rid} without its record {int(rid) - 1} just before"
                )
            _second_array(ln, pending)
            arrays.append(pending)
            pending = None
        elif rid == "2 ":
            _cc_record(ln, ccs, products)
        elif rid == "3 ":
            _intra_record(ln, ccs)
        elif rid == "C ":
            _tier_spread(ln, ccs)
        elif rid == "4 ":
            _som_record(ln, ccs)
        elif rid == "B ":
            key = (
                ln.s(3, 5),
                ln.s(6, 15),
                ln.s(16, 18),
                ln.text[18:26].strip(),
                ln.text[27:35].strip(),
            )
            b_records[key] = ln
        elif rid == "P ":
            p_records[(ln.s(3, 5), ln.s(6, 15), ln.s(16, 18))] = ln
        elif rid == "6 ":
            _inter_record(ln, inter, scanning, notes)
        elif rid == "S ":
            _tier_record(ln, ccs)
        elif rid == "T ":
            src_ccy, dst, factor = (
                ln.s(3, 5),
                ln.s(7, 9),
                ln.num(11, 20, 6, "conversion multiplier"),
            )
            if dst == "USD" and factor > 0:
                usd[src_ccy] = factor
            elif src_ccy == "USD" and factor > 0:
                usd.setdefault(dst, 1.0 / factor)
        elif rid.strip() not in ("1", "5"):
            skipped.add(rid.strip())
    if pending is not None:
        raise pending.line.bad("risk array", f"record {pending.line.rid} without its second record")
    for rid in sorted(skipped):
        notes.append(
            f"record type {rid} skipped (not read)"
            + (": series-to-series intra spreads are not charged" if rid == "E" else "")
        )
    if not arrays:
        raise _Bad("no risk array records (81/82 or 83/84)")
    return _assemble(
        src,
        org,
        when,
        settlement,
        account,
        products,
        ccs,
        b_records,
        p_records,
        arrays,
        inter,
        scanning,
        usd,
        notes,
    )


# -- records ----------------------------------------------------------------------------------


def _cc_record(
    ln: _Line, ccs: dict[str, _CC], products: dict[tuple[str, str, str], tuple[str, int, int]]
) -> None:
    exch, code = ln.s(3, 5), ln.s(7, 12)
    if not code:
        raise ln.bad("combined commodity (bytes 7-12)", "blank")
    cc = ccs.get(code)
    if cc is None:
        cc = ccs[code] = _CC(
            code,
            exch,
            ln.s(14, 16) or "USD",
            ln.digits(13, 13, "risk exponent", 0),
            ln.s(18, 18) in ("", "P"),
        )
    for k in range(6):
        at = 23 + 16 * k
        product, kind = ln.s(at, at + 9), ln.s(at + 10, at + 12)
        if not product:
            continue
        locator = ln.digits(at + 13, at + 13, f"product {product} decimal locator", 0)
        sign = -1 if ln.text[at + 13] == "-" else 1
        products[(exch, product, kind)] = (code, locator, sign)


def _get(ln: _Line, ccs: dict[str, _CC], at: tuple[int, int] = (3, 8)) -> _CC:
    code = ln.s(*at)
    cc = ccs.get(code)
    if cc is None:
        raise ln.bad("combined commodity", f"{code!r} has no type 2 record before this one")
    return cc


def _tier(ln: _Line, at: int, what: str) -> Tier | None:
    raw = ln.s(at, at + 1)
    if not raw:
        return None
    n = ln.digits(at, at + 1, f"{what} number")
    start, end = ln.s(at + 2, at + 7), ln.s(at + 8, at + 13)
    return Tier(n, start if start.strip("0") else None, end if end.strip("0") else None)


def _intra_record(ln: _Line, ccs: dict[str, _CC]) -> None:
    cc = _get(ln, ccs)
    for k in range(4):
        tier = _tier(ln, 11 + 14 * k, f"tier {k + 1}")
        if tier is not None:
            cc.intra.append(tier)
    cc.ratios = tuple(  # type: ignore[assignment]
        (ln.num(a, a + 3, 3, f"I/M ratio {who}", default=1.0) or 1.0)
        for a, who in ((69, "member"), (73, "hedger"), (77, "speculator"))
    )


def _tier_spread(ln: _Line, ccs: dict[str, _CC]) -> None:
    cc = _get(ln, ccs)
    priority = ln.digits(11, 12, "priority")
    n_legs = ln.digits(13, 14, "number of legs")
    rate = float(ln.digits(15, 21, "charge rate"))
    legs = []
    for k in range(n_legs):
        at = 22 + 7 * k
        tier = ln.digits(at + 2, at + 3, f"leg {k + 1} tier")
        ratio = float(ln.digits(at + 4, at + 5, f"leg {k + 1} delta per spread"))
        side = ln.s(at + 6, at + 6)
        if side not in ("A", "B") or ratio <= 0:
            raise ln.bad(f"leg {k + 1}", f"side {side!r} must be A or B and the ratio > 0")
        legs.append(SpreadLeg(cc.code, "A" if side == "A" else "B", ratio, tier=tier))
    if len(legs) < 2:
        raise ln.bad("number of legs", f"a spread needs at least two legs, got {len(legs)}")
    cc.spreads.append(Spread(priority, "F", rate, tuple(legs)))


def _som_record(ln: _Line, ccs: dict[str, _CC]) -> None:
    cc = _get(ln, ccs)
    cc.som_rate = float(ln.digits(63, 69, "short option minimum rate", 0))
    cc.factors = tuple(  # type: ignore[assignment]
        (ln.num(a, a + 2, 2, f"maintenance factor {who}", default=1.0) or 1.0)
        for a, who in ((70, "member"), (73, "hedger"), (76, "speculator"))
    )
    cc.som_max = ln.s(79, 79) == "1"
    if ln.s(9, 10) == "10":
        for k in range(min(ln.digits(11, 12, "months in delivery", 0), 2)):
            at = 13 + 22 * k
            month = ln.s(at + 2, at + 7)
            consumed = float(ln.digits(at + 8, at + 14, "charge per consumed delta", 0))
            remaining = float(ln.digits(at + 15, at + 21, "charge per remaining delta", 0))
            cc.spot.append((month, consumed, remaining))


def _inter_record(
    ln: _Line, inter: list[Spread], scanning: list[ScanningSpreadDef], notes: list[str]
) -> None:
    priority = ln.digits(6, 9, "priority")
    flat = ln.s(101, 101) == "F"
    raw_rate = ln.digits(10, 16, "credit rate")
    rate = raw_rate / 100.0 if flat else raw_rate / 1e4 / 100.0  # money, or percent → fraction
    legs = []
    for k in range(4):
        at = 17 + 18 * k
        code = ln.s(at + 4, at + 9)
        if not code:
            continue
        ratio = ln.num(at + 10, at + 16, 4, f"leg {k + 1} delta per spread")
        side = ln.s(at + 17, at + 17)
        if side not in ("A", "B") or ratio <= 0:
            raise ln.bad(f"leg {k + 1}", f"side {side!r} must be A or B and the ratio > 0")
        tier = ln.digits(102 + 2 * k, 103 + 2 * k, f"leg {k + 1} tier", 0)
        legs.append(SpreadLeg(code, "A" if side == "A" else "B", ratio, tier=tier))
    if len(legs) < 2:
        raise ln.bad("legs", f"a spread needs at least two legs, got {len(legs)}")
    if ln.s(89, 90) == "04":
        scanning.append(ScanningSpreadDef(priority, rate, tuple(leg.cc for leg in legs)))
        return
    if ln.s(110, 110) == "S":
        notes.append(f"inter spread {priority}: a super spread, evaluated after the intra spreads")
    inter.append(Spread(priority, "F" if flat else "W", rate, tuple(legs)))


def _tier_record(ln: _Line, ccs: dict[str, _CC]) -> None:
    cc = _get(ln, ccs)
    method = ln.s(9, 10)
    tiers = [t for k in range(5) if (t := _tier(ln, 13 + 14 * k, f"tier {k + 1}")) is not None]
    cc.wfpr = {"2": "scanrange_cap", "3": "scanrange"}.get(ln.s(83, 83), "normal")
    if method == "02":
        cc.per_month_scan = True
    if method in ("10", "21", "22"):
        cc.scan_tiers = tiers
    if method in ("20", "21", "23"):
        cc.inter_tiers = tiers
    if method == "30":
        cc.som_tiers = [
            (t, float(ln.digits(104 + 7 * k, 110 + 7 * k, f"tier {k + 1} SOM rate", 0)))
            for k, t in enumerate(tiers)
        ]


def _first_array(ln: _Line) -> _Array:
    wide = ln.rid == "83"
    step, size = (9, 8) if wide else (6, 5)
    values = []
    for k in range(9):
        at = 55 + step * k
        v = float(ln.digits(at, at + size - 1, f"array value {k + 1}"))
        values.append(-v if ln.text[at + size - 1] == "-" else v)
    arr = _Array(ln.text[2:54], values, ln)
    hp = (136, 149, 150) if wide else (109, 122, 123)
    if ln.s(hp[2], hp[2]) == "Y":
        arr.hp_price = ln.digits(hp[0], hp[1], "high-precision settlement price")
    return arr


def _second_array(ln: _Line, arr: _Array) -> None:
    wide = ln.rid == "84"
    step, size = (9, 8) if wide else (6, 5)
    for k in range(7):
        at = 55 + step * k
        v = float(ln.digits(at, at + size - 1, f"array value {k + 10}"))
        arr.values.append(-v if ln.text[at + size - 1] == "-" else v)
    base = 118 if wide else 97  # composite delta
    arr.delta = ln.num(base, base + 4, 4, "composite delta", sign_at=base + 5, default=0.0)
    vol = ln.num(base + 6, base + 13, 6, "implied volatility", default=0.0)
    exp_at = 156 if wide else 135
    exponent = ln.digits(exp_at, exp_at + 1, "implied volatility exponent", 0)
    if ln.text[exp_at + 1] == "-":
        exponent = -exponent
    arr.vol = vol * 10.0**exponent if vol else None
    price_at = base + 14
    arr.price_raw = ln.digits(price_at, price_at + 6, "settlement price", 0)
    arr.price_neg = ln.text[price_at + 6] == "-"
    arr.strike_neg = ln.text[price_at + 7] == "-"
    cvf_at = 159 if wide else 138
    cvf = ln.num(cvf_at, cvf_at + 13, 7, "contract value factor", default=0.0)
    if cvf:
        exp = ln.digits(cvf_at + 14, cvf_at + 15, "contract value factor exponent", 0)
        cvf *= 10.0 ** (-exp if ln.text[cvf_at + 15] == "-" else exp)
    arr.cvf = cvf


# -- assembly ---------------------------------------------------------------------------------


def _assemble(
    src: str,
    org: str,
    when: date,
    settlement: bool,  # noqa: FBT001 (internal, positional by design)
    account: int,
    products: dict[tuple[str, str, str], tuple[str, int, int]],
    ccs: dict[str, _CC],
    b_records: dict[tuple[str, str, str, str, str], _Line],
    p_records: dict[tuple[str, str, str], _Line],
    arrays: list[_Array],
    inter: list[Spread],
    scanning: list[ScanningSpreadDef],
    usd: dict[str, float],
    notes: list[str],
) -> SpanFile:
    contracts: dict[str, Contract] = {}
    lookahead: float | None = None
    extreme = 3.0
    cover = 1.0
    for arr in arrays:
        ln = arr.line
        exch, product, kind = ln.s(3, 5), ln.s(6, 15), ln.s(26, 28)
        found = products.get((exch, product, kind))
        if found is None:
            raise ln.bad("product", f"{exch} {product} ({kind}) is in no type 2 record")
        code, locator, lsign = found
        cc = ccs[code]
        scale = 10.0**cc.exponent / 10.0 ** (lsign * locator)
        values = tuple(v * scale for v in arr.values)
        right = ln.s(29, 29) or None
        fut_period = ln.text[29:37].strip()
        opt_period = ln.text[38:46].strip()
        is_option = kind in ("OOF", "OOP", "OOE", "OOC")
        if is_option and right not in ("C", "P"):
            raise ln.bad("option right (byte 29)", f"{right!r} is not C or P")
        p_rec = p_records.get((exch, product, kind))
        price_dl = strike_dl = 0
        cvf = arr.cvf
        value_meth = ""
        if p_rec is not None:
            price_dl = p_rec.signed_int(34, 36, "settlement price decimal locator")
            strike_dl = p_rec.signed_int(37, 39, "strike decimal locator")
            base_cvf = p_rec.num(42, 55, 7, "contract value factor", default=0.0)
            exp = p_rec.digits(74, 75, "contract value factor exponent", 0)
            base_cvf *= 10.0 ** (-exp if p_rec.text[72] == "-" else exp)
            cvf = cvf or base_cvf
            value_meth = p_rec.s(117, 121)
        raw_price = arr.hp_price if arr.hp_price is not None else arr.price_raw
        price = raw_price / 10.0**price_dl * (-1.0 if arr.price_neg else 1.0)
        strike = None
        if is_option:
            k_raw = ln.digits(48, 54, "strike")
            strike = Decimal(k_raw).scaleb(-strike_dl) * (-1 if arr.strike_neg else 1)
            strike = abs(strike)
        period = opt_period if is_option else fut_period
        b = b_records.get((exch, product, kind, fut_period, opt_period if is_option else ""))
        if b is None and not is_option:
            b = b_records.get((exch, product, kind, fut_period, ""))
        dsf = 1.0
        inputs: dict[str, float | None] = {}
        if b is not None:
            dsf = b.num(86, 91, 4, "delta scaling factor", default=1.0) or 1.0
            look = b.num(80, 85, 6, "look-ahead time", default=0.0)
            if look and lookahead is None:
                lookahead = look
            extreme = b.num(58, 62, 3, "extreme move multiple", default=extreme) or extreme
            cover = b.num(63, 67, 4, "extreme move covered fraction", default=cover) or cover
            vsr = b.num(45, 52, 6, "volatility scan range", default=0.0)
            psr = float(b.digits(53, 57, "futures price scan range", 0))
            psr_exp = b.digits(166, 167, "price scan range exponent", 0)
            psr *= 10.0 ** (-psr_exp if b.text[167] == "-" else psr_exp)
            pct_vol = b.s(164, 164) == "P"
            pct_price = b.s(165, 165) == "P"
            inputs = {
                "time": b.num(73, 79, 6, "time to expiration", default=0.0) or None,
                "rate": b.num(68, 72, 4, "interest rate", default=0.0),
                "dividend_yield": b.num(112, 119, 6, "dividend yield", default=0.0),
                "price_scan": None if pct_price else (psr or None),
                "price_scan_pct": (psr / 100.0) if pct_price and psr else None,
                "vol_scan": None if pct_vol else (vsr or None),
                "vol_scan_pct": vsr if pct_vol and vsr else None,
            }
        name = contract_name(exch, product, kind, period, right if is_option else None, strike)
        if name in contracts:
            raise ln.bad("contract", f"a second risk array for {name}")
        und = ln.s(16, 25)
        contracts[name] = Contract(
            name=name,
            exchange=exch,
            product=product,
            kind=kind,
            period=period,
            right=right if is_option else None,
            strike=strike,
            price=price,
            cvf=cvf,
            array=values,
            composite_delta=arr.delta,
            dsf=dsf,
            cc=code,
            currency=cc.currency,
            premium_style=is_option and cc.premium and value_meth != "FUT",
            tier_period=fut_period if (kind == "OOF" and fut_period) else period,
            underlying=_underlying(exch, und, kind, fut_period) if is_option and und else None,
            vol=arr.vol,
            where=f"line {ln.number} (record {ln.rid})",
            **inputs,
        )
    points = (
        *(
            ScanPoint(p, v, 1.0, i ^ 1)
            for i, (p, v) in enumerate(
                (m, s) for m in (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0) for s in (1.0, -1.0)
            )
        ),
        ScanPoint(extreme, 0.0, cover, 14),
        ScanPoint(-extreme, 0.0, cover, 15),
    )
    delta_points = tuple(
        DeltaPoint(k / 3.0, w) for k, w in zip(range(-3, 4), _DELTA_WEIGHTS, strict=True)
    )
    combined = {code: _combined(cc, account, contracts) for code, cc in ccs.items()}
    for cc in ccs.values():
        for month, _, _ in cc.spot:
            notes.append(
                f"CC {cc.code} spot month {month}: spot (delivery-month) charges are not applied"
            )
    return SpanFile(
        source=src,
        format="pa2",
        clearing_org=org or "?",
        business_date=when,
        settlement=settlement,
        points=points,
        delta_points=delta_points,
        contracts=contracts,
        ccs=combined,
        inter_spreads=tuple(sorted(inter, key=lambda s: s.priority)),
        scanning_spreads=tuple(sorted(scanning, key=lambda s: s.priority)),
        usd_rates=usd,
        lookahead_years=lookahead,
        notes=tuple(notes),
    )


def _underlying(exch: str, product: str, kind: str, fut_period: str) -> str:
    if kind == "OOF":
        return contract_name(exch, product, "FUT", fut_period, None, None)
    return contract_name(exch, product, "PHY", fut_period or "000000", None, None)


def _combined(cc: _CC, account: int, contracts: dict[str, Contract]) -> CombinedCommodity:
    maintenance = cc.factors[account]
    scan = list(cc.scan_tiers)
    if cc.per_month_scan:
        months = sorted({month_key(c.tier_period) for c in contracts.values() if c.cc == cc.code})
        scan = [Tier(i + 1, m, m) for i, m in enumerate(months)]
    som = cc.som_tiers or ([(Tier(0), cc.som_rate)] if cc.som_rate else [])
    return CombinedCommodity(
        code=cc.code,
        currency=cc.currency,
        intra_tiers=tuple(cc.intra) or (Tier(0),),
        inter_tiers=tuple(cc.inter_tiers) or (Tier(0),),
        scan_tiers=tuple(scan),
        som_tiers=tuple(som),
        som_method="max" if cc.som_max else "gross",
        wfpr_method=cc.wfpr,  # type: ignore[arg-type]
        intra_spreads=tuple(sorted(cc.spreads, key=lambda s: s.priority)),
        spot_months=tuple(cc.spot),
        maintenance_factor=maintenance,
        initial_factor=maintenance * cc.ratios[account],
    )
