r"""Read a SPAN 4 XML risk-parameter file (``.spn``) into a :class:`~portmargin.spanfile.SpanFile`.

The file is streamed (``xml.etree.ElementTree.iterparse``): each product family and combined
commodity is read when its element closes and then cleared, so a clearing house's full file
does not sit in memory as a tree. Elements and their meaning follow CME's SPAN XML schema
(``marketcalls/marginism:spanrisk.xml@733c56d``)::

    pointInTime(date, isSetl)/clearingOrg(ec, lookAheadYears?, curConv*, pbRateDef*, pointDef*)
      exchange(exch)/ phyPf | futPf | fwdPf | cmbPf | oopPf | oofPf | ooePf | oocPf
        PF(pfId, pfCode, currency, cvf, valueMeth, undPf)
          phy | fut (cId, pe, p, cvf, sc, t, undC, intrRate, scanRate*, ra*)
          series (pe, v, t, cvf, sc, undC, intrRate, divRate, scanRate*)
            / opt (cId, o, k, p, v, ra*)
      ccDef(cc, currency, wfprMeth, somMeth, pfLink*, adjRate*, intraTiers, interTiers,
            scanTiers, somTiers, dSpread*, spotRate*)
      superSpreads | interSpreads / dSpread*, sSpread*

Choices, each with its evidence:

* **Rate ID.** ``ra``, ``scanRate``, spread and SOM rates repeat per rate ``r``. The file's
  requirement is computed for one rate ``r0``: the maintenance rate (``pbRateDef/isM = 1``)
  when arrays exist for it, else the lowest ``r`` with arrays. ``adjRate(r, baseR, val)``
  with ``baseR = r0`` scales it: if ``r0`` is a maintenance rate, ``IM = val × MM`` (CME:
  initial/maintenance 1.1); if ``r0`` is an initial rate, ``MM = val × IM`` (a clearing house
  whose only arrays are initial, with ``adjRate`` 0.75 and maintenance at 75 % of initial:
  ``martingale/spanTAKASBANK:src/SpanNative.cpp@f36617861ec9bcb063c2cff12243caf4b18df587``)
  [inferred].
* **Delta scaling factor** = the contract's (or series') ``sc`` × the ``pfLink``'s ``sc``
  (Spheres multiplies both:
  ``LasagniAndrea/Data:SpheresRiskPerformance/RiskMethods/RiskMethodSPAN.cs@6474304``).
* **Premium-style options** (net option value): product family ``valueMeth = EQTY``.
* **Contract value factor**: the contract's ``cvf`` when positive, else the series', else
  the product family's.
* **Rates**: inter-commodity ``W`` rates are fractions (``0.6`` = 60 %); ``F`` rates, SOM
  rates and intra spread charges are money; ``intrRate/val`` and ``divRate/val`` are read as
  fractions (the XSD says "in %", but a clearing house's ``0.1`` with r = 10 % is what
  reproduces its arrays) [inferred].

Every problem is one line: ``<file>: <element path>: <reason>`` (or ``line L, column C`` for
malformed XML).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
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
)

__all__ = ["read_xml"]

_PF_KINDS = {
    "phyPf": "PHY",
    "futPf": "FUT",
    "fwdPf": "FWD",
    "cmbPf": "CMB",
    "oopPf": "OOP",
    "oofPf": "OOF",
    "ooePf": "OOE",
    "oocPf": "OOC",
}
_CONTRACT_TAGS = {"phy", "fut", "fwd", "cmb"}

# CME's 16-point layout, used when the file has no pointDef (scan points 15/16 at ±3 ranges).
_STANDARD_POINTS = (
    *(
        ScanPoint(p, v, 1.0, i ^ 1)
        for i, (p, v) in enumerate(
            (m, s) for m in (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0) for s in (1.0, -1.0)
        )
    ),
    ScanPoint(3.0, 0.0, 1.0, 14),
    ScanPoint(-3.0, 0.0, 1.0, 15),
)


class _Bad(Exception):  # noqa: N818 (internal: becomes one InputError line)
    """A problem at an element (turned into one InputError line by :func:`read_xml`)."""


@dataclass
class _RawContract:
    kind: str
    exch: str
    pf_id: str
    product: str
    c_id: str
    pe: str
    price: float
    cvf: float
    sc: float
    value_meth: str
    where: str
    arrays: dict[str, tuple[tuple[float, ...], float]] = field(default_factory=dict)
    scans: dict[str, tuple[float | None, float | None, float | None, float | None]] = field(
        default_factory=dict
    )
    und: tuple[str, str, str] | None = None
    right: str | None = None
    strike: Decimal | None = None
    vol: float | None = None
    time: float | None = None
    rate: float | None = None
    div: float | None = None


@dataclass
class _RawSpread:
    priority: int
    method: str
    rates: dict[str, float]
    legs: list[SpreadLeg]
    where: str


@dataclass
class _RawCC:
    code: str
    currency: str
    wfpr: str
    som: str
    links: list[tuple[str, str, float]]
    adj: list[tuple[str, str, float]]
    intra: tuple[Tier, ...]
    inter: tuple[Tier, ...]
    scan: tuple[Tier, ...]
    som_tiers: list[tuple[Tier, dict[str, float]]]
    spreads: list[_RawSpread]
    spot: list[tuple[str, str, float, float]]
    where: str


def read_xml(path: str | Path) -> SpanFile:
    """Read a SPAN 4 XML file (module docstring).

    Raises
    ------
    InputError
        One line naming the file, the element and the reason: malformed XML, a missing or
        non-numeric value, a risk array of the wrong length, an underlying contract the file
        does not define, no contract at all, ...
    """
    src = str(path)
    try:
        return _read(Path(path), src)
    except _Bad as exc:
        raise InputError(f"{src}: {exc}") from None
    except ET.ParseError as exc:
        line, col = exc.position
        reason = str(exc).split(":")[0]
        raise InputError(
            f"{src}: line {line}, column {col}: not well-formed XML ({reason})"
        ) from None
    except OSError as exc:
        raise InputError(f"{src}: cannot read ({exc.strerror or exc.__class__.__name__})") from None


def _read(path: Path, src: str) -> SpanFile:
    stack: list[str] = []
    exch = ""
    org = ""
    when: date | None = None
    settlement = True
    lookahead: float | None = None
    rate_defs: list[tuple[str, bool]] = []
    point_defs: dict[str, tuple[tuple[ScanPoint, ...], tuple[DeltaPoint, ...]]] = {}
    fx: list[tuple[str, str, float]] = []
    contracts: list[_RawContract] = []
    ccs: list[_RawCC] = []
    inter: list[_RawSpread] = []
    scanning: list[tuple[int, dict[str, float], tuple[str, ...]]] = []
    notes: list[str] = []
    root_seen = False
    for event, elem in ET.iterparse(path, events=("start", "end")):
        if event == "start":
            if not root_seen:
                root_seen = True
                if elem.tag != "spanFile":
                    raise _Bad(f"<{elem.tag}>: not a SPAN XML file (the root must be <spanFile>)")
            stack.append(elem.tag)
            continue
        stack.pop()
        tag = elem.tag
        parent = stack[-1] if stack else ""
        if tag == "date" and parent == "pointInTime":
            when = _date(_text(elem), "pointInTime/date")
        elif tag == "isSetl" and parent == "pointInTime":
            settlement = _text(elem) not in ("0", "false")
        elif tag == "ec" and parent == "clearingOrg":
            org = _text(elem)
        elif tag == "lookAheadYears" and parent == "clearingOrg":
            lookahead = _number(_text(elem), "clearingOrg/lookAheadYears")
        elif tag == "curConv" and parent == "clearingOrg":
            fx.append(
                (
                    _child(elem, "fromCur", "curConv"),
                    _child(elem, "toCur", "curConv"),
                    _num_child(elem, "factor", "curConv"),
                )
            )
        elif tag == "pbRateDef":
            rate_defs.append(
                (_child(elem, "r", "pbRateDef"), _child(elem, "isM", "pbRateDef", "0") == "1")
            )
        elif tag == "pointDef":
            r = _child(elem, "r", "pointDef", "1")
            point_defs[r] = _points(elem, f"pointDef r {r}")
        elif tag == "exch" and parent == "exchange":
            exch = _text(elem)
        elif tag in _PF_KINDS and parent == "exchange":
            contracts.extend(_product_family(elem, exch, _PF_KINDS[tag]))
            elem.clear()
        elif tag in ("equityPf", "debtPf"):
            notes.append(
                f"{exch} {tag} {_child(elem, 'pfCode', tag, '?')}: not read (not supported)"
            )
            elem.clear()
        elif tag == "ccDef":
            ccs.append(_cc(elem))
            elem.clear()
        elif tag == "dSpread" and parent in ("interSpreads", "superSpreads"):
            where = f"{parent}/dSpread {_child(elem, 'spread', parent, '?')}"
            inter.append(_spread(elem, where))
            if parent == "superSpreads":
                notes.append(
                    f"{where}: a super spread, evaluated with the other inter spreads "
                    "(after the intra spreads)"
                )
            elem.clear()
        elif tag == "sSpread" and parent in ("interSpreads", "superSpreads"):
            scanning.append(_scanning(elem))
            elem.clear()
    if when is None:
        raise _Bad("pointInTime/date: missing (a SPAN file is one point in time)")
    return _assemble(
        src,
        org,
        when,
        settlement,
        lookahead,
        rate_defs,
        point_defs,
        fx,
        contracts,
        ccs,
        inter,
        scanning,
        notes,
    )


# -- small readers --------------------------------------------------------------------------


def _text(elem: ET.Element) -> str:
    return (elem.text or "").strip()


def _child(elem: ET.Element, tag: str, where: str, default: str | None = None) -> str:
    found = elem.find(tag)
    if found is None or not _text(found):
        if default is not None:
            return default
        raise _Bad(f"{where}: <{tag}> missing")
    return _text(found)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Bad(f"{where}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _Bad(f"{where}: {text!r} is not a finite number")
    return value


def _num_child(elem: ET.Element, tag: str, where: str, default: float | None = None) -> float:
    found = elem.find(tag)
    if found is None or not _text(found):
        if default is not None:
            return default
        raise _Bad(f"{where}: <{tag}> missing")
    return _number(_text(found), f"{where}/{tag}")


def _opt_num(elem: ET.Element, tag: str, where: str) -> float | None:
    found = elem.find(tag)
    if found is None or not _text(found):
        return None
    return _number(_text(found), f"{where}/{tag}")


def _date(text: str, where: str) -> date:
    t = text.strip()
    try:
        return date(int(t[0:4]), int(t[4:6]), int(t[6:8]))
    except ValueError:
        raise _Bad(f"{where}: {text!r} is not a date CCYYMMDD") from None


def _per_rate(elem: ET.Element, tag: str, where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for x in elem.findall(tag):
        r = _child(x, "r", f"{where}/{tag}", "1")
        out[r] = _num_child(x, "val", f"{where}/{tag} r {r}")
    return out


def _points(elem: ET.Element, where: str) -> tuple[tuple[ScanPoint, ...], tuple[DeltaPoint, ...]]:
    scan: list[tuple[int, ScanPoint]] = []
    for x in elem.findall("scanPointDef"):
        n = int(_num_child(x, "point", f"{where}/scanPointDef"))
        w = f"{where}/scanPointDef {n}"
        price = _num_child(_need(x, "priceScanDef", w), "mult", f"{w}/priceScanDef")
        vol = _num_child(_need(x, "volScanDef", w), "mult", f"{w}/volScanDef")
        paired = int(_num_child(x, "pairedPoint", w, float(n)))
        scan.append((n, ScanPoint(price, vol, _num_child(x, "weight", w, 1.0), paired - 1)))
    delta: list[tuple[int, DeltaPoint]] = []
    for x in elem.findall("deltaPointDef"):
        n = int(_num_child(x, "point", f"{where}/deltaPointDef"))
        w = f"{where}/deltaPointDef {n}"
        price = _num_child(_need(x, "priceScanDef", w), "mult", f"{w}/priceScanDef")
        delta.append((n, DeltaPoint(price, _num_child(x, "weight", w))))
    return tuple(p for _, p in sorted(scan, key=lambda t: t[0])), tuple(
        p for _, p in sorted(delta, key=lambda t: t[0])
    )


def _need(elem: ET.Element, tag: str, where: str) -> ET.Element:
    found = elem.find(tag)
    if found is None:
        raise _Bad(f"{where}: <{tag}> missing")
    return found


def _arrays(elem: ET.Element, where: str) -> dict[str, tuple[tuple[float, ...], float]]:
    out: dict[str, tuple[tuple[float, ...], float]] = {}
    for ra in elem.findall("ra"):
        r = _child(ra, "r", f"{where}/ra", "1")
        values = tuple(_number(_text(a), f"{where}/ra r {r}/a") for a in ra.findall("a"))
        out[r] = (values, _num_child(ra, "d", f"{where}/ra r {r}"))
    return out


def _scans(
    elem: ET.Element, where: str
) -> dict[str, tuple[float | None, float | None, float | None, float | None]]:
    out: dict[str, tuple[float | None, float | None, float | None, float | None]] = {}
    for sr in elem.findall("scanRate"):
        r = _child(sr, "r", f"{where}/scanRate", "1")
        w = f"{where}/scanRate r {r}"
        out[r] = (
            _opt_num(sr, "priceScan", w),
            _opt_num(sr, "priceScanPct", w),
            _opt_num(sr, "volScan", w),
            _opt_num(sr, "volScanPct", w),
        )
    return out


def _und(elem: ET.Element, exch: str, where: str) -> tuple[str, str, str] | None:
    u = elem.find("undC")
    if u is None:
        return None
    return (
        _child(u, "exch", f"{where}/undC", exch),
        _child(u, "pfId", f"{where}/undC"),
        _child(u, "cId", f"{where}/undC"),
    )


def _product_family(pf: ET.Element, exch: str, kind: str) -> Iterator[_RawContract]:
    code = _child(pf, "pfCode", f"exchange {exch} {kind}")
    pf_id = _child(pf, "pfId", f"exchange {exch} {kind} {code}")
    where = f"exchange {exch} {kind} {code} (pfId {pf_id})"
    pf_cvf = _num_child(pf, "cvf", where, 0.0)
    value_meth = _child(pf, "valueMeth", where, "")
    if kind in ("PHY", "FUT", "FWD", "CMB"):
        for c in pf:
            if c.tag not in _CONTRACT_TAGS:
                continue
            c_id = _child(c, "cId", f"{where}/{c.tag}")
            w = f"{where}/{c.tag} cId {c_id}"
            cvf = _num_child(c, "cvf", w, 0.0) or pf_cvf
            yield _RawContract(
                kind,
                exch,
                pf_id,
                code,
                c_id,
                _child(c, "pe", w, "000000"),
                _num_child(c, "p", w),
                cvf,
                _num_child(c, "sc", w, 1.0),
                value_meth,
                w,
                _arrays(c, w),
                _scans(c, w),
                _und(c, exch, w),
                time=_opt_num(c, "t", w),
                vol=_opt_num(c, "v", w),
            )
        return
    for series in pf.findall("series"):
        pe = _child(series, "pe", f"{where}/series")
        ws = f"{where}/series {pe}"
        s_cvf = _num_child(series, "cvf", ws, 0.0) or pf_cvf
        intr = series.find("intrRate")
        div = series.find("divRate")
        s_vol = _opt_num(series, "v", ws)
        for opt in series.findall("opt"):
            c_id = _child(opt, "cId", f"{ws}/opt")
            w = f"{ws}/opt cId {c_id}"
            right = _child(opt, "o", w).upper()
            if right not in ("C", "P"):
                raise _Bad(f"{w}/o: {right!r} is not C or P")
            k = _child(opt, "k", w)
            try:
                strike = abs(Decimal(k))  # options on combinations may carry negative strikes
            except InvalidOperation:
                raise _Bad(f"{w}/k: {k!r} is not a number") from None
            vol = _opt_num(opt, "v", w)
            yield _RawContract(
                kind,
                exch,
                pf_id,
                code,
                c_id,
                pe,
                _num_child(opt, "p", w),
                _num_child(opt, "cvf", w, 0.0) or s_cvf,
                _num_child(series, "sc", ws, 1.0),
                value_meth,
                w,
                _arrays(opt, w),
                _scans(series, ws),
                _und(series, exch, ws),
                right,
                strike,
                vol if vol else s_vol,
                _opt_num(series, "t", ws),
                None if intr is None else _opt_num(intr, "val", f"{ws}/intrRate"),
                None if div is None else _opt_num(div, "val", f"{ws}/divRate"),
            )


def _tiers(elem: ET.Element, tag: str, where: str) -> tuple[Tier, ...]:
    holder = elem.find(tag)
    if holder is None:
        return ()
    out = []
    for t in holder.findall("tier"):
        n = int(_num_child(t, "tn", f"{where}/{tag}/tier"))
        start = t.find("sPe")
        end = t.find("ePe")
        out.append(
            Tier(
                n,
                None if start is None or not _text(start) else _text(start),
                None if end is None or not _text(end) else _text(end),
            )
        )
    return tuple(out)


def _legs(elem: ET.Element, where: str) -> list[SpreadLeg]:
    legs: list[SpreadLeg] = []
    for leg in elem:
        if leg.tag not in ("tLeg", "pLeg"):
            continue
        w = f"{where}/{leg.tag}"
        side = _child(leg, "rs", w).upper()
        if side not in ("A", "B"):
            raise _Bad(f"{w}/rs: {side!r} is not A or B")
        ratio = _num_child(leg, "i", w)
        if ratio <= 0:
            raise _Bad(f"{w}/i: the delta per spread must be > 0, got {ratio:g}")
        cc = _child(leg, "cc", w)
        if leg.tag == "tLeg":
            legs.append(
                SpreadLeg(
                    cc, "A" if side == "A" else "B", ratio, tier=int(_num_child(leg, "tn", w))
                )
            )
        else:
            legs.append(
                SpreadLeg(cc, "A" if side == "A" else "B", ratio, period=_child(leg, "pe", w))
            )
    if len(legs) < 2:
        raise _Bad(f"{where}: a spread needs at least two legs, got {len(legs)}")
    return legs


def _spread(elem: ET.Element, where: str) -> _RawSpread:
    priority = int(_num_child(elem, "spread", where))
    method = _child(elem, "chargeMeth", where, "W").upper()
    return _RawSpread(priority, method, _per_rate(elem, "rate", where), _legs(elem, where), where)


def _scanning(elem: ET.Element) -> tuple[int, dict[str, float], tuple[str, ...]]:
    priority = int(_num_child(elem, "spread", "sSpread"))
    where = f"sSpread {priority}"
    legs = tuple(_child(leg, "cc", f"{where}/sLeg") for leg in elem.findall("sLeg"))
    if len(legs) < 2:
        raise _Bad(f"{where}: a spread needs at least two legs, got {len(legs)}")
    return priority, _per_rate(elem, "rate", where), legs


def _cc(elem: ET.Element) -> _RawCC:
    code = _child(elem, "cc", "ccDef")
    where = f"ccDef {code}"
    links = [
        (
            _child(link, "exch", f"{where}/pfLink"),
            _child(link, "pfId", f"{where}/pfLink"),
            _num_child(link, "sc", f"{where}/pfLink", 1.0),
        )
        for link in elem.findall("pfLink")
    ]
    adj = [
        (
            _child(a, "r", f"{where}/adjRate"),
            _child(a, "baseR", f"{where}/adjRate", _child(a, "r", f"{where}/adjRate")),
            _num_child(a, "val", f"{where}/adjRate"),
        )
        for a in elem.findall("adjRate")
    ]
    som_tiers: list[tuple[Tier, dict[str, float]]] = []
    holder = elem.find("somTiers")
    if holder is not None:
        for t in holder.findall("tier"):
            n = int(_num_child(t, "tn", f"{where}/somTiers/tier"))
            start, end = t.find("sPe"), t.find("ePe")
            tier = Tier(
                n,
                None if start is None or not _text(start) else _text(start),
                None if end is None or not _text(end) else _text(end),
            )
            som_tiers.append((tier, _per_rate(t, "rate", f"{where}/somTiers/tier {n}")))
    spreads = [
        _spread(d, f"{where}/dSpread {_child(d, 'spread', where, '?')}")
        for d in elem.findall("dSpread")
    ]
    spot = [
        (
            _child(s, "r", f"{where}/spotRate", "1"),
            _child(s, "pe", f"{where}/spotRate"),
            _num_child(s, "sprd", f"{where}/spotRate", 0.0),
            _num_child(s, "outr", f"{where}/spotRate", 0.0),
        )
        for s in elem.findall("spotRate")
    ]
    return _RawCC(
        code,
        _child(elem, "currency", where),
        _child(elem, "wfprMeth", where, "NORMAL").upper(),
        _child(elem, "somMeth", where, "GROSS").upper(),
        links,
        adj,
        _tiers(elem, "intraTiers", where) or (Tier(0),),
        _tiers(elem, "interTiers", where) or (Tier(0),),
        _tiers(elem, "scanTiers", where),
        som_tiers,
        spreads,
        spot,
        where,
    )


# -- assembly -------------------------------------------------------------------------------

_WFPR = {"NORMAL": "normal", "SCANRANGE_CAP": "scanrange_cap", "SCANRANGE": "scanrange"}


def _assemble(
    src: str,
    org: str,
    when: date,
    settlement: bool,  # noqa: FBT001 (internal, positional by design)
    lookahead: float | None,
    rate_defs: list[tuple[str, bool]],
    point_defs: Mapping[str, tuple[tuple[ScanPoint, ...], tuple[DeltaPoint, ...]]],
    fx: list[tuple[str, str, float]],
    raw: list[_RawContract],
    raw_ccs: list[_RawCC],
    raw_inter: list[_RawSpread],
    raw_scanning: list[tuple[int, dict[str, float], tuple[str, ...]]],
    notes: list[str],
) -> SpanFile:
    if not raw:
        raise _Bad("no contract with a risk array (no product family read)")
    present = sorted({r for c in raw for r in c.arrays}, key=_rate_order)
    if not present:
        raise _Bad("no <ra> risk array in the file")
    maintenance = [r for r, is_m in rate_defs if is_m and r in present]
    r0 = maintenance[0] if maintenance else present[0]
    r0_is_initial = any(r == r0 and not is_m for r, is_m in rate_defs) and not maintenance
    points, delta_points = point_defs.get(r0) or next(iter(point_defs.values()), ((), ()))
    if not points:
        points = _STANDARD_POINTS
        notes.append("no pointDef: CME's standard 16-point layout assumed for the scan points")
    n_points = len(points)
    by_id = {(c.exch, c.pf_id, c.c_id): c for c in raw}
    link: dict[tuple[str, str], tuple[str, float]] = {}
    for cc in raw_ccs:
        for exch, pf_id, sc in cc.links:
            link[(exch, pf_id)] = (cc.code, sc)
    cc_by_code = {cc.code: cc for cc in raw_ccs}
    contracts: dict[str, Contract] = {}
    for c in raw:
        if r0 not in c.arrays:
            continue  # a contract without arrays for r0 cannot be margined on r0
        array, d = c.arrays[r0]
        if len(array) != n_points:
            raise _Bad(
                f"{c.where}/ra r {r0}: {len(array)} array values, the pointDef has {n_points}"
            )
        found = link.get((c.exch, c.pf_id))
        if found is None:
            raise _Bad(f"{c.where}: product family pfId {c.pf_id} is in no ccDef/pfLink")
        cc_code, link_sc = found
        und = None if c.und is None else by_id.get(c.und)
        if c.und is not None and und is None:
            raise _Bad(
                f"{c.where}/undC: no contract cId {c.und[2]} in pfId {c.und[1]} ({c.und[0]})"
            )
        scan = c.scans.get(r0) or next(iter(c.scans.values()), (None, None, None, None))
        name = contract_name(c.exch, c.product, c.kind, c.pe, c.right, c.strike)
        if name in contracts:
            raise _Bad(f"{c.where}: a second contract called {name}")
        tier_period = und.pe if (und is not None and und.kind == "FUT" and c.right) else c.pe
        contracts[name] = Contract(
            name=name,
            exchange=c.exch,
            product=c.product,
            kind=c.kind,
            period=c.pe,
            right=c.right,
            strike=c.strike,
            price=c.price,
            cvf=c.cvf,
            array=array,
            composite_delta=d,
            dsf=c.sc * link_sc,
            cc=cc_code,
            currency=cc_by_code[cc_code].currency,
            premium_style=c.right is not None and c.value_meth.upper() == "EQTY",
            tier_period=tier_period,
            underlying=None
            if und is None
            else contract_name(und.exch, und.product, und.kind, und.pe, und.right, und.strike),
            vol=c.vol,
            time=c.time,
            rate=c.rate,
            dividend_yield=c.div,
            price_scan=scan[0],
            price_scan_pct=scan[1],
            vol_scan=scan[2],
            vol_scan_pct=scan[3],
            where=c.where,
        )
    if not contracts:
        raise _Bad(f"no contract has a risk array for rate {r0}")
    ccs = {
        code: _combined(cc, r0, r0_is_initial=r0_is_initial, notes=notes)
        for code, cc in cc_by_code.items()
    }
    inter = tuple(
        s
        for raw_spread in sorted(raw_inter, key=lambda x: x.priority)
        if (s := _resolve_spread(raw_spread, r0, inter=True, notes=notes)) is not None
    )
    scanning = tuple(
        ScanningSpreadDef(priority, _pick(rates, r0), legs)
        for priority, rates, legs in sorted(raw_scanning, key=lambda x: x[0])
        if rates
    )
    return SpanFile(
        source=src,
        format="xml",
        clearing_org=org or "?",
        business_date=when,
        settlement=settlement,
        points=points,
        delta_points=delta_points,
        contracts=contracts,
        ccs=ccs,
        inter_spreads=inter,
        scanning_spreads=scanning,
        usd_rates=_usd_rates(fx),
        lookahead_years=lookahead,
        notes=tuple(notes),
    )


def _rate_order(r: str) -> tuple[int, str]:
    return (int(r), r) if r.isdigit() else (10**9, r)


def _pick(rates: Mapping[str, float], r0: str) -> float:
    return rates[r0] if r0 in rates else next(iter(rates.values()))


def _combined(cc: _RawCC, r0: str, *, r0_is_initial: bool, notes: list[str]) -> CombinedCommodity:
    factor = 1.0
    for r, base, val in cc.adj:
        if base == r0:
            factor = val
            if r != r0:
                break
    spreads = tuple(
        s
        for raw_spread in sorted(cc.spreads, key=lambda x: x.priority)
        if (s := _resolve_spread(raw_spread, r0, inter=False, notes=notes)) is not None
    )
    for _, pe, _, _ in cc.spot:
        notes.append(f"{cc.where}/spotRate {pe}: spot (delivery-month) charges are not applied")
    spot = tuple((pe, sprd, outr) for r, pe, sprd, outr in cc.spot if r == r0)
    som = tuple((tier, _pick(rates, r0)) for tier, rates in cc.som_tiers if rates)
    return CombinedCommodity(
        code=cc.code,
        currency=cc.currency,
        intra_tiers=cc.intra,
        inter_tiers=cc.inter,
        scan_tiers=cc.scan,
        som_tiers=som,
        som_method="max" if cc.som == "MAX" else "gross",
        wfpr_method=_WFPR.get(cc.wfpr, "normal"),  # type: ignore[arg-type]
        intra_spreads=spreads,
        spot_months=spot,
        maintenance_factor=factor if r0_is_initial else 1.0,
        initial_factor=1.0 if r0_is_initial else factor,
    )


def _resolve_spread(raw: _RawSpread, r0: str, *, inter: bool, notes: list[str]) -> Spread | None:
    if raw.method not in ("F", "W"):
        notes.append(f"{raw.where}: charge method {raw.method!r} is not supported, spread skipped")
        return None
    if not raw.rates:
        notes.append(f"{raw.where}: no rate, spread skipped")
        return None
    rate = _pick(raw.rates, r0)
    return Spread(raw.priority, "F" if raw.method == "F" else "W", rate, tuple(raw.legs))


def _usd_rates(fx: list[tuple[str, str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"USD": 1.0}
    for src, dst, factor in fx:
        if dst == "USD" and factor > 0:
            out[src] = factor
        elif src == "USD" and factor > 0:
            out.setdefault(dst, 1.0 / factor)
    return out
