"""Numerical building blocks shared by several families.

* evaluation once per distinct value (``unique_inverse``, ``per_frequency``, ``distinct_pairs``):
  functions of the frequency alone, or of (frequency, T), evaluated once per distinct value and
  gathered back, which at daily resolution turns millions of evaluations into thousands;
* exact samplers of future purchases in periods (``poisson_periods`` and its 1-d forms
  ``gamma_poisson_periods``, ``truncated_poisson_periods``; ``allocate_to_periods``) and of
  spend per period (``gamma_period_totals``), and the sparse/dense conversions (``take_flat``,
  ``cumulative_counts``) that keep the valuation engine from building draws x customers x
  periods arrays.

``poisson_periods`` and ``gamma_period_totals`` are numba kernels (one pass over the paths,
no GIL held, so valuation threads run in parallel). They draw from the ``numpy.random.
Generator`` they are given, which numba advances with numpy's own algorithms; each visits the
paths in C order with a fixed sequence of draws per path, so a result depends only on the
generator's state and the inputs. Parameters shared along an axis are read in place through
zero steps (:func:`path_strides`), never materialised at draws x customers.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd


# --------------------------------------------------------------------------------------------
# helpers shared by BG/NBD and MBG/NBD
# --------------------------------------------------------------------------------------------
def unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique values, inverse index) of a 1-d array; O(n) when ``x`` is already sorted.

    Fitting data compressed by :func:`clvmodels.models.base.compress_rows` is sorted by
    frequency, so functions of ``x`` alone (``gammaln(r + x)`` ...) are evaluated once per
    distinct frequency instead of once per row.
    """
    x = np.asarray(x, dtype=float)
    if x.size and np.all(x[1:] >= x[:-1]):
        starts = np.empty(x.size, dtype=bool)
        starts[0] = True
        np.not_equal(x[1:], x[:-1], out=starts[1:])
        return x[starts], np.cumsum(starts) - 1
    values, inverse = np.unique(x, return_inverse=True)
    return values, inverse.ravel()


def distinct_pairs(x: np.ndarray, T: np.ndarray):
    """Distinct (x, T) pairs and each customer's pair code: ``(xd, Td, codes)`` with
    ``xd[codes] == x`` and ``Td[codes] == T``. Whole-number data (frequency always, T at daily
    resolution) use an O(n) presence table; otherwise hashing (pandas.factorize)."""
    n = len(x)
    x_top = float(x.max()) if n else 0.0
    T_top = float(T.max()) if n else 0.0
    small = (x_top + 1) * (T_top + 1) <= 8 * n + 4096
    Ti = whole_numbers(T, T_top, n) if small else None
    xi = whole_numbers(x, x_top, n) if Ti is not None else None
    if xi is not None:
        width = int(T_top) + 1
        key = xi * width + Ti
        present = np.zeros((int(x_top) + 1) * width, dtype=bool)
        present[key] = True
        keys = np.flatnonzero(present)
        lookup = np.cumsum(present) - 1
        return (keys // width).astype(float), (keys % width).astype(float), lookup[key]
    x_codes, x_values = pd.factorize(x)
    T_codes, T_values = pd.factorize(T)
    pair_codes, pairs = pd.factorize(x_codes.astype(np.int64) * len(T_values) + T_codes)
    return x_values[pairs // len(T_values)], T_values[pairs % len(T_values)], pair_codes


def check_grid(t_grid) -> np.ndarray:
    """``t_grid`` as a 1-d float array; ValueError unless non-negative and increasing."""
    grid = np.asarray(t_grid, dtype=float).ravel()
    if grid.size and (np.any(np.diff(grid) < 0) or grid[0] < 0):
        raise ValueError("t_grid must be non-negative and increasing")
    return grid


# purchases per pair up to which they are placed one by one (uniform times), above which the
# per-period counts are drawn as one multinomial (cost independent of the count)
ONE_BY_ONE = 48


def allocate_to_periods(n, span, t_grid, rng: np.random.Generator, start=0.0) -> np.ndarray:
    """Per-period counts of ``n`` purchases at independent uniform times on ``[start, span]``.

    Given its count ``N = n`` on ``[start, span]``, the event times of a Poisson process are
    independent and uniform there, so the counts in the periods ``(t_{k-1}, t_k]`` of
    ``t_grid`` (``t_0 = 0``) are ``Multinomial(n, |(t_{k-1}, t_k] ∩ [start, span]| /
    (span - start))``. Small counts are placed one uniform time at a time (for equal periods
    covering ``[0, span]``, a uniform period index), large ones drawn as one multinomial; both
    are exact. ``n``: 1-d integer array; ``span``, ``start``: scalars or 1-d arrays with
    ``0 <= start < span <= t_grid[-1]`` wherever ``n > 0``. Returns int64 of shape
    ``(len(n), len(t_grid))``.
    """
    n = np.asarray(n, dtype=np.int64).ravel()
    grid = np.asarray(t_grid, dtype=float).ravel()
    m, K = n.size, grid.size
    if m == 0 or K == 0:
        return np.zeros((m, K), dtype=np.int64)
    t_max = float(grid[-1])
    whole = np.ndim(span) == 0 and float(span) == t_max and np.ndim(start) == 0 and start == 0
    span = np.broadcast_to(np.asarray(span, dtype=float), (m,))
    start = np.broadcast_to(np.asarray(start, dtype=float), (m,))
    steps = np.diff(grid, prepend=0.0)
    equal = bool(np.all(np.abs(steps - t_max / K) <= 1e-12 * t_max))
    few = np.flatnonzero((n > 0) & (n <= ONE_BY_ONE))
    if few.size:
        owner = np.repeat(few * K, n[few])
        if whole and equal:
            period = rng.integers(0, K, owner.size)
        else:
            times = rng.random(owner.size)
            path = owner // K
            times *= (span - start)[path]
            times += start[path]
            if equal:
                times *= K / t_max
                period = times.astype(np.int64)
            else:
                period = np.searchsorted(grid, times, side="right")
            # rounding can put a time at exactly t_max: it belongs to the last period of
            # positive length (the first one ending at t_max), never to an empty one
            np.minimum(period, int(np.searchsorted(grid, t_max, side="left")), out=period)
        owner += period
        out = np.bincount(owner, minlength=m * K).reshape(m, K)
    else:
        out = np.zeros((m, K), dtype=np.int64)
    many = np.flatnonzero(n > ONE_BY_ONE)
    if many.size:
        if whole:
            out[many] = rng.multinomial(n[many], steps / t_max)
        else:
            reach = np.clip(grid[None, :], start[many, None], span[many, None])
            share = np.diff(reach, axis=1, prepend=start[many, None])
            share /= share.sum(axis=1, keepdims=True)
            out[many] = rng.multinomial(n[many], share)
    return out


def geometric_at_most(p, cap, rng: np.random.Generator) -> np.ndarray:
    """``min(K, cap)`` for ``K ~ Geometric(p)`` on {1, 2, ...} (inverse CDF in floats, so tiny
    ``p`` cannot overflow); float array."""
    u = rng.random(np.shape(p))
    # p -> 0 (or subnormal p) gives K -> inf, i.e. the cap: the overflow is the right limit
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = np.floor(np.log1p(-u) / np.log1p(-np.clip(p, 0.0, 1.0))) + 1.0
    return np.minimum(np.where(np.isnan(k), cap, k), cap)


def take_flat(value, shape, flat) -> np.ndarray:
    """``broadcast_to(value, shape).ravel()[flat]`` without materialising the broadcast (the
    parameters of the ``(n_draws, n_customers)`` protocol are often ``(n_draws, 1)``)."""
    v = np.asarray(value, dtype=float)
    shape = tuple(shape)
    if v.ndim == 0:
        return np.full(len(flat), float(v))
    if v.shape == shape:
        return v.reshape(-1)[flat]
    v = v.reshape((1,) * (len(shape) - v.ndim) + v.shape)
    if len(shape) == 2 and v.shape == (shape[0], 1):
        return v[:, 0][flat // shape[1]]
    if len(shape) == 2 and v.shape == (1, shape[1]):
        return v[0][flat % shape[1]]
    return np.broadcast_to(v, shape)[np.unravel_index(flat, shape)]


def path_strides(value, shape) -> tuple[np.ndarray, int, int]:
    """``value`` broadcast to the path array ``shape``, as what the compiled samplers read: a
    contiguous 1-d float array ``flat`` and element steps ``(row, col)`` such that path
    ``(i, j)`` of the 2-d view ``(prod(shape[:-1]), shape[-1])`` is ``flat[i * row + j * col]``.

    Parameters shared along an axis (the ``(n_draws, 1)`` arrays of the parameter protocol)
    get step 0 there, so they are never materialised at ``shape``.
    """
    shape = tuple(shape)
    v = np.asarray(value, dtype=float)
    if len(shape) > 2 or v.ndim > 2:
        # rare layouts (more than draws x customers): materialise the broadcast
        rows = int(np.prod(shape[:-1])) if shape else 1
        v = np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(rows, -1)
        return v.reshape(-1), v.shape[1], 1
    if not (v.flags.c_contiguous and v.flags.writeable):
        v = np.array(v, order="C")
    view = np.broadcast_to(v, (1,) * (2 - len(shape)) + shape)
    # a contiguous array broadcast only gains zero steps; its data start is unchanged
    row, col = (
        step // v.itemsize if size > 1 else 0
        for step, size in zip(view.strides, view.shape, strict=True)
    )
    return v.reshape(-1), int(row), int(col)


def grid_layout(grid: np.ndarray) -> tuple[bool, int]:
    """``(equal, last)``: whether the periods of ``grid`` (from 0) have equal lengths, and the
    index of the last period of positive length (where a time rounded to ``t_max`` belongs)."""
    t_max = float(grid[-1])
    steps = np.diff(grid, prepend=0.0)
    equal = bool(np.all(np.abs(steps - t_max / grid.size) <= 1e-12 * t_max))
    return equal, int(np.searchsorted(grid, t_max, side="left"))


# Poisson means beyond which numpy refuses to draw (its ``poisson`` raises "lam value too
# large"); the compiled samplers raise the same way rather than return garbage
POISSON_MEAN_MAX = 9.223372006484771e18
# expected purchases of a path up to which its count is drawn by inverting the negative
# binomial distribution (a multiply-add per purchase); above, from the first purchase time, a
# gamma rate and a Poisson count (a fixed cost, whatever the count)
INVERSION_MEAN_MAX = 32.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def period_of(time, grid, equal, last):
    """Index of the period ``(t_{k-1}, t_k]`` holding ``time`` (right-closed search, as
    ``np.searchsorted(grid, time, side="right")`` for uniform times), capped at ``last``."""
    K = grid.size
    if equal:
        k = int(time * (K / grid[K - 1]))
    else:
        k = np.searchsorted(grid, time, side="right")
    return min(k, last)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def place_uniform_times(row, n, start, span, grid, equal, last, rng):
    """Add to ``row`` the periods of ``n`` independent uniform times on ``[start, span]``:
    one time at a time when few, else the multinomial counts as successive conditional
    binomials (both exact, see :func:`allocate_to_periods`)."""
    if n <= 0:
        return
    if n <= ONE_BY_ONE:
        width = span - start
        for _ in range(n):
            row[period_of(start + rng.random() * width, grid, equal, last)] += 1
        return
    left = n
    remaining = span - start
    low = start
    for k in range(grid.size):
        high = min(max(grid[k], start), span)
        share = high - low
        low = high
        if share <= 0.0:
            continue
        if share >= remaining:
            row[k] += left
            left = 0
            break
        drawn = rng.binomial(left, share / remaining)
        row[k] += drawn
        left -= drawn
        remaining -= share
        if left == 0:
            break
    if left > 0:  # rounding left a remainder after the last period: it holds span
        row[last] += left


@numba.njit(cache=True, nogil=True, error_model="numpy")
def negative_binomial_count(u, p0, shape_, odds):
    """The count ``n`` with ``F(n - 1) < u <= F(n)`` of the negative binomial with ``P(0) =
    p0`` and ``P(n + 1) = P(n) (shape_ + n) / (n + 1) odds`` (inversion by sequential
    search, for ``u > p0``). A ``u`` beyond the total mass reachable in floating point (a
    rounding event of probability ~1e-16) ends the search where the terms vanish."""
    n = 0
    term = p0
    cumulative = p0
    while cumulative < u:
        term *= (shape_ + n) / (n + 1.0) * odds
        n += 1
        if term == 0.0 and n > shape_ * odds:
            break
        cumulative += term
    return n


@numba.njit(cache=True, nogil=True, error_model="numpy")
def beta_geometric_cut(u, a_, b_, n):
    """``min(K, n)`` for ``K ~ Geometric(p)`` on {1, 2, ...}, ``p ~ Beta(a_, b_)`` (p integrated
    out), by inversion: ``P(K > k) = B(a_, b_ + k) / B(a_, b_) = prod_{i<k} (b_ + i) / (a_ +
    b_ + i)`` and ``K`` is the first ``k`` with ``P(K > k) <= u``."""
    survival = 1.0
    for k in range(1, n):
        survival *= (b_ + (k - 1)) / (a_ + b_ + (k - 1))
        if survival <= u:
            return k
    return n


@numba.njit(cache=True, nogil=True, error_model="numpy")
def poisson_periods_kernel(
    n_rows, n_cols, alive, shape_, rate, span, a_, b_, with_alive, with_dropout,
    grid, equal, last, rng,
):  # fmt: skip
    """The compiled body of :func:`poisson_periods` (inputs as :func:`path_strides` triples).

    Paths are visited in C order, first all of them (alive, whether they buy), then the
    buyers (placement, dropout); each uses the stream in a fixed order, so the result is a
    function of the generator's state and the inputs alone.
    """
    n_paths = n_rows * n_cols
    buyers = np.empty(n_paths, dtype=np.int64)
    # a buyer's count (inverted), or -1 and its first purchase time (drawn by the Lomax route)
    counts = np.empty(n_paths, dtype=np.int64)
    firsts = np.empty(n_paths)
    n_buyers = 0
    for i in range(n_rows):
        for j in range(n_cols):
            if with_alive:
                if not rng.random() < alive[0][i * alive[1] + j * alive[2]]:
                    continue
            s = shape_[0][i * shape_[1] + j * shape_[2]]
            r = rate[0][i * rate[1] + j * rate[2]]
            end = span[0][i * span[1] + j * span[2]]
            # N(span) is negative binomial: P(N = 0) = (r / (r + span))^s, i.e. the Lomax
            # first purchase time E1 = r expm1(-log(U) / s) exceeds span exactly when U < P(0)
            scaled = end / r
            p0 = np.exp(-s * np.log1p(scaled))
            u = rng.random()
            if not u > p0:
                continue
            buyers[n_buyers] = i * n_cols + j
            if s * scaled <= INVERSION_MEAN_MAX:
                counts[n_buyers] = negative_binomial_count(u, p0, s, end / (r + end))
            else:
                counts[n_buyers] = -1
                firsts[n_buyers] = r * np.expm1(-np.log(u) / s)
            n_buyers += 1
    K = grid.size
    per = np.zeros((n_buyers, K), dtype=np.int64)
    totals = np.empty(n_buyers, dtype=np.int64)
    for b in range(n_buyers):
        i = buyers[b] // n_cols
        j = buyers[b] - i * n_cols
        end = span[0][i * span[1] + j * span[2]]
        row = per[b]
        total = counts[b]
        if total >= 0:
            # given their number, the purchase times are independent uniforms on [0, span]
            place_uniform_times(row, total, 0.0, end, grid, equal, last, rng)
        else:
            # given the first purchase at e (and none before): lambda ~ Gamma(s + 1, r + e)
            # and Poisson(lambda (span - e)) more purchases, uniform on [e, span]
            s = shape_[0][i * shape_[1] + j * shape_[2]]
            r = rate[0][i * rate[1] + j * rate[2]]
            first = firsts[b]
            mean = rng.standard_gamma(s + 1.0) / (r + first) * (end - first)
            if not mean < POISSON_MEAN_MAX:
                raise ValueError("lam value too large")
            more = rng.poisson(mean)
            row[min(np.searchsorted(grid, first, side="left"), K - 1)] += 1
            place_uniform_times(row, more, first, end, grid, equal, last, rng)
            total = more + 1
        if with_dropout and total >= 2:
            cut = beta_geometric_cut(
                rng.random(),
                a_[0][i * a_[1] + j * a_[2]],
                b_[0][i * b_[1] + j * b_[2]],
                total,
            )
            if cut < total:  # keep the first `cut` purchases in time order
                kept = 0
                for k in range(K):
                    take = min(row[k], cut - kept)
                    row[k] = take
                    kept += take
                total = cut
        totals[b] = total
    return buyers[:n_buyers].copy(), per, totals


def poisson_periods(lam_shape, lam_rate, t_grid, rng, p_alive=None, span=None, dropout=None):
    """Sparse per-period purchase counts of a Poisson process with a gamma-distributed rate, on
    paths laid out like the broadcast of the inputs (e.g. draws x customers).

    Each path is alive with probability ``p_alive`` (None: always; the dead buy nothing); an
    alive path buys as a Poisson(``lambda``) process on ``[0, span]`` (None: the whole grid),
    ``lambda ~ Gamma(lam_shape, lam_rate)``, and, when ``dropout = (a, b)`` is given, stops
    after ``K ~ Geometric(p)`` purchases with ``p ~ Beta(a, b)`` (the BG/NBD dropout).

    Exact construction in work proportional to the paths that buy (one compiled pass).
    Marginally over lambda the count ``N`` on ``[0, span]`` is negative binomial, ``P(N = 0) =
    (rate / (rate + span))^shape``, and given ``N`` the purchase times are independent
    uniforms on ``[0, span]``. One uniform ``U`` decides whether an alive path buys (``U >
    P(N = 0)``); then ``N`` is the inverse CDF at ``U`` (sequential search) when the expected
    count ``shape span / rate`` is at most :data:`INVERSION_MEAN_MAX`; above, ``U`` gives the
    first purchase time ``E1 = rate expm1(-log(U) / shape)`` (Lomax, the same event ``E1 <
    span``), given which ``lambda ~ Gamma(shape + 1, rate + E1)`` and the later purchases are
    ``Poisson(lambda (span - E1))``, uniform on ``[E1, span]``. Times are placed one by one,
    or as a multinomial by conditional binomials above :data:`ONE_BY_ONE`. The dropout keeps
    the first ``K`` purchases in time order (count at ``t_k``: ``min(N(t_k), K)``), with ``p``
    integrated out: ``P(K > k) = B(a, b + k) / B(a, b)``, inverted from one uniform for the
    paths with ``N >= 2`` (with ``N <= 1`` it cannot bind since ``K >= 1``).

    Randomness: the draws come from ``rng`` (a ``numpy.random.Generator``, advanced in place),
    read by numba's implementation of numpy's own algorithms, path after path in C order.

    Returns ``(shape, pairs, per_period, totals)``: the broadcast shape, the flat indices (C
    order) of the paths with at least one purchase, their int64 per-period counts ``(len(pairs),
    len(t_grid))`` and their int64 totals (after the truncation).
    """
    grid = check_grid(t_grid)
    inputs = [lam_shape, lam_rate]
    if p_alive is not None:
        inputs.append(p_alive)
    if span is not None:
        inputs.append(span)
    if dropout is not None:
        inputs.extend(dropout)
    shape = np.broadcast_shapes(*(np.shape(v) for v in inputs))
    if grid.size == 0 or grid[-1] <= 0:
        return (
            shape,
            np.zeros(0, np.intp),
            np.zeros((0, grid.size), np.int64),
            np.zeros(0, np.int64),
        )
    n_cols = shape[-1] if shape else 1
    n_rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    t_max = float(grid[-1])
    one = np.ones(1)

    def strides(value):
        return (one, 0, 0) if value is None else path_strides(value, shape)

    a_, b_ = (None, None) if dropout is None else dropout
    equal, last = grid_layout(grid)
    pairs, per, totals = poisson_periods_kernel(
        n_rows, n_cols, strides(p_alive), strides(lam_shape), strides(lam_rate),
        strides(t_max if span is None else span), strides(a_), strides(b_),
        p_alive is not None, dropout is not None, grid, equal, last, rng,
    )  # fmt: skip
    return shape, pairs.astype(np.intp, copy=False), per, totals


def gamma_poisson_periods(shape_, rate, span, t_grid, rng: np.random.Generator):
    """Per-period counts over ``t_grid`` of a Poisson process on ``[0, span]`` whose rate is
    ``lambda ~ Gamma(shape_, rate)`` (1-d arrays over paths; ``span`` scalar or array, at most
    ``t_grid[-1]``): :func:`poisson_periods` without death or dropout. Returns ``(buyers,
    per_period, totals)``: the indices of the paths with a purchase, their int64 counts
    ``(len(buyers), len(t_grid))`` and their totals.
    """
    shape_ = np.asarray(shape_, dtype=float).ravel()
    _, buyers, per, totals = poisson_periods(
        shape_, np.asarray(rate, dtype=float).ravel(), t_grid, rng,
        span=np.broadcast_to(np.asarray(span, dtype=float), shape_.shape),
    )  # fmt: skip
    return buyers, per, totals


def truncated_poisson_periods(lam_shape, lam_rate, p_shape, t_grid, rng: np.random.Generator):
    """Per-period purchase counts over ``t_grid`` of active customers (1-d arrays over paths):
    a Poisson(``lambda``) process, ``lambda ~ Gamma(lam_shape, lam_rate)``, stopped after
    ``K ~ Geometric(p)`` purchases, ``p ~ Beta(*p_shape)``: :func:`poisson_periods` with the
    dropout. Returns ``(buyers, per_period)``: the indices with a purchase and their int64
    per-period counts, shape ``(len(buyers), len(t_grid))``.
    """
    lam_shape = np.asarray(lam_shape, dtype=float).ravel()
    _, buyers, per, _ = poisson_periods(
        lam_shape, np.asarray(lam_rate, dtype=float).ravel(), t_grid, rng,
        dropout=tuple(np.asarray(v, dtype=float).ravel() for v in p_shape),
    )  # fmt: skip
    return buyers, per


@numba.njit(cache=True, nogil=True, error_model="numpy")
def gamma_totals_kernel(counts, n_cols, unit_shape, rate_shape, rate_rate, rng):
    """The compiled body of :func:`gamma_period_totals` (parameters as :func:`path_strides`
    triples); paths in order, each drawing its rate, then its periods' totals in order."""
    n_paths, K = counts.shape
    out = np.zeros((n_paths, K))
    for path in range(n_paths):
        row = counts[path]
        buys = False
        for k in range(K):
            if row[k] < 0:
                raise ValueError("purchase counts must be non-negative")
            buys = buys or row[k] > 0
        if not buys:
            continue
        i = path // n_cols
        j = path - i * n_cols
        unit = unit_shape[0][i * unit_shape[1] + j * unit_shape[2]]
        nu = rng.standard_gamma(rate_shape[0][i * rate_shape[1] + j * rate_shape[2]])
        nu /= rate_rate[0][i * rate_rate[1] + j * rate_rate[2]]
        for k in range(K):
            if row[k] > 0:
                out[path, k] = rng.standard_gamma(unit * row[k]) / nu
    return out


def gamma_period_totals(counts, unit_shape, rate_shape, rate_rate, rng: np.random.Generator):
    """Per-period totals of gamma amounts with a gamma-distributed rate (the Gamma-Gamma spend
    model's sampler): each path draws ``nu ~ Gamma(rate_shape, rate_rate)`` (shape, rate) once,
    and a period with ``n`` purchases totals ``Gamma(unit_shape n, nu)`` (the sum of ``n``
    independent ``Gamma(unit_shape, nu)`` amounts); periods without purchases total 0 and
    paths without any draw nothing, so the work follows the purchasing periods (one compiled
    pass, exact in distribution).

    ``counts``: int array ``lead + (n_periods,)``; the parameters broadcast to ``lead``.
    Returns float totals of the shape of ``counts``; ValueError for a negative count.
    Randomness from ``rng`` (advanced in place), path after path in C order.
    """
    counts = np.asarray(counts)
    lead = np.broadcast_shapes(
        counts.shape[:-1], *(np.shape(v) for v in (unit_shape, rate_shape, rate_rate))
    )
    K = counts.shape[-1]
    if int(np.prod(lead)) * K == 0:
        return np.zeros(lead + (K,))
    flat = np.ascontiguousarray(np.broadcast_to(counts, lead + (K,)), dtype=np.int64)
    totals = gamma_totals_kernel(
        flat.reshape(-1, K),
        lead[-1] if lead else 1,
        *(path_strides(v, lead) for v in (unit_shape, rate_shape, rate_rate)),
        rng,
    )
    return totals.reshape(lead + (K,))


def cumulative_counts(shape, pairs, per_period) -> np.ndarray:
    """Dense cumulative counts (``shape + (n_periods,)``, int64) from the sparse form
    ``(shape, pairs, per_period)`` of the ``*_periods`` samplers: ``pairs`` flat indices into
    ``shape`` of the paths with purchases; all other paths buy nothing."""
    per_period = np.asarray(per_period)
    shape = tuple(shape)
    out = np.zeros((int(np.prod(shape)), per_period.shape[-1]), dtype=np.int64)
    out[pairs] = np.cumsum(per_period, axis=-1)
    return out.reshape(shape + per_period.shape[-1:])


def per_frequency(fn, a, b, x):
    """``fn(x)`` for a function of the frequency and the shared parameters ``a``, ``b``: when those
    are shared by all customers, evaluated once per value 0..max(x) and looked up."""
    shared = all(np.ndim(v) == 0 or np.shape(v)[-1] == 1 for v in (a, b))
    if shared and np.ndim(x) == 1 and len(x) >= 1024:
        top = float(x.max())
        index = whole_numbers(x, top, len(x))
        if index is not None:
            table = fn(np.arange(int(top) + 1, dtype=float))
            return np.take(table, index, axis=-1)
    return fn(x)


def whole_numbers(values: np.ndarray, top: float, n: int):
    """``values`` as integer indices when they are all whole numbers in [0, 4n], else None."""
    if not (0 <= top <= 4 * n + 1024):
        return None
    index = values.astype(np.intp)
    if index.min(initial=0) < 0 or not np.array_equal(index, values):
        return None
    return index
