"""Vectorised candidate enumeration: every useful group of a book as column arrays.

The groups and their requirements are those of :func:`portmargin.rules._strategies.
price_group` (the specification, one group at a time); here each family is generated and
priced for all its tuples at once with NumPy, so that books of thousands of legs are
enumerated in well under a second. Tuples are generated only where a template can match:

* spreads: short × long of one type and multiplier, the long expiring no earlier;
* straddles/strangles: short call × short put;
* butterflies (1-2-1) and condors: one expiry, type and multiplier, strikes increasing,
  the sign pattern fixed (equal spacing only if ``equal_wings``);
* iron butterflies/condors and boxes: put pair × call pair of one expiry;
* covers: underlying leg × option, and × (put, call) of one expiry.

A group is kept only when strictly cheaper than its legs alone (initial or maintenance):
a candidate whose requirement is at least its legs' stand-alone one can never help.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from portmargin.rules._book import Book, BoolArray, FloatArray, IntArray, LegKind, UnderlyingLeg
from portmargin.rules._strategies import KINDS, Candidate

__all__ = ["CandidateTable", "candidate_table", "enumerate_candidates", "straddles_as_columns"]

_CODE = {k: np.int8(i) for i, k in enumerate(KINDS)}
_INF = np.inf
_CHUNK = 2_000_000  # tuples priced at once (memory bound)
_STRADDLE_COLUMNS = 2_500  # short call × short put pairs up to which straddles are columns
_SPREADS = [_CODE["vertical_spread"], _CODE["calendar_spread"], _CODE["diagonal_spread"]]
_FOUR = [_CODE[k] for k in KINDS[5:15]]  # two short and two long contracts

Int2D = np.ndarray[tuple[int, int], np.dtype[np.int64]]
Float2D = np.ndarray[tuple[int, int], np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class CandidateTable:
    """Multi-leg candidates of one book as columns (row ``t`` is one group).

    Attributes
    ----------
    kind
        Code of the strategy name in :data:`portmargin.rules._strategies.KINDS`.
    members
        ``(T, 4)`` leg indices, sorted, ``-1`` padded.
    ratio
        ``(T, 4)`` contracts of each member per instance, ``0`` padded.
    gross_im, gross_mm, proceeds
        Per instance, pool currency.
    """

    kind: np.ndarray[tuple[int], np.dtype[np.int8]]
    members: Int2D
    ratio: Float2D
    gross_im: FloatArray
    gross_mm: FloatArray
    proceeds: FloatArray

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def candidate(self, t: int) -> Candidate:
        """Row ``t`` as a :class:`Candidate`."""
        members = tuple(
            (int(i), float(a))
            for i, a in zip(self.members[t], self.ratio[t], strict=True)
            if i >= 0
        )
        return Candidate(
            KINDS[int(self.kind[t])],
            members,
            float(self.gross_im[t]),
            float(self.gross_mm[t]),
            float(self.proceeds[t]),
        )

    def candidates(self) -> list[Candidate]:
        """Every row as a :class:`Candidate`."""
        return [self.candidate(t) for t in range(len(self))]

    @staticmethod
    def empty() -> CandidateTable:
        """No candidates."""
        return CandidateTable(
            np.zeros(0, dtype=np.int8),
            np.zeros((0, 4), dtype=np.int64),
            np.zeros((0, 4), dtype=np.float64),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
        )


@dataclass(frozen=True, slots=True)
class _Part:
    """Priced tuples of one family before canonical ordering and filtering."""

    kind: np.ndarray[tuple[int], np.dtype[np.int8]]
    members: Int2D
    ratio: Float2D
    gross_im: FloatArray
    gross_mm: FloatArray


class _Pricer:
    """Vectorised pricing over index arrays of one book (the formulas of ``_strategies``)."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.a = book.arrays
        self.fam = book.rules.strategies.families
        self.monotone = book.rules.strategies.monotone
        self.coin_mpl = book.inverse and book.rules.mpl_currency == "settlement"
        a = self.a
        self.sn_im = a.single_im - a.proceeds  # net stand-alone requirement
        self.sn_mm = a.single_mm - a.proceeds
        self._local: dict[tuple[float, float], tuple[IntArray, list[Float2D]]] = {}
        keys: dict[tuple[float, float], int] = {}
        gid = np.full(len(a.qty), -1, dtype=np.int64)
        for i in np.flatnonzero(a.is_option).tolist():
            gid[i] = keys.setdefault((float(a.expiry[i]), float(a.units[i])), len(keys))
        self._gid = gid

    # -- maximum potential loss -----------------------------------------------------------

    def mpl(self, idx: Int2D, n: Float2D) -> FloatArray:
        """MPL per unit (pool currency, ``inf`` if unbounded) of option tuples ``idx``.

        ``n`` are the signed contracts of each member (``0`` for padding). Same breakpoints
        as :func:`portmargin.rules._strategies.max_potential_loss`.
        """
        a = self.a
        k = a.strike[idx]
        call = a.is_call[idx]
        live = n != 0.0
        k_eval = np.where(live, k, np.nan)

        def payoff(price: FloatArray) -> FloatArray:
            p = price[:, None]
            intrinsic = np.where(call, np.maximum(p - k, 0.0), np.maximum(k - p, 0.0))
            return np.asarray(np.where(live, n * intrinsic, 0.0).sum(axis=1))

        net_calls = np.where(call & live, n, 0.0).sum(axis=1)
        cols = idx.shape[1]
        if self.coin_mpl:
            kmax = np.nanmax(k_eval, axis=1)
            eps = 1e-9 * kmax
            vals = [
                np.where(live[:, j], payoff(np.where(live[:, j], k[:, j], 1.0)) / k[:, j], _INF)
                for j in range(cols)
            ]
            vals.append(net_calls)
            put_n = np.where(~call & live, n, 0.0)
            a_put = (put_n * np.where(live, k, 0.0)).sum(axis=1)
            tail0 = np.where(a_put <= eps, -put_n.sum(axis=1), _INF)
            vals.append(tail0)
            worst = np.min(np.stack(vals, axis=1), axis=1)
            out = np.maximum(0.0, -worst)
            return np.asarray(np.where(a_put < -eps, _INF, out))
        vals = [payoff(np.zeros(idx.shape[0]))]
        vals += [
            np.where(live[:, j], payoff(np.where(live[:, j], k[:, j], 0.0)), _INF)
            for j in range(cols)
        ]
        worst = np.min(np.stack(vals, axis=1), axis=1)
        out = np.maximum(0.0, -worst)
        if self.book.inverse:
            out = out / self.book.index
        return np.asarray(np.where(net_calls < -1e-12, _INF, out))

    # -- closed spread (used by the closure of larger groups) -------------------------------

    def spread(self, s: IntArray, lg: IntArray) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Gross (IM, MM) textbook spread of short ``s`` / long ``lg`` and eligibility."""
        a = self.a
        ok = (
            ("spread" in self.fam)
            & a.is_option[s]
            & a.is_option[lg]
            & a.is_short[s]
            & ~a.is_short[lg]
            & (a.is_call[s] == a.is_call[lg])
            & (a.units[s] == a.units[lg])
            & (a.expiry[lg] >= a.expiry[s])
        )
        idx = np.stack([s, lg], axis=1)
        n = np.stack([-np.ones(len(s)), np.ones(len(s))], axis=1)
        mpl = self.mpl(idx, n) * a.units[s]
        im = np.minimum(a.naked_im[s], mpl) + a.value[lg]
        mm = np.minimum(a.naked_mm[s], mpl) + a.value[lg]
        return np.asarray(im), np.asarray(mm), np.asarray(ok)

    def spread_net(self, s: IntArray, lg: IntArray) -> tuple[FloatArray, FloatArray]:
        """Net closed requirement of the spread (``inf`` where not a spread)."""
        a = self.a
        im, mm, ok = self.spread(s, lg)
        im = np.minimum(im, a.single_im[s] + a.single_im[lg]) - a.proceeds[s]
        mm = np.minimum(mm, a.single_mm[s] + a.single_mm[lg]) - a.proceeds[s]
        if self.monotone:
            im = np.maximum(im, self.sn_im[lg])
            mm = np.maximum(mm, self.sn_mm[lg])
        return np.where(ok, im, _INF), np.where(ok, mm, _INF)

    # -- families -------------------------------------------------------------------------

    def spreads(self) -> Iterator[_Part]:
        a = self.a
        opt = np.flatnonzero(a.is_option)
        for call in (True, False):
            sel = opt[a.is_call[opt] == call]
            shorts, longs = sel[a.is_short[sel]], sel[~a.is_short[sel]]
            if not len(shorts) or not len(longs):
                continue
            s, lg = (x.reshape(-1) for x in np.meshgrid(shorts, longs, indexing="ij"))
            keep = (a.units[s] == a.units[lg]) & (a.expiry[lg] >= a.expiry[s])
            s, lg = s[keep], lg[keep]
            im, mm, _ = self.spread(s, lg)
            same_exp = a.expiry[s] == a.expiry[lg]
            same_k = a.strike[s] == a.strike[lg]
            kind = np.where(
                same_exp,
                _CODE["vertical_spread"],
                np.where(same_k, _CODE["calendar_spread"], _CODE["diagonal_spread"]),
            ).astype(np.int8)
            yield self._part(kind, [s, lg], [1.0, 1.0], im, mm)

    def straddles(self) -> Iterator[_Part]:
        a = self.a
        opt = np.flatnonzero(a.is_option & a.is_short)
        calls, puts = opt[a.is_call[opt]], opt[~a.is_call[opt]]
        if not len(calls) or not len(puts):
            return
        c, p = (x.reshape(-1) for x in np.meshgrid(calls, puts, indexing="ij"))
        keep = a.units[c] == a.units[p]
        c, p = c[keep], p[keep]
        im = np.maximum(a.naked_im[c] + a.value[p], a.naked_im[p] + a.value[c])
        mm = np.maximum(a.naked_mm[c] + a.value[p], a.naked_mm[p] + a.value[c])
        same = (a.strike[c] == a.strike[p]) & (a.expiry[c] == a.expiry[p])
        kind = np.where(same, _CODE["short_straddle"], _CODE["short_strangle"]).astype(np.int8)
        yield self._part(kind, [c, p], [1.0, 1.0], im, mm)

    def _buckets(self) -> list[IntArray]:
        """Option legs by (expiry, type, multiplier), each sorted by strike."""
        a = self.a
        opt = np.flatnonzero(a.is_option)
        keys: dict[tuple[float, bool, float], list[int]] = {}
        for i in opt.tolist():
            keys.setdefault((a.expiry[i], bool(a.is_call[i]), a.units[i]), []).append(i)
        out = []
        for key in sorted(keys):
            b = np.array(keys[key], dtype=np.int64)
            out.append(b[np.argsort(a.strike[b], kind="stable")])
        return out

    def _group_textbook(
        self, kind: np.ndarray[tuple[int], np.dtype[np.int8]], cols: list[IntArray],
        ratio: list[float],
    ) -> _Part:  # fmt: skip
        """Price 3–4-leg option groups: ``MPL·m + Σ long premiums`` (IM = MM)."""
        a = self.a
        idx = np.stack(cols, axis=1)
        r = np.array(ratio)[None, :] * np.ones((idx.shape[0], 1))
        n = a.sign[idx] * r
        mpl = self.mpl(idx, n) * a.units[idx[:, 0]]
        longs = np.where(a.is_short[idx], 0.0, r * a.value[idx]).sum(axis=1)
        gross = mpl + longs
        return self._part(kind, cols, ratio, gross, gross.copy())

    def butterflies(self, buckets: list[IntArray]) -> Iterator[_Part]:
        if "butterfly" not in self.fam:
            return
        a = self.a
        equal = self.book.rules.strategies.equal_wings
        for b in buckets:
            m = len(b)
            if m < 3:
                continue
            k = a.strike[b]
            sg = a.sign[b]
            for i0 in range(m - 2):
                j, kk = np.triu_indices(m - i0 - 1, k=1)
                j, kk = j + i0 + 1, kk + i0 + 1
                i = np.full(len(j), i0)
                keep = (k[i] < k[j]) & (k[j] < k[kk]) & (sg[i] == sg[kk]) & (sg[j] == -sg[i])
                if equal:
                    keep &= np.isclose(k[j] - k[i], k[kk] - k[j], rtol=1e-12, atol=0.0)
                i, j, kk = i[keep], j[keep], kk[keep]
                if not len(i):
                    continue
                kind = np.where(
                    sg[i] > 0, _CODE["long_butterfly"], _CODE["short_butterfly"]
                ).astype(np.int8)
                yield self._group_textbook(kind, [b[i], b[j], b[kk]], [1.0, 2.0, 1.0])

    def condors(self, buckets: list[IntArray]) -> Iterator[_Part]:
        if "condor" not in self.fam:
            return
        a = self.a
        equal = self.book.rules.strategies.equal_wings
        for b in buckets:
            m = len(b)
            if m < 4:
                continue
            k = a.strike[b]
            sg = a.sign[b]
            pi, pj = np.triu_indices(m, k=1)
            pair = (k[pi] < k[pj]) & (sg[pi] == -sg[pj])
            pi, pj = pi[pair], pj[pair]
            for lo_sign, name in ((1.0, "long_condor"), (-1.0, "short_condor")):
                lo = sg[pi] == lo_sign
                hi = sg[pi] == -lo_sign
                li, lj = pi[lo], pj[lo]
                hk, hm = pi[hi], pj[hi]
                for lo_idx, hi_idx in _mesh_chunks(len(li), len(hk)):
                    i, j = li[lo_idx], lj[lo_idx]
                    kk, mm = hk[hi_idx], hm[hi_idx]
                    keep = k[j] < k[kk]
                    if equal:
                        keep &= np.isclose(k[j] - k[i], k[mm] - k[kk], rtol=1e-12, atol=0.0)
                    i, j, kk, mm = i[keep], j[keep], kk[keep], mm[keep]
                    if not len(i):
                        continue
                    kind = np.full(len(i), _CODE[name], dtype=np.int8)
                    yield self._group_textbook(kind, [b[i], b[j], b[kk], b[mm]], [1.0] * 4)

    def irons_and_boxes(self, buckets: list[IntArray], *, prune: bool) -> Iterator[_Part]:
        """Put pair × call pair of one expiry.

        With ``prune``, the long iron butterflies/condors and long boxes are not generated:
        their payoff is that of two debit spreads (never below 0, MPL 0), so they cost
        exactly what those two spreads cost, open or closed; and in coin pools (MPL in
        coin) nothing is generated: the short irons and short boxes hold a put credit
        spread, unbounded in coin (``Σ_puts nK < 0``).
        """
        if "iron" not in self.fam and "box" not in self.fam:
            return
        if prune and self.coin_mpl:
            return
        a = self.a
        by_key: dict[tuple[float, float], dict[bool, IntArray]] = {}
        for b in buckets:
            i0 = int(b[0])
            by_key.setdefault((a.expiry[i0], a.units[i0]), {})[bool(a.is_call[i0])] = b
        for key in sorted(by_key):
            pair = by_key[key]
            if True not in pair or False not in pair:
                continue
            pp = _opposite_pairs(a, pair[False])
            cp = _opposite_pairs(a, pair[True])
            if not len(pp[0]) or not len(cp[0]):
                continue
            for p_idx, c_idx in _mesh_chunks(len(pp[0]), len(cp[0])):
                p0, p1 = pp[0][p_idx], pp[1][p_idx]
                c0, c1 = cp[0][c_idx], cp[1][c_idx]
                ps0, cs0 = a.sign[p0], a.sign[c0]
                box = (a.strike[p0] == a.strike[c0]) & (a.strike[p1] == a.strike[c1])
                kind = np.full(len(p0), -1, dtype=np.int8)
                if "box" in self.fam:
                    if not prune:
                        kind[box & (cs0 > 0) & (ps0 < 0)] = _CODE["long_box"]
                    kind[box & (cs0 < 0) & (ps0 > 0)] = _CODE["short_box"]
                if "iron" in self.fam:
                    iron = ~box & (a.strike[p1] <= a.strike[c0])
                    fly = a.strike[p1] == a.strike[c0]
                    short_iron = iron & (ps0 > 0) & (cs0 < 0)
                    kind[short_iron & fly] = _CODE["iron_butterfly"]
                    kind[short_iron & ~fly] = _CODE["iron_condor"]
                    if not prune:
                        long_iron = iron & (ps0 < 0) & (cs0 > 0)
                        kind[long_iron & fly] = _CODE["long_iron_butterfly"]
                        kind[long_iron & ~fly] = _CODE["long_iron_condor"]
                keep = kind >= 0
                if not keep.any():
                    continue
                cols = [p0[keep], p1[keep], c0[keep], c1[keep]]
                yield self._group_textbook(kind[keep], cols, [1.0] * 4)

    # -- covers ---------------------------------------------------------------------------

    def _cover_ok(self, u: int, opts: IntArray) -> BoolArray:
        a = self.a
        leg = self.book.legs[u]
        assert isinstance(leg, UnderlyingLeg)
        if leg.expiry is None:
            return np.ones(len(opts), dtype=bool)
        return np.asarray(a.expiry[opts] <= leg.expiry)

    def cover_single(
        self, u: int, o: IntArray
    ) -> tuple[np.ndarray[tuple[int], np.dtype[np.int8]], FloatArray, FloatArray]:
        """Kind (``-1`` if none), gross IM and MM of underlying ``u`` with option ``o``."""
        a = self.a
        leg = self.book.legs[u]
        assert isinstance(leg, UnderlyingLeg)
        st = self.book.rules.strategies
        q = st.protective_pct
        s = a.spot[o]
        p = a.price_usd[o]
        k = a.strike[o]
        call, short = a.is_call[o], a.is_short[o]
        itm = np.where(call, np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))
        otm = np.where(call, np.maximum(k - s, 0.0), np.maximum(s - k, 0.0))
        r_im, r_mm = leg.rate_im, leg.rate_mm
        kind = np.full(len(o), -1, dtype=np.int8)
        net_im = np.zeros(len(o))
        net_mm = np.zeros(len(o))
        u_long = not leg.is_short
        coin_pool = leg.kind is LegKind.COIN and self.book.inverse
        sel = call & short & u_long
        kind[sel] = _CODE["covered_call"]
        net_im[sel] = (r_im * s - p)[sel]
        net_mm[sel] = (r_mm * np.minimum(s, k) + itm - p)[sel]
        if not coin_pool:
            sel = ~call & short & (not u_long)
            kind[sel] = _CODE["covered_put"]
            net_im[sel] = (r_im * s + itm - p)[sel]
            net_mm[sel] = (r_mm * s + itm - p)[sel]
            sel = ~call & ~short & u_long
            kind[sel] = _CODE["protective_put"]
            net_im[sel] = (r_im * s + p)[sel]
            net_mm[sel] = (np.minimum(q * k + otm, r_mm * s) + p)[sel]
            sel = call & ~short & (not u_long)
            kind[sel] = _CODE["protective_call"]
            net_im[sel] = (r_im * s + p)[sel]
            net_mm[sel] = (np.minimum(q * k + otm, r_mm * s) + p)[sel]
        if "cover" not in st.families or leg.kind.value not in st.covers:
            kind[:] = -1
        kind[~self._cover_ok(u, o)] = -1
        units = a.units[o]
        proceeds = a.proceeds[o] + (units / leg.units) * leg.proceeds
        gross_im = self._to_pool(net_im) * units + proceeds
        gross_mm = self._to_pool(net_mm) * units + proceeds
        return kind, gross_im, gross_mm

    def _to_pool(self, usd: FloatArray) -> FloatArray:
        return usd / self.book.index if self.book.inverse else usd

    def cover_net(self, u: int, o: IntArray, code: str) -> tuple[FloatArray, FloatArray]:
        """Net capped requirement of the ``code`` cover of ``u`` with ``o`` (``inf`` if not)."""
        a = self.a
        leg = self.book.legs[u]
        kind, im, mm = self.cover_single(u, o)
        ratio = a.units[o] / leg.units
        alone_im = a.single_im[o] + ratio * leg.single_im
        alone_mm = a.single_mm[o] + ratio * leg.single_mm
        proceeds = a.proceeds[o] + ratio * leg.proceeds
        ok = kind == _CODE[code]
        im = np.minimum(im, alone_im) - proceeds
        mm = np.minimum(mm, alone_mm) - proceeds
        return np.where(ok, im, _INF), np.where(ok, mm, _INF)

    def covers(self, buckets: list[IntArray]) -> Iterator[_Part]:
        st = self.book.rules.strategies
        if "cover" not in st.families:
            return
        a = self.a
        opt = np.flatnonzero(a.is_option)
        for u, leg in enumerate(self.book.legs):
            if not isinstance(leg, UnderlyingLeg) or leg.kind.value not in st.covers:
                continue
            if len(opt):
                kind, im, mm = self.cover_single(u, opt)
                keep = kind >= 0
                if keep.any():
                    o = opt[keep]
                    uu = np.full(len(o), u)
                    ratio = a.units[o] / leg.units
                    yield self._part_ratio(kind[keep], [o, uu], [np.ones(len(o)), ratio],
                                           im[keep], mm[keep])  # fmt: skip
            if leg.kind is LegKind.COIN and self.book.inverse:
                continue
            yield from self._cover_pairs(u, buckets)

    def _cover_pairs(self, u: int, buckets: list[IntArray]) -> Iterator[_Part]:
        a = self.a
        leg = self.book.legs[u]
        assert isinstance(leg, UnderlyingLeg)
        st = self.book.rules.strategies
        q, c = st.protective_pct, st.conversion_pct
        by_key: dict[tuple[float, float], dict[bool, IntArray]] = {}
        for b in buckets:
            i0 = int(b[0])
            by_key.setdefault((a.expiry[i0], a.units[i0]), {})[bool(a.is_call[i0])] = b
        for key in sorted(by_key):
            pair = by_key[key]
            if True not in pair or False not in pair:
                continue
            p, cl = (x.reshape(-1) for x in np.meshgrid(pair[False], pair[True], indexing="ij"))
            p, cl = p[a.sign[p] != a.sign[cl]], cl[a.sign[p] != a.sign[cl]]
            p, cl = p[self._cover_ok(u, p)], cl[self._cover_ok(u, p)]
            if not len(p):
                continue
            s = a.spot[p]
            kp, kc = a.strike[p], a.strike[cl]
            pp, pc = a.price_usd[p], a.price_usd[cl]
            otm_p = np.maximum(s - kp, 0.0)
            itm_c = np.maximum(s - kc, 0.0)
            kind = np.full(len(p), -1, dtype=np.int8)
            net_im = np.zeros(len(p))
            net_mm = np.zeros(len(p))
            if not leg.is_short:
                base = ~a.is_short[p] & a.is_short[cl] & (kp <= kc)
                conv = base & (kp == kc)
                col = base & (kp != kc)
                kind[conv] = _CODE["conversion"]
                kind[col] = _CODE["collar"]
                net_im[base] = (leg.rate_im * s + pp - pc)[base]
                net_mm[conv] = (c * kp + pp - pc)[conv]
                net_mm[col] = (np.minimum(q * kp + otm_p, leg.rate_mm * kc) + itm_c + pp - pc)[col]
            else:
                rc = a.is_short[p] & ~a.is_short[cl] & (kp == kc)
                kind[rc] = _CODE["reverse_conversion"]
                net_im[rc] = (np.where(kp < s, c * kp, leg.rate_im * s) + pc - pp)[rc]
                net_mm[rc] = (c * kp + pc - pp)[rc]
            keep = kind >= 0
            if not keep.any():
                continue
            p, cl, kind = p[keep], cl[keep], kind[keep]
            units = a.units[p]
            ratio = units / leg.units
            proceeds = a.proceeds[p] + a.proceeds[cl] + ratio * leg.proceeds
            im = self._to_pool(net_im[keep]) * units + proceeds
            mm = self._to_pool(net_mm[keep]) * units + proceeds
            uu = np.full(len(p), u)
            one = np.ones(len(p))
            yield self._part_ratio(kind, [p, cl, uu], [one, one, ratio], im, mm)

    # -- assembly -------------------------------------------------------------------------

    def _part(
        self, kind: np.ndarray[tuple[int], np.dtype[np.int8]], cols: list[IntArray],
        ratio: list[float], im: FloatArray, mm: FloatArray,
    ) -> _Part:  # fmt: skip
        ones = np.ones(len(kind))
        return self._part_ratio(kind, cols, [r * ones for r in ratio], im, mm)

    @staticmethod
    def _part_ratio(
        kind: np.ndarray[tuple[int], np.dtype[np.int8]], cols: list[IntArray],
        ratios: list[FloatArray], im: FloatArray, mm: FloatArray,
    ) -> _Part:  # fmt: skip
        t = len(kind)
        members = np.full((t, 4), -1, dtype=np.int64)
        ratio = np.zeros((t, 4))
        for j, (col, r) in enumerate(zip(cols, ratios, strict=True)):
            members[:, j] = col
            ratio[:, j] = r
        return _Part(kind, members, ratio, np.asarray(im, float), np.asarray(mm, float))

    def straddle_net(self, c: IntArray, p: IntArray) -> tuple[FloatArray, FloatArray]:
        """Net requirement of the short straddle/strangle ``c``, ``p`` (``inf`` if not one)."""
        a = self.a
        ok = (
            ("straddle" in self.fam)
            & a.is_short[c]
            & a.is_short[p]
            & (a.is_call[c] != a.is_call[p])
            & (a.units[c] == a.units[p])
        )
        im = np.maximum(a.naked_im[c] + a.value[p], a.naked_im[p] + a.value[c])
        mm = np.maximum(a.naked_mm[c] + a.value[p], a.naked_mm[p] + a.value[c])
        im = np.minimum(im, a.single_im[c] + a.single_im[p]) - a.proceeds[c] - a.proceeds[p]
        mm = np.minimum(mm, a.single_mm[c] + a.single_mm[p]) - a.proceeds[c] - a.proceeds[p]
        return np.where(ok, im, _INF), np.where(ok, mm, _INF)

    def cover_pair_net(self, u: int, o: IntArray) -> tuple[FloatArray, FloatArray]:
        """Least net requirement of ``u`` with option ``o`` as a 2-leg cover (closed)."""
        im = np.full(len(o), _INF)
        mm = np.full(len(o), _INF)
        leg = self.book.legs[u]
        ratio = self.a.units[o] / leg.units
        for code in ("covered_call", "covered_put", "protective_put", "protective_call"):
            c_im, c_mm = self.cover_net(u, o, code)
            if self.monotone and code in ("covered_call", "covered_put"):
                c_im = np.maximum(c_im, ratio * self.sn_im[u])
                c_mm = np.maximum(c_mm, ratio * self.sn_mm[u])
            im, mm = np.minimum(im, c_im), np.minimum(mm, c_mm)
        return im, mm

    def finish(self, part: _Part, *, prune: bool = True) -> CandidateTable:
        """Cap at the legs alone, close (monotone), drop the useless and the dominated.

        ``prune`` drops the groups dominated by a split of their own legs.
        """
        a = self.a
        mem, ratio = part.members, part.ratio
        safe = np.where(mem >= 0, mem, 0)
        alone_im = (ratio * a.single_im[safe]).sum(axis=1)
        alone_mm = (ratio * a.single_mm[safe]).sum(axis=1)
        proceeds = (ratio * a.proceeds[safe]).sum(axis=1)
        finite = np.isfinite(part.gross_im) & np.isfinite(part.gross_mm)
        im = np.minimum(part.gross_im, alone_im)
        mm = np.minimum(part.gross_mm, alone_mm)
        four = np.isin(part.kind, _FOUR)
        contracts = self._contracts(part, four)
        nets = self._four_nets(contracts)
        if self.monotone:
            r_im, r_mm = self._closure(part, four, contracts, nets)
            im = np.maximum(im - proceeds, r_im) + proceeds
            mm = np.maximum(mm - proceeds, r_mm) + proceeds
        scale = np.maximum(1.0, np.maximum(np.abs(alone_im), np.abs(alone_mm)))
        useful = finite & ((im < alone_im - 1e-12 * scale) | (mm < alone_mm - 1e-12 * scale))
        keep = useful
        if prune:
            net_im, net_mm = im - proceeds, mm - proceeds
            tol = 1e-10 * scale
            keep = keep & ~self._dominated(part, four, contracts, nets, net_im, net_mm, tol)
        return self._table(part, keep, im, mm, proceeds)

    @staticmethod
    def _table(
        part: _Part, sel: BoolArray, im: FloatArray, mm: FloatArray, proceeds: FloatArray
    ) -> CandidateTable:
        mem, ratio = part.members[sel], part.ratio[sel]
        order = np.argsort(np.where(mem >= 0, mem, np.iinfo(np.int64).max), axis=1, kind="stable")
        return CandidateTable(
            part.kind[sel],
            np.take_along_axis(mem, order, axis=1),
            np.take_along_axis(ratio, order, axis=1),
            im[sel],
            mm[sel],
            proceeds[sel],
        )

    def _pair_tables(self, key: tuple[float, float]) -> tuple[IntArray, list[Float2D]]:
        """Spread and straddle nets between the option legs of one (expiry, multiplier).

        ``[sp_im, sp_mm, st_im, st_mm]`` indexed by local leg positions (``inf`` if none).
        """
        if key not in self._local:
            a = self.a
            legs = np.flatnonzero(a.is_option & (a.expiry == key[0]) & (a.units == key[1]))
            local = np.full(len(a.qty), -1, dtype=np.int64)
            local[legs] = np.arange(len(legs))
            s, lg = (x.reshape(-1) for x in np.meshgrid(legs, legs, indexing="ij"))
            shape = (len(legs), len(legs))
            sp_im, sp_mm = self.spread_net(s, lg)
            st_im, st_mm = self.straddle_net(s, lg)
            tables = [t.reshape(shape) for t in (sp_im, sp_mm, st_im, st_mm)]
            self._local[key] = (local, tables)
        return self._local[key]

    def _four_nets(self, contracts: Int2D) -> dict[str, tuple[FloatArray, FloatArray]]:
        """Nets of the spreads and the straddle inside two-short two-long groups.

        Keys ``s1l1``, ``s2l2``, ``s1l2``, ``s2l1`` (spreads) and ``s1s2`` (straddle).
        """
        a = self.a
        s1, s2, l1, l2 = contracts.T
        out = {k: (np.full(len(s1), _INF), np.full(len(s1), _INF))
               for k in ("s1l1", "s2l2", "s1l2", "s2l1", "s1s2")}  # fmt: skip
        if not len(s1):
            return out
        gid = self._gid[s1]  # (expiry, multiplier) group of each row
        order = np.argsort(gid, kind="stable")
        cuts = np.flatnonzero(np.diff(gid[order])) + 1
        for rows in np.split(order, cuts):
            i0 = int(s1[rows[0]])
            key = (float(a.expiry[i0]), float(a.units[i0]))
            local, (sp_im, sp_mm, st_im, st_mm) = self._pair_tables(key)
            ls1, ls2, ll1, ll2 = (local[c[rows]] for c in (s1, s2, l1, l2))
            for name, (i, j) in {
                "s1l1": (ls1, ll1), "s2l2": (ls2, ll2), "s1l2": (ls1, ll2), "s2l1": (ls2, ll1),
            }.items():  # fmt: skip
                out[name][0][rows] = sp_im[i, j]
                out[name][1][rows] = sp_mm[i, j]
            out["s1s2"][0][rows] = st_im[ls1, ls2]
            out["s1s2"][1][rows] = st_mm[ls1, ls2]
        return out

    def _contracts(self, part: _Part, four: BoolArray) -> Int2D:
        """``(s1, s2, l1, l2)`` of the groups of two short and two long contracts.

        Flies have their middle leg twice.
        """
        a = self.a
        m4 = part.members[four]
        rat = part.ratio[four]
        contracts = np.where(rat[:, 1:2] == 2.0, m4[:, [0, 1, 1, 2]], m4)
        short = a.is_short[contracts]  # exactly two per row: shorts first, in column order
        shorts = contracts[short].reshape(-1, 2)
        longs = contracts[~short].reshape(-1, 2)
        return np.concatenate([shorts, longs], axis=1)

    def _closure(
        self, part: _Part, four: BoolArray, contracts: Int2D,
        nets: dict[str, tuple[FloatArray, FloatArray]],
    ) -> tuple[FloatArray, FloatArray]:  # fmt: skip
        """``max_s best_net(g − s)`` over the short option contracts ``s`` of each group.

        Spreads: the long alone. Straddles: the other short alone, never above the group
        (``max(e_c, e_p) ≥ e``), so nothing. Flies, condors, irons, boxes (two short and
        two long contracts): the other short ``s'`` alone, or in a spread with either long.
        Covers: the underlying alone, or with the remaining long option (protective put /
        call).
        """
        t = len(part.kind)
        r_im = np.full(t, -_INF)
        r_mm = np.full(t, -_INF)
        kind = part.kind
        mem = part.members
        spread = np.isin(kind, _SPREADS)
        if spread.any():
            lg = mem[spread, 1]
            r_im[spread], r_mm[spread] = self.sn_im[lg], self.sn_mm[lg]
        if four.any():
            s1, s2, l1, l2 = contracts.T
            out_im = np.full(len(s1), -_INF)
            out_mm = np.full(len(s1), -_INF)
            for other, (sp1_im, sp1_mm), (sp2_im, sp2_mm) in (
                (s2, nets["s2l1"], nets["s2l2"]),  # remove s1: the other short is s2
                (s1, nets["s1l1"], nets["s1l2"]),
            ):
                best_im = np.minimum.reduce(
                    [
                        self.sn_im[other] + self.sn_im[l1] + self.sn_im[l2],
                        sp1_im + self.sn_im[l2],
                        sp2_im + self.sn_im[l1],
                    ]
                )
                best_mm = np.minimum.reduce(
                    [
                        self.sn_mm[other] + self.sn_mm[l1] + self.sn_mm[l2],
                        sp1_mm + self.sn_mm[l2],
                        sp2_mm + self.sn_mm[l1],
                    ]
                )
                out_im = np.maximum(out_im, best_im)
                out_mm = np.maximum(out_mm, best_mm)
            r_im[four], r_mm[four] = out_im, out_mm
        covers_short = np.isin(kind, [_CODE["covered_call"], _CODE["covered_put"]])
        if covers_short.any():
            u = mem[covers_short, 1]
            rat = part.ratio[covers_short, 1]
            r_im[covers_short] = rat * self.sn_im[u]
            r_mm[covers_short] = rat * self.sn_mm[u]
        for name, kept_col in (("collar", 0), ("conversion", 0), ("reverse_conversion", 1)):
            for u in np.unique(mem[kind == _CODE[name], 2]).tolist():
                sel = (kind == _CODE[name]) & (mem[:, 2] == u)
                kept = mem[sel, kept_col]
                rat = part.ratio[sel, 2]
                pr_im, pr_mm = self.cover_pair_net(u, kept)
                r_im[sel] = np.minimum(rat * self.sn_im[u] + self.sn_im[kept], pr_im)
                r_mm[sel] = np.minimum(rat * self.sn_mm[u] + self.sn_mm[kept], pr_mm)
        return r_im, r_mm

    def _dominated(
        self, part: _Part, four: BoolArray, contracts: Int2D,
        nets: dict[str, tuple[FloatArray, FloatArray]], net_im: FloatArray,
        net_mm: FloatArray, tol: FloatArray,
    ) -> BoolArray:  # fmt: skip
        """Groups no cheaper than some split of their own legs (initial and maintenance).

        A group that costs at least what its legs cost split into smaller groups can be
        left out without changing the optimum (ties included: the split is shown, or merged
        back for display by the solver). Splits tried: for two short and two long
        contracts, the two pairings into spreads, a straddle with the longs alone, one
        spread with the other two legs alone; for a cover with two options, a 2-leg cover
        with the other option alone.
        """
        t = len(part.kind)
        dominated = np.zeros(t, dtype=bool)
        if four.any():
            s1, s2, l1, l2 = contracts.T
            sn_im, sn_mm = self.sn_im, self.sn_mm
            a_im, a_mm = nets["s1l1"]
            b_im, b_mm = nets["s2l2"]
            c_im, c_mm = nets["s1l2"]
            d_im, d_mm = nets["s2l1"]
            st_im, st_mm = nets["s1s2"]
            splits = [
                (a_im + b_im, a_mm + b_mm),
                (c_im + d_im, c_mm + d_mm),
                (st_im + sn_im[l1] + sn_im[l2], st_mm + sn_mm[l1] + sn_mm[l2]),
                (a_im + sn_im[s2] + sn_im[l2], a_mm + sn_mm[s2] + sn_mm[l2]),
                (b_im + sn_im[s1] + sn_im[l1], b_mm + sn_mm[s1] + sn_mm[l1]),
                (c_im + sn_im[s2] + sn_im[l1], c_mm + sn_mm[s2] + sn_mm[l1]),
                (d_im + sn_im[s1] + sn_im[l2], d_mm + sn_mm[s1] + sn_mm[l2]),
            ]
            gi, gm, tl = net_im[four], net_mm[four], tol[four]
            dom = np.zeros(len(s1), dtype=bool)
            for x_im, x_mm in splits:
                dom |= (x_im <= gi + tl) & (x_mm <= gm + tl)
            dominated[four] = dom
        covers3 = np.isin(part.kind, [_CODE[k] for k in ("collar", "conversion",
                                                          "reverse_conversion")])  # fmt: skip
        for u in np.unique(part.members[covers3, 2]).tolist():
            sel = covers3 & (part.members[:, 2] == u)
            mem = part.members[sel]
            p, cl = mem[:, 0], mem[:, 1]
            up_im, up_mm = self.cover_pair_net(u, p)
            uc_im, uc_mm = self.cover_pair_net(u, cl)
            gi, gm, tl = net_im[sel], net_mm[sel], tol[sel]
            dom = np.zeros(len(p), dtype=bool)
            for x_im, x_mm in (
                (up_im + self.sn_im[cl], up_mm + self.sn_mm[cl]),
                (uc_im + self.sn_im[p], uc_mm + self.sn_mm[p]),
            ):
                dom |= (x_im <= gi + tl) & (x_mm <= gm + tl)
            dominated[sel] = dom
        return dominated


def _opposite_pairs(a: object, b: IntArray) -> tuple[IntArray, IntArray]:
    """Pairs ``(i, j)`` of one bucket with ``K_i < K_j`` and opposite signs."""
    from portmargin.rules._book import BookArrays

    assert isinstance(a, BookArrays)
    i, j = np.triu_indices(len(b), k=1)
    bi, bj = b[i], b[j]
    keep = (a.strike[bi] < a.strike[bj]) & (a.sign[bi] == -a.sign[bj])
    return bi[keep], bj[keep]


def _mesh_chunks(n1: int, n2: int) -> Iterator[tuple[IntArray, IntArray]]:
    """Index pairs of the ``n1 × n2`` mesh, in chunks of at most ``_CHUNK``."""
    if n1 == 0 or n2 == 0:
        return
    rows = max(1, _CHUNK // n2)
    for start in range(0, n1, rows):
        stop = min(n1, start + rows)
        i = np.repeat(np.arange(start, stop), n2)
        j = np.tile(np.arange(n2), stop - start)
        yield i, j


def _concat(parts: list[CandidateTable]) -> CandidateTable:
    if not parts:
        return CandidateTable.empty()
    return CandidateTable(
        np.concatenate([p.kind for p in parts]),
        np.concatenate([p.members for p in parts]),
        np.concatenate([p.ratio for p in parts]),
        np.concatenate([p.gross_im for p in parts]),
        np.concatenate([p.gross_mm for p in parts]),
        np.concatenate([p.proceeds for p in parts]),
    )


def candidate_table(book: Book, *, prune: bool = True) -> CandidateTable:
    """Every useful multi-leg candidate of ``book`` (see the module docstring).

    ``prune`` leaves out the groups dominated by a split of their own legs (the optimum
    does not change); ``False`` keeps every useful group (for tests).
    """
    if book.rules.engine == "per_leg" or len(book.legs) < 2:
        return CandidateTable.empty()
    pr = _Pricer(book)
    buckets = pr._buckets()
    fam = book.rules.strategies.families
    gens: list[Iterator[_Part]] = []
    if "spread" in fam:
        gens.append(pr.spreads())
    if "straddle" in fam and (not prune or straddles_as_columns(book)):
        gens.append(pr.straddles())  # else the solver pairs them in its straddle flow
    gens += [
        pr.butterflies(buckets),
        pr.condors(buckets),
        pr.irons_and_boxes(buckets, prune=prune),
        pr.covers(buckets),
    ]
    kept: list[CandidateTable] = []
    batch: list[_Part] = []
    size = 0
    for gen in gens:
        for part in gen:  # priced in batches: fewer, larger array operations
            batch.append(part)
            size += len(part.kind)
            if size >= _CHUNK:
                kept.append(pr.finish(_concat_parts(batch), prune=prune))
                batch, size = [], 0
    if batch:
        kept.append(pr.finish(_concat_parts(batch), prune=prune))
    return _concat([t for t in kept if len(t)])


def straddles_as_columns(book: Book) -> bool:
    """Few short calls × short puts: straddles are plain candidates, not the solver's flow."""
    a = book.arrays
    shorts = a.is_option & a.is_short
    return int((shorts & a.is_call).sum()) * int((shorts & ~a.is_call).sum()) <= _STRADDLE_COLUMNS


def _concat_parts(parts: list[_Part]) -> _Part:
    if len(parts) == 1:
        return parts[0]
    return _Part(
        np.concatenate([p.kind for p in parts]),
        np.concatenate([p.members for p in parts]),
        np.concatenate([p.ratio for p in parts]),
        np.concatenate([p.gross_im for p in parts]),
        np.concatenate([p.gross_mm for p in parts]),
    )


def enumerate_candidates(book: Book) -> list[Candidate]:
    """Every useful multi-leg candidate of ``book`` (dominated ones too), as objects."""
    return candidate_table(book, prune=False).candidates()
