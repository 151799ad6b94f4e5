"""float32 -> the double named by its shortest round-trip decimal string, vectorised.

``float32_shortest(a)`` returns, bit for bit, ``a.astype(str).astype(np.float64)``: NumPy prints a
float32 with Dragon4 in "unique" mode (the shortest digits that read back as the same float32,
the closest such digits when there is a choice), and those digits are then read as a double.
``astype(str)`` costs about a microsecond per element; this module gets the same doubles with
about a hundred whole-array NumPy operations and no Python loop per element.

How Dragon4 chooses the digits, for a finite nonzero float32 v = m * 2**e (m the integer
significand), with y = float64(v) (exact):

* The rounding interval of v is [y - lo_gap, y + hi_gap]; both gaps are half the distance to the
  neighbouring float32 (the lower gap is half as large when m is a power of two above the
  smallest normal).  Its endpoints belong to it iff m is even (round-half-even read-back).
* Dragon4 emits digits from the leading one down and stops at the first decimal position
  10**-s where a candidate N * 10**-s, with N = floor(y * 10**s) or N + 1, lies in the interval;
  if both do, it takes the one nearer y (ties to the even digit).

Let p be the smallest s with width * 10**s >= 1 (width = lo_gap + hi_gap; p depends only on the
float32 exponent, so it is tabulated), and q = p - 1.  At scale q the scaled interval is shorter
than 1, so it holds at most one integer C; if it holds one, every candidate at a coarser position
is that same decimal, so the answer is C * 10**-q.  Otherwise no position at or above q has a
candidate, and at scale p (scaled width >= 1) there is one: floor(y * 10**p) or the next integer,
the nearer one if both fit.  So two scales decide every element; there is no search.

Exactness.  The scaled quantities (all below 2**28) are computed in float64 with an error below
2**-23 scaled units, and every decision compares them with integers (or, for "the nearer one",
with a half-integer).  A quantity farther than _TOL = 2**-20 from every integer (half-integer)
gives an exact decision.  A quantity within _TOL of one is tested exactly with integer arithmetic
(it is a dyadic rational M * 2**E times 10**s): if it truly is that integer, it is snapped (an
exact half-integer is a true tie, resolved to the even digit as Dragon4 does) and the decision is
exact; if not, the element goes to the fallback.  The final double N * 10**-s is one correctly
rounded operation when |s| <= 22 (10**|s| is exact); for larger |s| it is rebuilt from exact
partial products in double-double and rounded once, and an element whose double-double lands
within 2**-80 relative of a rounding midpoint goes to the fallback.  The fallback is the
reference itself, ``astype(str).astype(np.float64)``, on just those elements (also used for the
fifteen smallest subnormals of each sign, where Dragon4's leading-digit rule can matter).  Zeros,
infinities and nan are converted directly (nan as the nan that parsing "nan" gives).  Work is
done in blocks of _BLOCK elements so that the temporaries stay in cache.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["float32_shortest"]

# A scaled quantity farther than this from every integer is decided by float64 arithmetic alone.
# Its float64 error is below 2**-52 relative, on values below 2**28: below 2**-24.
_TOL = 2.0**-20
# Relative distance to a float64 rounding midpoint below which the double-double path gives up.
_MID_TOL = 2.0**-80

_BLOCK = 1 << 15  # elements per block: the temporaries of one block stay in cache

_POW_OFFSET = 64  # index of 10**0 in the power tables; decimal scales used lie in [-32, 46]


def _build_tables():
    """Per (float32 biased exponent, significand-is-a-power-of-two) key: the lower and upper
    half-gaps of the rounding interval and the scale p; and per scale s: 10**s tables."""
    lo_gap = np.zeros(512)
    hi_gap = np.zeros(512)
    scale = np.zeros(512, dtype=np.int64)
    for bexp in range(256):
        e = max(bexp, 1) - 150  # exponent of the float32 spacing in this binade
        for pow2 in (0, 1):
            hg = Fraction(2) ** (e - 1)
            lg = hg / 2 if (pow2 and bexp > 1) else hg
            width = hg + lg
            p = -int(np.floor(np.log10(float(width))))
            while width * Fraction(10) ** p < 1:
                p += 1
            while width * Fraction(10) ** (p - 1) >= 1:
                p -= 1
            key = 2 * bexp + pow2
            lo_gap[key] = float(lg)
            hi_gap[key] = float(hg)
            scale[key] = p

    n = 2 * _POW_OFFSET + 1
    pow10 = np.zeros(n)  # 10**s correctly rounded
    mul = np.ones(n)  # N * mul / div is N * 10**-s correctly rounded, for |s| <= 22
    div = np.ones(n)
    chunks = np.zeros((4, n))  # 10**-s as four 23-bit pieces, for the double-double path
    for i in range(n):
        s = i - _POW_OFFSET
        exact = Fraction(10) ** s
        pow10[i] = float(exact)
        if 0 <= s <= 22:
            div[i] = float(10**s)
        elif -22 <= s < 0:
            mul[i] = float(10**-s)
        rest = Fraction(1) / exact
        top = rest.numerator.bit_length() - rest.denominator.bit_length()  # ~ floor(log2)
        for j in range(4):
            unit = Fraction(2) ** (top - 22 - 23 * j)  # keeps 23 or 24 bits; N < 2**28
            piece = (rest // unit) * unit
            chunks[j, i] = float(piece)
            rest -= piece
    pow5 = np.array([5**k for k in range(28)], dtype=np.int64)
    return lo_gap, hi_gap, scale, pow10, mul, div, chunks, pow5


_LO_GAP, _HI_GAP, _SCALE, _POW10, _MUL, _DIV, _CHUNKS, _POW5 = _build_tables()
_NAN = np.array(["nan"]).astype(np.float64)[0]


def _reference(values: np.ndarray) -> np.ndarray:
    return values.astype(str).astype(np.float64)


def _integral(M: np.ndarray, E: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Whether M * 2**E * 10**s is an integer (M > 0, all int64 arrays, M < 2**27)."""
    e2 = E + s
    shift = np.clip(-e2, 0, 40)
    twos = (M & ((np.int64(1) << shift) - 1)) == 0
    k = np.clip(-s, 0, 27)
    fives = (M % _POW5[k]) == 0
    return twos & fives


def _scaled_value(N: np.ndarray, s: np.ndarray):
    """float64(N * 10**-s) correctly rounded, for integers 0 < N < 2**28 and any tabulated s.
    Returns (values, ok); where ok is False the result may be wrong and must be recomputed."""
    i = s + _POW_OFFSET
    simple = np.abs(s) <= 22
    out = N * _MUL[i] / _DIV[i]
    ok = np.ones(N.shape, dtype=bool)
    hard = np.flatnonzero(~simple)
    if hard.size:
        n = N[hard]
        j = i[hard]
        s1 = n * _CHUNKS[0, j]  # each product is exact: < 28 + 24 bits
        s2 = n * _CHUNKS[1, j]
        s3 = n * _CHUNKS[2, j]
        s4 = n * _CHUNKS[3, j]
        h = s1 + s2
        low = (s2 - (h - s1)) + (s3 + s4)  # Fast2Sum error plus the small tail
        r = h + low
        res = (h - r) + low  # offset of the double-double from r
        gap = np.spacing(r)
        off = np.abs(res)
        near_mid = (np.abs(off - gap / 2) <= _MID_TOL * r) | (np.abs(off - gap / 4) <= _MID_TOL * r)
        out[hard] = r
        ok[hard] = ~near_mid
    return out, ok


def _shortest_positive(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For |float32| bit patterns of finite nonzero values: the doubles (positive) and a mask of
    the elements that must go to the fallback."""
    bexp = (bits >> 23).astype(np.int64)
    mant = (bits & 0x7FFFFF).astype(np.int64)
    y = bits.view(np.float32).astype(np.float64)
    pow2 = (mant == 0) & (bexp > 1)
    key = 2 * bexp + pow2
    p = _SCALE[key]
    incl = (mant & 1) == 0  # endpoints of the rounding interval read back as v

    lo = y - _LO_GAP[key]  # exact
    hi = y + _HI_GAP[key]
    pq = _POW10[p + (_POW_OFFSET - 1)]
    pp = _POW10[p + _POW_OFFSET]
    Lq = lo * pq
    Hq = hi * pq
    T = y * pp
    Lp = lo * pp
    Hp = hi * pp

    quantities = [Lq, Hq, T, Lp, Hp]
    near = [np.abs(x - np.rint(x)) <= _TOL for x in quantities]
    any_near = near[0] | near[1] | near[2] | near[3] | near[4]

    exact_int_T = np.zeros(y.shape, dtype=bool)
    bad = (bexp == 0) & (mant < 16)  # tiny subnormals: Dragon4's leading-digit rule can matter
    idx = np.flatnonzero(any_near)
    if idx.size:
        m = np.where(bexp[idx] > 0, mant[idx] | (1 << 23), mant[idx])
        e = np.maximum(bexp[idx], 1) - 150
        sp = p[idx]
        sq = sp - 1
        pw = pow2[idx]
        M_lo = np.where(pw, 4 * m - 1, 2 * m - 1)
        E_lo = np.where(pw, e - 2, e - 1)
        M_hi = 2 * m + 1
        E_hi = e - 1
        specs = [(M_lo, E_lo, sq), (M_hi, E_hi, sq), (m, e, sp), (M_lo, E_lo, sp), (M_hi, E_hi, sp)]
        for k, (x, (M, E, s)) in enumerate(zip(quantities, specs)):
            nk = near[k][idx]
            integral = _integral(M, E, s) & nk
            # Near an integer but not one: undecidable here.
            bad[idx[nk & ~integral]] = True
            snap = idx[integral]
            x[snap] = np.rint(x[snap])
            if k == 2:
                exact_int_T[snap] = True

    # Scale q: the one integer C in [Lq, Hq], if any.
    C = np.ceil(Lq)
    C += ~incl & (C == Lq)
    at_q = (C < Hq) | (incl & (C == Hq))

    # Scale p: floor(T) or floor(T) + 1, the nearer if both lie in [Lp, Hp].
    N0 = np.floor(T)
    N1 = N0 + 1
    low_ok = (N0 > Lp) | (incl & (N0 == Lp))
    high_ok = (N1 < Hp) | (incl & (N1 == Hp))
    both = low_ok & high_ok
    d = T - N0 - 0.5
    N = np.where(low_ok & (~high_ok | (d < 0)), N0, N1)
    bad |= ~at_q & ~(low_ok | high_ok)
    # T within _TOL of N0 + 1/2 with both candidates in: an exact tie (Dragon4 then takes the
    # even digit) iff 2T is an integer, i.e. iff m * 2**(e+1) * 10**p is one.
    idx = np.flatnonzero(~at_q & both & (np.abs(d) <= _TOL))
    if idx.size:
        m = np.where(bexp[idx] > 0, mant[idx] | (1 << 23), mant[idx])
        e = np.maximum(bexp[idx], 1) - 150
        tie = _integral(m, e + 1, p[idx])
        bad[idx[~tie]] = True
        n0 = N0[idx]
        N[idx] = np.where(np.fmod(n0, 2) == 0, n0, n0 + 1)

    digits = np.where(at_q, C, N)
    s = np.where(at_q, p - 1, p)
    values, ok = _scaled_value(digits, s)
    bad |= ~ok
    return values, bad


def float32_shortest(array: np.ndarray) -> np.ndarray:
    """``array.astype(str).astype(np.float64)``, bit for bit, for a float32 array of any shape:
    each element becomes the double named by NumPy's shortest round-trip decimal string of it."""
    return _float32_shortest(array)[0]


def _float32_shortest(array: np.ndarray) -> tuple[np.ndarray, int]:
    """float32_shortest, and how many elements went to the fallback."""
    array = np.asarray(array)
    if array.dtype.kind != "f" or array.dtype.itemsize != 4:
        raise TypeError(f"float32_shortest needs a float32 array, not {array.dtype}")
    if array.dtype != np.float32:  # non-native byte order
        array = array.astype(np.float32)
    flat = np.ascontiguousarray(array).reshape(-1)
    out = np.empty(flat.shape, dtype=np.float64)
    fallbacks = []
    # Blocks small enough that the temporaries stay in cache: a loop per block, not per element.
    for start in range(0, flat.size, _BLOCK):
        block = flat[start : start + _BLOCK]
        where = _shortest_block(block, out[start : start + _BLOCK])
        if where.size:
            fallbacks.append(where + start)
    fallback = np.concatenate(fallbacks) if fallbacks else np.zeros(0, dtype=np.intp)
    if fallback.size:
        out[fallback] = _reference(flat[fallback])
    return out.reshape(array.shape), int(fallback.size)


def _shortest_block(flat: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fill out (float64, same length as the float32 vector flat); return the indices of the
    elements that need the fallback."""
    bits = flat.view(np.uint32) & np.uint32(0x7FFFFFFF)
    # finite and nonzero: 1 <= |bits| <= 0x7F7FFFFF (0 wraps to the top of the range)
    regular = (bits - np.uint32(1)) < np.uint32(0x7F7FFFFF)
    if regular.all():
        values, bad = _shortest_positive(bits)
        np.copysign(values, flat, out=out)
        return np.flatnonzero(bad)
    with np.errstate(invalid="ignore"):  # signalling nan payloads
        out[...] = flat  # zeros keep their sign; infinities stay infinite
    out[np.isnan(flat)] = _NAN  # what parsing "nan" gives, whatever the payload or sign
    idx = np.flatnonzero(regular)
    values, bad = _shortest_positive(bits[idx])
    out[idx] = np.copysign(values, flat[idx])
    return idx[bad]
