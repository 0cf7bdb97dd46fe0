"""Small SPAN files written from the published layouts, for the reader and margin tests.

One book of two combined commodities (invented exchange ``TST``), written both as SPAN 4 XML
(CME's schema, ``marketcalls/marginism:spanrisk.xml@733c56d``) and as an expanded positional
``.pa2`` (CME's record layouts,
https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46301203), with the same
published figures:

* ``CC1`` (USD): physical ``UND``; futures ``FUT`` 202406 and 202409 (price 100, CVF 10, price
  scan range 100 USD); options on the June future ``OPT`` (premium style): a 100 call
  (price 2.5, composite delta 0.55) and a 95 put (price 1.2, delta −0.30). Intra tiers 1 =
  202406, 2 = 202409; one flat spread tier 1 (A) vs tier 2 (B) at 30 USD; SOM 5 USD per short
  option; initial = 1.1 × maintenance.
* ``CC2`` (USD): futures ``FU2`` 202406 (price 50, CVF 20, price scan range 60 USD).
* Inter spread CC1 (A, 1 delta) vs CC2 (B, 2 deltas) at 50 % of the weighted price risk.

Scan points: CME's 16 (price 0, ±1/3, ±2/3, ±1 × range, each vol ±1; ±3 ranges at 0.33).
"""

from __future__ import annotations

from collections.abc import Sequence

POINTS = [0.0, 0.0, 1 / 3, 1 / 3, -1 / 3, -1 / 3, 2 / 3, 2 / 3, -2 / 3, -2 / 3, 1, 1, -1, -1, 3, -3]
VOLS = [1, -1] * 7 + [0, 0]
WEIGHTS = [1.0] * 14 + [0.33, 0.33]

# Published arrays (loss of one long contract, USD, positive = loss)
FUT = [
    0,
    0,
    -33.33,
    -33.33,
    33.33,
    33.33,
    -66.67,
    -66.67,
    66.67,
    66.67,
    -100,
    -100,
    100,
    100,
    -99,
    99,
]
CALL = [4, -3, -16, -22, 22, 16, -36, -41, 37, 31, -58, -62, 50, 45, -160, 8]
PUT = [2, -2, 9, 6, -11, -14, 14, 11, -25, -28, 17, 14, -42, -45, 10, -95]
FU2 = [0, 0, -20, -20, 20, 20, -40, -40, 40, 40, -60, -60, 60, 60, -59.4, 59.4]
ZERO = [0.0] * 16

# name → (array, composite delta, price)
CONTRACTS = {
    "TST:UND:PHY:000000": (ZERO, 1.0, 100.0),
    "TST:FUT:FUT:202406": (FUT, 1.0, 100.0),
    "TST:FUT:FUT:202409": (FUT, 1.0, 100.0),
    "TST:OPT:OOF:202406:C:100": (CALL, 0.55, 2.5),
    "TST:OPT:OOF:202406:P:95": (PUT, -0.30, 1.2),
    "TST:FU2:FUT:202406": (FU2, 1.0, 50.0),
}


def _ra(values: Sequence[float], d: float) -> str:
    return "<ra><r>1</r>" + "".join(f"<a>{v}</a>" for v in values) + f"<d>{d}</d></ra>"


def _point(i: int) -> str:
    paired = i + 1 if i >= 14 else (i ^ 1) + 1
    return (
        f"<scanPointDef><point>{i + 1}</point>"
        f"<priceScanDef><mult>{POINTS[i]:.6f}</mult><numerator>0</numerator>"
        "<denominator>3</denominator></priceScanDef>"
        f"<volScanDef><mult>{VOLS[i]}</mult><numerator>0</numerator><denominator>1</denominator>"
        f"</volScanDef><weight>{WEIGHTS[i]}</weight><pairedPoint>{paired}</pairedPoint>"
        "</scanPointDef>"
    )


def xml_file(*, drop: str | None = None, call_array: Sequence[float] | None = None) -> str:
    """The book as SPAN 4 XML (``drop``: an element tag to leave out, for error tests)."""
    call = CALL if call_array is None else call_array
    points = "".join(_point(i) for i in range(16))
    text = f"""<?xml version="1.0"?>
<spanFile><fileFormat>4.00</fileFormat><created>202405170000</created>
<definitions><currencyDef><currency>USD</currency><symbol>$</symbol><name>US DOLLAR</name>
<decimalPos>2</decimalPos></currencyDef>
<acctTypeDef><isCust>1</isCust><acctType>S</acctType><isNetMargin>1</isNetMargin>
<priority>1</priority></acctTypeDef></definitions>
<pointInTime><date>20240517</date><isSetl>1</isSetl>
<clearingOrg><ec>TST</ec><name>TEST CLEARING</name><finalizeMeth>1</finalizeMeth>
<curConv><fromCur>EUR</fromCur><toCur>USD</toCur><factor>1.08</factor></curConv>
<pbRateDef><r>1</r><isCust>1</isCust><acctType>S</acctType><isM>1</isM><pbc>CORE</pbc></pbRateDef>
<pbRateDef><r>2</r><isCust>1</isCust><acctType>S</acctType><isM>0</isM><pbc>CORE</pbc></pbRateDef>
<pointDef><r>1</r>{points}</pointDef>
<exchange><exch>TST</exch>
<phyPf><pfId>1</pfId><pfCode>UND</pfCode><currency>USD</currency><cvf>10</cvf>
<valueMeth>EQTY</valueMeth>
<phy><cId>10</cId><pe>000000</pe><p>100</p><d>1</d>
<scanRate><r>1</r><priceScan>0</priceScan></scanRate>{_ra(ZERO, 1.0)}</phy></phyPf>
<futPf><pfId>2</pfId><pfCode>FUT</pfCode><currency>USD</currency><cvf>10</cvf>
<valueMeth>FUT</valueMeth>
<undPf><exch>TST</exch><pfId>1</pfId><s>B</s><i>1</i></undPf>
<fut><cId>20</cId><pe>202406</pe><p>100</p><sc>1</sc><t>0.1</t>
<undC><exch>TST</exch><pfId>1</pfId><cId>10</cId><s>B</s><i>1</i></undC>
<scanRate><r>1</r><priceScan>100</priceScan><volScan>0</volScan></scanRate>{_ra(FUT, 1.0)}</fut>
<fut><cId>21</cId><pe>202409</pe><p>100</p><sc>1</sc><t>0.35</t>
<undC><exch>TST</exch><pfId>1</pfId><cId>10</cId><s>B</s><i>1</i></undC>
<scanRate><r>1</r><priceScan>100</priceScan><volScan>0</volScan></scanRate>{_ra(FUT, 1.0)}</fut>
</futPf>
<futPf><pfId>4</pfId><pfCode>FU2</pfCode><currency>USD</currency><cvf>20</cvf>
<valueMeth>FUT</valueMeth>
<undPf><exch>TST</exch><pfId>1</pfId><s>B</s><i>1</i></undPf>
<fut><cId>40</cId><pe>202406</pe><p>50</p><sc>1</sc><t>0.1</t>
<undC><exch>TST</exch><pfId>1</pfId><cId>10</cId><s>B</s><i>1</i></undC>
<scanRate><r>1</r><priceScan>60</priceScan><volScan>0</volScan></scanRate>{_ra(FU2, 1.0)}</fut>
</futPf>
<oofPf><pfId>3</pfId><pfCode>OPT</pfCode><currency>USD</currency><cvf>10</cvf><cab>0.01</cab>
<valueMeth>EQTY</valueMeth><priceModel>B</priceModel>
<undPf><exch>TST</exch><pfId>2</pfId><s>B</s><i>1</i></undPf>
<series><pe>202406</pe><v>0.2</v><t>0.1</t><cvf>10</cvf><sc>1</sc>
<undC><exch>TST</exch><pfId>2</pfId><cId>20</cId><s>B</s><i>1</i></undC>
<intrRate><val>0.05</val><rl>0</rl><cpm>0</cpm><exm>0</exm></intrRate>
<scanRate><r>1</r><priceScan>100</priceScan><volScanPct>0.25</volScanPct></scanRate>
<opt><cId>30</cId><o>C</o><k>100.00</k><p>2.5</p>{_ra(call, 0.55)}</opt>
<opt><cId>31</cId><o>P</o><k>95</k><p>1.2</p>{_ra(PUT, -0.30)}</opt>
</series></oofPf>
</exchange>
<ccDef><cc>CC1</cc><currency>USD</currency><wfprMeth>NORMAL</wfprMeth><somMeth>GROSS</somMeth>
<pfLink><exch>TST</exch><pfId>1</pfId><sc>1</sc></pfLink>
<pfLink><exch>TST</exch><pfId>2</pfId><sc>1</sc></pfLink>
<pfLink><exch>TST</exch><pfId>3</pfId><sc>1</sc></pfLink>
<adjRate><r>2</r><baseR>1</baseR><val>1.1</val></adjRate>
<intraTiers><tier><tn>1</tn><sPe>202406</sPe><ePe>202406</ePe></tier>
<tier><tn>2</tn><sPe>202409</sPe><ePe>202409</ePe></tier></intraTiers>
<somTiers><tier><tn>0</tn><rate><r>1</r><val>5</val></rate></tier></somTiers>
<dSpread><spread>1</spread><chargeMeth>F</chargeMeth><rate><r>1</r><val>30</val></rate>
<tLeg><cc>CC1</cc><tn>1</tn><rs>A</rs><i>1</i></tLeg>
<tLeg><cc>CC1</cc><tn>2</tn><rs>B</rs><i>1</i></tLeg></dSpread></ccDef>
<ccDef><cc>CC2</cc><currency>USD</currency><wfprMeth>NORMAL</wfprMeth><somMeth>GROSS</somMeth>
<pfLink><exch>TST</exch><pfId>4</pfId><sc>1</sc></pfLink>
<adjRate><r>2</r><baseR>1</baseR><val>1.1</val></adjRate></ccDef>
<interSpreads><dSpread><spread>1</spread><chargeMeth>W</chargeMeth><rate><r>1</r><val>0.5</val></rate>
<tLeg><cc>CC1</cc><tn>0</tn><rs>A</rs><i>1</i></tLeg>
<tLeg><cc>CC2</cc><tn>0</tn><rs>B</rs><i>2</i></tLeg></dSpread></interSpreads>
</clearingOrg></pointInTime></spanFile>
"""
    if drop is not None:
        start = text.index(f"<{drop}>")
        end = text.index(f"</{drop}>", start) + len(f"</{drop}>")
        text = text[:start] + text[end:]
    return text


def record(rid: str, fields: dict[int, str], width: int = 132) -> str:
    """One fixed-width record: ``fields`` maps 1-based start positions to their text."""
    line = [" "] * width
    line[0:2] = list(rid.ljust(2))
    for at, text in fields.items():
        line[at - 1 : at - 1 + len(text)] = list(text)
    return "".join(line).rstrip()


def _av(v: float, width: int = 5, locator: int = 2) -> str:
    n = round(abs(v) * 10**locator)
    return f"{n:0{width}d}" + ("-" if v < 0 else "+")


def _arrays(
    name: str,
    prod: str,
    und: str,
    kind: str,
    right: str,
    fut: str,
    opt: str,
    strike: str,
    values: Sequence[float],
    delta: float,
    price: str,
) -> list[str]:
    key = {
        3: "TST",
        6: prod.ljust(10),
        16: und.ljust(10),
        26: kind,
        29: right,
        30: fut,
        39: opt,
        48: strike,
    }
    first = dict(key)
    for k in range(9):
        first[55 + 6 * k] = _av(values[k])
    second = dict(key)
    for k in range(7):
        second[55 + 6 * k] = _av(values[9 + k])
    second[97] = f"{round(abs(delta) * 1e4):05d}" + ("-" if delta < 0 else "+")
    second[103] = "00200000"
    second[111] = price + "+"
    del name
    return [record("81", first), record("82", second, 140)]


def pa2_file(*, exponent: int = 0, crcrlf: bool = False, extra: Sequence[str] = ()) -> str:
    """The same book as an expanded positional file (arrays with 2 decimals, locator 2).

    ``exponent`` sets the CC2 risk exponent (its arrays are then written 10^exponent
    smaller, so the decoded values are the same); ``crcrlf`` ends lines with CR CR LF.
    """
    lines = [
        record(
            "0 ",
            {
                3: "TST",
                9: "20240517",
                17: "S",
                18: "F",
                20: "1800",
                24: "20240517",
                32: "1830",
                36: "U2",
                59: "S",
            },
        ),
        record("T ", {3: "EUR", 7: "USD", 11: "0001080000"}),
        record("1 ", {3: "TST", 8: "TS"}),
        record(
            "2 ",
            {
                3: "TST",
                7: "CC1",
                13: "0",
                14: "USD",
                17: "$",
                18: "P",
                23: "UND".ljust(10) + "PHY2+",
                39: "FUT".ljust(10) + "FUT2+",
                55: "OPT".ljust(10) + "OOF2+",
            },
        ),
        record(
            "2 ",
            {
                3: "TST",
                7: "CC2",
                13: str(exponent),
                14: "USD",
                17: "$",
                18: "P",
                23: "FU2".ljust(10) + "FUT2+",
            },
        ),
        record(
            "3 ",
            {
                3: "CC1",
                9: "10",
                11: "01202406202406",
                25: "02202409202409",
                69: "1100",
                73: "1100",
                77: "1100",
            },
        ),
        record(
            "C ",
            {
                3: "CC1",
                9: "10",
                11: "01",
                13: "02",
                15: "0000030",
                22: "0101" + "01A",
                29: "0202" + "01B",
            },
        ),
        record("4 ", {3: "CC1", 9: "10", 11: "00", 63: "0000005", 70: "100100100", 79: " "}),
        record("3 ", {3: "CC2", 9: "10", 69: "1100", 73: "1100", 77: "1100"}),
        record("4 ", {3: "CC2", 9: "10", 11: "00", 63: "0000000", 70: "100100100"}),
        record(
            "P ",
            {
                3: "TST",
                6: "FUT".ljust(10),
                16: "FUT",
                34: "002",
                37: "000",
                42: "00000100000000",
                66: "USD",
                117: "FUT  ",
            },
        ),
        record(
            "P ",
            {
                3: "TST",
                6: "FU2".ljust(10),
                16: "FUT",
                34: "002",
                37: "000",
                42: "00000200000000",
                66: "USD",
                117: "FUT  ",
            },
        ),
        record(
            "P ",
            {
                3: "TST",
                6: "OPT".ljust(10),
                16: "OOF",
                34: "002",
                37: "000",
                42: "00000100000000",
                66: "USD",
                117: "EQTY ",
            },
        ),
        record(
            "P ",
            {
                3: "TST",
                6: "UND".ljust(10),
                16: "PHY",
                34: "002",
                37: "000",
                42: "00000100000000",
                66: "USD",
                117: "EQTY ",
            },
        ),
        # array parameters (CME Type B): futures month, and the option series with its
        # pricing inputs: vol 0.2, vol scan 25 % of it (P), price scan 100, rate 5 %, 0.1 y,
        # look-ahead 0.003968 y (one trading day), extreme 3 ranges covered at 0.33, DSF 1
        record(
            "B ",
            {
                3: "TST",
                6: "FUT".ljust(10),
                16: "FUT",
                19: "202406",
                37: "00000000",
                45: "00000000",
                53: "00100",
                58: "03000",
                63: "03300",
                68: "00500",
                73: "0100000",
                80: "003968",
                86: "010000",
                165: "A",
            },
            170,
        ),
        record(
            "B ",
            {
                3: "TST",
                6: "OPT".ljust(10),
                16: "OOF",
                19: "202406",
                28: "202406",
                37: "00200000",
                45: "00250000",
                53: "00100",
                58: "03000",
                63: "03300",
                68: "00500",
                73: "0100000",
                80: "003968",
                86: "010000",
                164: "PA",
            },
            170,
        ),
        record(
            "6 ",
            {
                3: "GRP",
                6: "0001",
                10: "0500000",
                17: "TST CC1   " + "0010000A",
                35: "TST CC2   " + "0020000B",
                89: "01",
                101: "W",
            },
        ),
        record("5 ", {3: "GRP", 13: "CC1   CC2   "}),
    ]
    scale = 10.0**-exponent
    lines += _arrays("", "UND", "", "PHY", " ", "000000", "", "", ZERO, 1.0, "0010000")
    lines += _arrays("", "FUT", "UND", "FUT", " ", "202406", "", "", FUT, 1.0, "0010000")
    lines += _arrays("", "FUT", "UND", "FUT", " ", "202409", "", "", FUT, 1.0, "0010000")
    lines += _arrays(
        "", "OPT", "FUT", "OOF", "C", "202406", "202406", "0000100", CALL, 0.55, "0000250"
    )
    lines += _arrays(
        "", "OPT", "FUT", "OOF", "P", "202406", "202406", "0000095", PUT, -0.30, "0000120"
    )
    lines += _arrays(
        "", "FU2", "UND", "FUT", " ", "202406", "", "", [v * scale for v in FU2], 1.0, "0005000"
    )
    lines += list(extra)
    end = "\r\r\n" if crcrlf else "\n"
    return end.join(lines) + end


BOOK = {
    "TST:FUT:FUT:202406": 2,
    "TST:FUT:FUT:202409": -1,
    "TST:OPT:OOF:202406:C:100": -3,
    "TST:OPT:OOF:202406:P:95": 1,
    "TST:FU2:FUT:202406": 2,
}
