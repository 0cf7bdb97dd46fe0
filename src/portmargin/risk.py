r"""Risk arrays: the P&L of one contract of every instrument under every scenario.

For the instruments of one underlying, :func:`risk_array` revalues everything in one
vectorised call. With ``F_i`` the instrument's forward (its expiry's forward for options and
futures, the perpetual mark for perpetuals, the index for spot), ``M`` the multiplier and
scenario ``j = (m_j, σ'_ij, T'_i = max(T_i − look-ahead, 0))``::

    option   V_ij = M·B76(F'_ij, K_i, T'_i, σ'_ij, e^{−rT'_i})
             PnL^USD_ij  = V_ij − V_i0                      V_i0 = M·B76(F_i, K_i, T_i, σ_i)
             PnL^coin_ij = V_ij/(F_i(1+m_j)) − V_i0/F_i     (inverse: coin valued at the
                                                             shocked price, deribit.md §1.4)
    delta-1  PnL^USD_ij  = M·F_i·m_j
             PnL^coin_ij = M·(1 − 1/(1+m_j))                (inverse future/perpetual)

**The forward after the look-ahead** ``τ``::

    F'_ij = F_i·(1+m_j)                         options on futures / explicit forwards
    F'_ij = F_i·(1+m_j)·e^{−r·min(τ, T_i)}      options on a spot-quoted underlying with carry
          = S(1+m_j)·e^{r(T_i − τ)}

An option whose expiry has a futures mark or an explicit forward (and every option of an
underlying whose forwards are interpolated from such marks) is an option on that forward: the
shocked forward is held as time passes, as SPAN revalues options on futures. An option whose
forward is only ``S·e^{rT}`` from the underlying's rate is an option on the spot: the shocked
spot is *rolled* to the new time, ``S(1+m)·e^{r(T−τ)}``, which is Black–Scholes at ``T − τ`` on
the shifted spot; CME SPAN's risk arrays revalue "from the current point in time to a specific
point in time in the near future" (CME, "Components of SPAN",
http://www.cme.com/clearing/rmspan/span/components.html), and a clearing house's published
arrays for equity options at r = 10 % are reproduced this way (``docs/methodology/span.md``).
The row's roll rate is :attr:`InstrumentTable.roll_carry` (``r`` for rolled rows, else 0).

Moves are per row: ``m_ij = m_j·scale_i`` with the scenario set's price-range tiers
(:meth:`ScenarioSet.row_moves <portmargin.scenarios.ScenarioSet.row_moves>`; scale 1 without).

**Settled instruments** (an option or dated future at or past expiry,
:meth:`MarketSnapshot.is_expired <portmargin.market.MarketSnapshot.is_expired>`) no longer
move: their rows have ``T = 0``, ``σ = 0``, ``F = P`` the expiry's settlement price, zero
delta and zero P&L in every scenario; a settled option is worth its intrinsic value
``M·max(±(P − K), 0)`` USD (``/P`` in coin for inverse products).

``pnl_settle`` is in each instrument's settlement currency (coin for inverse, quote currency
for linear) and ``pnl_usd`` in USD. With the scenario set's ``pnl_base = "model"`` (the
default, SPAN's convention) P&L is relative to the *model* value at the mark vol, so the
unshocked scenario is exactly 0 and the mark price enters equity, not the risk array. With
``pnl_base = "mark"`` an option's P&L is relative to its mark, ``V_ij − M·mark_i`` (USD:
``mark_settle·F`` for inverse rows; coin: ``V_ij/(F_i(1+m_j)) − mark_settle_i``), as venues
that report ``V(scenario) − mark`` do.
A portfolio's scenario P&L is ``q @ pnl`` (or a sparse product for many accounts): nothing
downstream loops over positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np
import numpy.typing as npt

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.errors import InstrumentError, MarketDataError
from portmargin.instruments import Future, Instrument, InstrumentKind, Option
from portmargin.market.limits import MULTIPLIER_MAX, PRICE_MAX, SETTLEMENT_WINDOW
from portmargin.market.snapshot import MarketSnapshot, QuoteSource
from portmargin.pricing import black76_delta, black76_price
from portmargin.pricing._compiled import kernel, risk_pnl
from portmargin.scenarios import ScenarioSet

__all__ = [
    "KIND_CODES",
    "InstrumentTable",
    "RiskArray",
    "instrument_table",
    "risk_array",
    "rolls_on_spot",
    "scenario_values",
]

_DAYS_PER_YEAR = 365.0
KIND_CODES: dict[InstrumentKind, int] = {k: i for i, k in enumerate(InstrumentKind)}


def _freeze(value: object) -> None:
    """Make every NumPy array field of a frozen dataclass read-only (in place)."""
    for f in fields(value):  # type: ignore[arg-type]
        arr = getattr(value, f.name)
        if isinstance(arr, np.ndarray):
            arr.flags.writeable = False


@dataclass(frozen=True, slots=True)
class InstrumentTable:
    """Column arrays describing instruments of one underlying at one market state.

    Attributes
    ----------
    instruments
        The resolved instruments, in row order.
    underlying
        Their common underlying.
    is_option, is_call, inverse
        Flags per row.
    F
        Forward / reference price in USD (see :mod:`portmargin.risk`).
    K, T, sigma, df
        Strike, ACT/365 years to expiry, mark vol, discount factor (options; else 0/1).
    multiplier
        Units of underlying per contract.
    value_usd
        Model value per contract in USD (0 for futures and perpetuals).
    mark_settle
        Mark value per contract in the settlement currency (from the market's mark price).
    delta_coin
        Forward delta per contract in units of underlying (for delta-based add-ons).
    kind
        ``KIND_CODES[instrument.kind]`` per row.
    expiry_group
        0 for undated rows (perpetual, spot), else 1 + the rank of the row's expiry among
        the table's distinct expiries.
    expiry_years
        ``T`` of each expiry group, shape ``(n_expiries + 1,)`` (0 for undated).
    settled
        True for rows at or past expiry (valued at settlement, no risk; module docstring).
    quote_source
        :class:`~portmargin.market.QuoteSource` value of each row (``"quoted"``,
        ``"interpolated"``, ``"settled"``, ``"index"``, ``"perpetual"``).
    roll_carry
        Annual rate at which a row's shocked forward is rolled over the look-ahead: the
        underlying's rate for options on a spot-quoted underlying (forward ``S·e^{rT}`` only),
        0 for options on futures or explicit forwards and every other row (module docstring).
        ``None`` when constructed means zeros.

    Every array is read-only.
    """

    instruments: tuple[Instrument, ...]
    underlying: str
    is_option: BoolArray
    is_call: BoolArray
    inverse: BoolArray
    F: FloatArray
    K: FloatArray
    T: FloatArray
    sigma: FloatArray
    df: FloatArray
    multiplier: FloatArray
    value_usd: FloatArray
    mark_settle: FloatArray
    delta_coin: FloatArray
    kind: IntArray
    expiry_group: IntArray
    expiry_years: FloatArray
    settled: BoolArray
    quote_source: npt.NDArray[np.str_]
    roll_carry: FloatArray | None = None

    def __post_init__(self) -> None:
        if self.roll_carry is None:
            object.__setattr__(self, "roll_carry", np.zeros(len(self.instruments)))
        _freeze(self)

    @property
    def carry(self) -> FloatArray:
        """:attr:`roll_carry` as an array (zeros where none was given)."""
        out: FloatArray = np.asarray(self.roll_carry, dtype=np.float64)
        return out

    @property
    def names(self) -> tuple[str, ...]:
        """Instrument names in row order."""
        return tuple(x.name for x in self.instruments)

    @property
    def settlement_currencies(self) -> tuple[str, ...]:
        """Settlement currency of each row."""
        return tuple(x.settlement_currency for x in self.instruments)


@dataclass(frozen=True, slots=True)
class _Static:
    """What an instrument table needs of its instruments alone (no market), computed once.

    Instruments are immutable values, so these columns are cached by the tuple of names
    (:func:`_static`); a market state only adds its per-expiry and per-name look-ups.
    """

    instruments: tuple[Instrument, ...]
    underlying: str
    is_option: BoolArray
    is_call: BoolArray
    inverse: BoolArray
    multiplier: FloatArray
    K: FloatArray
    kind: IntArray
    dates: tuple[datetime, ...]  # distinct expiries, sorted
    group: IntArray  # 0 undated, else 1 + rank of the row's expiry in ``dates``
    opt: IntArray  # option rows
    option_names: tuple[str, ...]
    perp: IntArray
    spot: IntArray
    fut: IntArray  # dated-future rows

    @classmethod
    def of(cls, insts: tuple[Instrument, ...]) -> _Static:
        """The static columns of ``insts`` (one underlying; strikes within the limits)."""
        unds = {x.underlying for x in insts}
        if len(unds) != 1:
            raise MarketDataError(f"instrument table needs one underlying, got {sorted(unds)}")
        for x in insts:
            if x.multiplier > MULTIPLIER_MAX or (isinstance(x, Option) and x.strike > PRICE_MAX):
                raise InstrumentError(
                    f"instrument {x.name!r}: strike or multiplier beyond the market limits "
                    f"({PRICE_MAX:g} USD, {MULTIPLIER_MAX:g})"
                )
        kinds = [x.kind for x in insts]
        is_option = np.array([k is InstrumentKind.OPTION for k in kinds], dtype=np.bool_)
        opt = np.flatnonzero(is_option).astype(np.int64)
        K = np.zeros(len(insts))
        K[opt] = [x.strike for x in insts if isinstance(x, Option)]
        dates = tuple(sorted({x.expiry for x in insts if x.expiry is not None}))
        ranks = {e: 1 + r for r, e in enumerate(dates)}
        out = cls(
            instruments=insts,
            underlying=unds.pop(),
            is_option=is_option,
            is_call=np.array([x.is_call for x in insts], dtype=np.bool_),
            inverse=np.array([x.is_inverse for x in insts], dtype=np.bool_),
            multiplier=np.array([x.multiplier for x in insts], dtype=np.float64),
            K=K,
            kind=np.array([KIND_CODES[k] for k in kinds], dtype=np.int64),
            dates=dates,
            group=np.array(
                [0 if x.expiry is None else ranks[x.expiry] for x in insts], dtype=np.int64
            ),
            opt=opt,
            option_names=tuple(insts[i].name for i in opt.tolist()),
            perp=np.array(
                [i for i, k in enumerate(kinds) if k is InstrumentKind.PERPETUAL], dtype=np.int64
            ),
            spot=np.array(
                [i for i, k in enumerate(kinds) if k is InstrumentKind.SPOT], dtype=np.int64
            ),
            fut=np.array([i for i, x in enumerate(insts) if isinstance(x, Future)], dtype=np.int64),
        )
        _freeze(out)
        return out


_STATIC: dict[tuple[str, ...], _Static] = {}
_STATIC_MAX = 64


def _same(a: Instrument, b: Instrument) -> bool:
    return a is b or a == b


def _static(insts: tuple[Instrument, ...]) -> _Static:
    """The cached :class:`_Static` of ``insts`` (the same instruments, by identity or value)."""
    key = tuple(x.name for x in insts)
    hit = _STATIC.get(key)
    same = hit is not None and len(hit.instruments) == len(insts)
    if hit is not None and same and all(map(_same, hit.instruments, insts)):
        return hit
    out = _Static.of(insts)
    if len(_STATIC) >= _STATIC_MAX:
        _STATIC.pop(next(iter(_STATIC)))
    _STATIC[key] = out
    return out


def instrument_table(instruments: Sequence[Instrument], market: MarketSnapshot) -> InstrumentTable:
    """Gather the pricing inputs of instruments on one underlying into column arrays.

    Settled rows (at or past expiry) take ``T = 0``, ``σ = 0``, ``F`` = the expiry's
    settlement price, zero delta; a settled option's value is its intrinsic value there.
    The market is asked once per distinct expiry (year fraction, forward, expired or not)
    and once per name (quotes); what depends on the instruments alone is cached.

    Raises
    ------
    MarketDataError
        If the instruments span several underlyings, market data is missing, or an expired
        instrument's expiry has no settlement price (one line naming the instrument).
    InstrumentError
        If a strike or multiplier is beyond :mod:`portmargin.market.limits` (1e9, 1e6).
    """
    insts = tuple(instruments)
    st = _static(insts)
    und = st.underlying
    n = len(insts)
    spot_price = market.index_price(und)  # raises for an unknown underlying
    vt = market.valuation_time
    dates = st.dates
    expired_d = np.array([e <= vt for e in dates], dtype=np.bool_)
    T_d = np.array([market.year_fraction(e) for e in dates], dtype=np.float64)
    dated = st.group > 0
    gi = np.maximum(st.group - 1, 0)
    settled = dated & expired_d[gi] if dates else np.zeros(n, dtype=np.bool_)
    live = dated & ~settled
    T = np.zeros(n)
    F = np.full(n, spot_price)
    roll = np.zeros(n)
    if live.any():
        live_d = np.flatnonzero(~expired_d)
        F_d = np.zeros(len(dates))
        F_d[live_d] = market.forwards_for(und, T_d[live_d], [dates[k] for k in live_d.tolist()])
        T[live] = T_d[gi[live]]
        F[live] = F_d[gi[live]]
        if rolls_on_spot(market, und):
            rate = market.rate(und)
            roll_d = np.array([0.0 if (und, e) in market.forwards else rate for e in dates])
            rolled = live & st.is_option
            roll[rolled] = roll_d[gi[rolled]]
    settled_rows = np.flatnonzero(settled).tolist()
    for i in settled_rows:
        x = insts[i]
        assert x.expiry is not None
        F[i] = market.settlement_price(und, x.expiry, instrument=x.name)
    if st.perp.size:
        F[st.perp] = market.perpetual_price(und)
    fut = [i for i in st.fut.tolist() if not settled[i]]
    if fut:
        F[fut] = [market.mark_price(insts[i]) for i in fut]
    sigma = np.zeros(n)
    opt = st.opt
    is_option, mult = st.is_option, st.multiplier
    mark_settle = np.zeros(n)
    if opt.size:
        iv_get, price_get = market.option_iv.get, market.option_price.get
        vols = np.array([iv_get(nm, np.nan) for nm in st.option_names], dtype=np.float64)
        no_iv = np.isnan(vols)
        vols[no_iv & settled[opt]] = 0.0
        surf = np.flatnonzero(no_iv & ~settled[opt])
        if surf.size:  # unquoted live options: the market's surface, in one call
            vols[surf] = market.option_vols([insts[i] for i in opt[surf].tolist()])
        sigma[opt] = vols
    df = np.where(is_option, market.discount_factor(und, T), 1.0)
    K_safe = np.where(is_option, st.K, 1.0)
    value = np.where(is_option, mult * black76_price(F, K_safe, T, sigma, st.is_call, df=df), 0.0)
    opt_delta = black76_delta(F, K_safe, T, sigma, st.is_call, df=df)
    delta = np.where(settled, 0.0, mult * np.where(is_option, opt_delta, 1.0))
    if opt.size:  # quoted marks as they are; unquoted live options priced in one call
        marks = np.array([price_get(nm, np.nan) for nm in st.option_names], dtype=np.float64)
        miss = [int(j) for j in np.flatnonzero(np.isnan(marks))]
        unquoted = [j for j in miss if not settled[opt[j]]]
        if unquoted:
            priced = [x for j in unquoted if isinstance(x := insts[opt[j]], Option)]
            marks[unquoted] = market.option_model_prices(priced)
        for j in miss:
            if settled[opt[j]]:
                marks[j] = market.mark_price(insts[opt[j]])
        mark_settle[opt] = mult[opt] * marks
    if st.spot.size:
        mark_settle[st.spot] = mult[st.spot] * F[st.spot]
    expiry_years = np.zeros(len(dates) + 1)
    expiry_years[st.group] = T
    return InstrumentTable(
        instruments=insts,
        underlying=und,
        is_option=is_option,
        is_call=st.is_call,
        inverse=st.inverse,
        F=F,
        K=st.K,
        T=T,
        sigma=sigma,
        df=df,
        multiplier=mult,
        value_usd=value,
        mark_settle=mark_settle,
        delta_coin=delta,
        kind=st.kind,
        expiry_group=st.group,
        expiry_years=expiry_years,
        settled=settled,
        quote_source=_quote_sources(st, market, settled),
        roll_carry=roll,
    )


def _quote_sources(st: _Static, market: MarketSnapshot, settled: BoolArray) -> npt.NDArray[np.str_]:
    """:meth:`MarketSnapshot.quote_source` of every row, by kind (its rules, vectorised)."""
    out = np.full(len(st.instruments), QuoteSource.INTERPOLATED.value, dtype="<U12")
    quoted_iv = market.option_iv
    opt_quoted = np.array([nm in quoted_iv for nm in st.option_names], dtype=np.bool_)
    out[st.opt[opt_quoted]] = QuoteSource.QUOTED.value
    und, fwd = st.underlying, market.forwards
    fq = [
        i
        for i in st.fut.tolist()
        if st.instruments[i].name in market.futures or (und, st.instruments[i].expiry) in fwd
    ]
    out[fq] = QuoteSource.QUOTED.value
    out[settled] = QuoteSource.SETTLED.value
    perp_mark = market.underlyings[und].perpetual is not None
    out[st.perp] = (QuoteSource.PERPETUAL if perp_mark else QuoteSource.INDEX).value
    out[st.spot] = QuoteSource.INDEX.value
    result: npt.NDArray[np.str_] = out.astype(np.str_)
    return result


def rolls_on_spot(market: MarketSnapshot, underlying: str) -> bool:
    """True when ``underlying``'s forwards come from its spot and rate alone.

    That is, when the market has no explicit forward (futures mark or given forward) for it
    beyond the settlement window, so every forward without its own quote is ``S·e^{rT}``
    (:class:`~portmargin.market.MarketSnapshot`). Options on such an underlying roll their
    shocked forward over the look-ahead (module docstring).
    """
    window = SETTLEMENT_WINDOW.total_seconds() / (_DAYS_PER_YEAR * 86_400.0)
    return not any(u == underlying and market.year_fraction(e) > window for u, e in market.forwards)


@dataclass(frozen=True, slots=True)
class RiskArray:
    """Per-contract scenario P&L of the instruments of one underlying.

    Attributes
    ----------
    table
        The instruments and their pricing inputs.
    scenarios
        The scenario set the array was computed under.
    pnl_settle
        Shape ``(n_instruments, n_scenarios)``: P&L per contract in each instrument's
        settlement currency (coin for inverse, quote currency for linear), unweighted.
    pnl_usd
        The same in USD, unweighted.

    Both arrays are read-only; settled rows are all zeros.
    """

    table: InstrumentTable
    scenarios: ScenarioSet
    pnl_settle: FloatArray
    pnl_usd: FloatArray

    def __post_init__(self) -> None:
        _freeze(self)

    def weighted_settle(self) -> FloatArray:
        """``pnl_settle`` times the scenario weights (coin weights for inverse rows)."""
        w = np.where(
            self.table.inverse[:, None], self.scenarios.coin_weights, self.scenarios.weights
        )
        out: FloatArray = self.pnl_settle * w
        return out

    def weighted_usd(self) -> FloatArray:
        """``pnl_usd`` times the USD weights."""
        out: FloatArray = self.pnl_usd * self.scenarios.weights
        return out


def scenario_values(
    F: FloatArray,
    K: FloatArray,
    T: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    df: FloatArray,
    moves: FloatArray,
    *,
    lookahead_years: float,
    roll_carry: FloatArray,
) -> FloatArray:
    r"""Black-76 value per unit of underlying after the look-ahead, in every scenario.

    The one revaluation kernel of the risk arrays (module docstring), shape ``(n, s)``::

        T'   = max(T − τ, 0)
        F'_j = F·(1 + m_j)·e^{−c·min(τ, T)}          c = roll_carry (0: option on a forward)
        V_j  = B76(F'_j, K, T', σ_j, df^{T'/T})      df^{T'/T} = e^{−rT'} when df = e^{−rT}

    Parameters
    ----------
    F, K, T, is_call, df, roll_carry
        Per row, shape ``(n,)``: forward, strike, years to expiry, call flag, discount factor
        to expiry, roll rate (per year).
    sigma
        Shocked vols, ``(n, s)``.
    moves
        Relative price moves per row and scenario, ``(n, s)``.
    lookahead_years
        ``τ``, years.
    """
    T_after = np.maximum(T - lookahead_years, 0.0)
    df_after = df ** np.divide(T_after, T, out=np.ones_like(T_after), where=T > 0)
    roll = np.exp(-roll_carry * np.minimum(lookahead_years, np.maximum(T, 0.0)))
    fwd = F[:, None] * (1.0 + moves) * roll[:, None]
    out: FloatArray = black76_price(
        fwd, K[:, None], T_after[:, None], sigma, is_call[:, None], df=df_after[:, None]
    )
    return out


def risk_array(table: InstrumentTable, scenarios: ScenarioSet) -> RiskArray:
    """Revalue every instrument of ``table`` under every scenario (one vectorised call).

    The revaluation runs in the compiled kernel
    (:func:`portmargin.pricing._compiled.risk_pnl`, rows in parallel) unless the NumPy
    reference is selected (:func:`portmargin.pricing.use_kernel`, ``PORTMARGIN_KERNEL``);
    both compute the formulas of the module docstring, equal to 1e-12.
    """
    if scenarios.pnl_base == "mark":  # V(scenario) − mark, USD
        base = np.where(table.inverse, table.mark_settle * table.F, table.mark_settle)
    else:  # V(scenario) − V(model at the mark vol)
        base = table.value_usd
    if kernel() == "numba":
        settle, usd = risk_pnl(table, scenarios, base)
        return RiskArray(table, scenarios, settle, usd)
    return _risk_array_numpy(table, scenarios, base[:, None])


def _risk_array_numpy(table: InstrumentTable, scenarios: ScenarioSet, v0: FloatArray) -> RiskArray:
    """The reference path of :func:`risk_array`: NumPy over ``(n, s)`` arrays."""
    m = scenarios.row_moves(table.T * _DAYS_PER_YEAR, table.expiry_group > 0)
    # Options: full Black-76 revaluation with per-instrument vol shocks and look-ahead.
    sig = scenarios.vol_shock.shocked(
        table.sigma, table.T * _DAYS_PER_YEAR, scenarios.vol_directions
    )
    shifted = table.F[:, None] * (1.0 + m)
    opt = table.is_option
    v_shock = table.multiplier[:, None] * scenario_values(
        table.F,
        np.where(opt, table.K, 1.0),
        np.where(opt, table.T, 0.0),
        sig,
        table.is_call,
        np.where(opt, table.df, 1.0),
        m,
        lookahead_years=scenarios.lookahead_years,
        roll_carry=np.where(opt, table.carry, 0.0),
    )
    delta_one_usd = table.multiplier[:, None] * table.F[:, None] * m
    pnl_usd = np.where(opt[:, None], v_shock - v0, delta_one_usd)
    coin_opt = v_shock / shifted - v0 / table.F[:, None]
    coin_d1 = table.multiplier[:, None] * (1.0 - 1.0 / (1.0 + m))
    pnl_coin = np.where(opt[:, None], coin_opt, coin_d1)
    pnl_settle = np.where(table.inverse[:, None], pnl_coin, pnl_usd)
    if table.settled.any():
        # Settled rows no longer move (their value is fixed at the settlement price).
        pnl_settle[table.settled] = 0.0
        pnl_usd[table.settled] = 0.0
    return RiskArray(table, scenarios, pnl_settle, pnl_usd)
