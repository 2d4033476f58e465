"""The valuation engine: customers in chunks, each valued for every parameter draw.

:func:`value_customers` is what :func:`clvmodels.lifetime_value`, :func:`clvmodels.
customer_equity` and :func:`clvmodels.valuation.expected_cash_flows` run. It talks to the
models only through the fitted-model surface (``family_``, ``customer_params``,
``point_draws``/``param_draws``) and the family interface
(:class:`clvmodels.families.base.PurchaseFamily`/``SpendFamily``), so maximum-likelihood,
hierarchical Bayesian and lifetimes-wrapped models are valued by the same code.

The steps, each a function below:

1. settings checked (:class:`~clvmodels.valuation.spec.ValuationSpec`), draws resolved
   (:mod:`clvmodels.valuation.draws`);
2. for ``kind="expected"``/``"point"`` with parameters shared by all customers, the distinct
   rows (frequency, recency, T, monetary_value, costs, group) are valued once
   (:func:`distinct_customers`; exact, totals weight each row by its multiplicity);
3. customers are cut into chunks (:func:`chunk_length`) valued independently, in ``n_jobs``
   threads (:func:`map_chunks`): :func:`value_chunk` computes the point-estimate columns, the
   value of each draw (:func:`expected_values` or :func:`predictive_values`), the
   per-customer quantiles and the per-draw totals of the chunk;
4. the chunks' results are written into the output arrays by the calling thread, in order
   (:class:`Collector`).

P(alive) does not depend on the horizon: each chunk computes it once per parameter set and
passes it to every ``expected_purchases`` call (the families do not remember it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from clvmodels.errors import InputError
from clvmodels.families.base import PurchaseFamily
from clvmodels.families.sampling import take_flat
from clvmodels.valuation.draws import DrawSpec, ModelDraws, params_are_shared, resolve_draws
from clvmodels.valuation.spec import (
    PeriodGrid,
    ValuationSpec,
    check_model,
    check_spend_draws,
    costs_matrix,
)

__all__ = [
    "CHUNK_ELEMENTS",
    "PREDICTIVE_CHUNK_PATHS",
    "MAX_CHUNK_CUSTOMERS",
    "VALUE_COLUMNS",
    "RunSpec",
    "OutputSpec",
    "Customers",
    "ValueResult",
    "value_customers",
    "chunk_length",
    "map_chunks",
    "as_2d",
    "per_period",
    "samples_sparsely",
]

# one chunk holds at most this many draw x customer x period values (~32 MB per float array)
CHUNK_ELEMENTS = 1 << 22
# predictive chunks hold only draw x customer arrays (and the sparse buying paths): at most this
# many draw x customer paths (~8 MB per float array); larger chunks cut the per-chunk overhead
PREDICTIVE_CHUNK_PATHS = 1 << 20
MAX_CHUNK_CUSTOMERS = 50_000

VALUE_COLUMNS = (
    "clv_mean",
    "clv_median",
    "clv_lower",
    "clv_upper",
    "expected_purchases",
    "expected_spend",
    "probability_alive",
)


# --------------------------------------------------------------------------------------------
# settings of a run
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """How to run: customers per chunk (None: bounded by memory) and threads."""

    chunk_size: int | None = None
    n_jobs: int = 1

    def __post_init__(self):
        n_jobs = self.n_jobs
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise InputError(f"n_jobs must be a positive int, got {n_jobs!r}")
        if self.chunk_size is not None and int(self.chunk_size) < 1:
            raise InputError(
                f"chunk_size must be a positive number of customers, got {self.chunk_size}"
            )


@dataclass(frozen=True)
class OutputSpec:
    """What to keep besides the per-customer summary: the value draws (``keep_draws`` True,
    or ``"period"`` for per-period cash flows) and per-draw totals by group (``group_codes``,
    an int per customer in ``range(n_groups)``; None: one group)."""

    keep_draws: bool | str = False
    group_codes: np.ndarray | None = None
    n_groups: int = 1

    def __post_init__(self):
        if self.keep_draws not in (False, True, "period"):
            raise InputError(
                f"return_draws must be False, True or 'period', got {self.keep_draws!r}"
            )

    @property
    def keep_periods(self) -> bool:
        return self.keep_draws == "period"


def chunk_length(requested: int | None, n_draws: int, n_periods: int, elements: int) -> int:
    """Customers per chunk: ``requested``, or as many as keep a chunk under ``elements`` values
    of draws x periods per customer (at least 64, at most :data:`MAX_CHUNK_CUSTOMERS`)."""
    if requested is not None:
        return int(requested)
    per_customer = max(1, n_draws) * max(1, n_periods)
    return int(max(64, min(MAX_CHUNK_CUSTOMERS, elements // per_customer)))


def map_chunks(fn: Callable[[Any], Any], tasks: Iterable[Any], n_jobs: int) -> Iterator[Any]:
    """Yield ``fn(task)`` for every task, in order; in ``n_jobs`` threads when > 1.

    ``tasks`` is consumed by the calling thread (build the chunks' inputs there, lazily); only
    ``fn`` runs in the workers. The compiled samplers, numpy's random generators and array
    loops release the GIL, so threads run chunks in parallel; each chunk has its own random stream and ``fn`` shares no
    mutable state, so results do not depend on ``n_jobs``.
    """
    if n_jobs == 1:
        for task in tasks:
            yield fn(task)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        # a bounded window of chunks in flight keeps memory at about 2 n_jobs chunks
        pending = []
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= 2 * n_jobs:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


# --------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------
def as_2d(value, n_draws: int, n_customers: int) -> np.ndarray:
    """A family result as a (draws, customers) array (broadcast, not copied)."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim < 2:
        arr = arr.reshape((1,) * (2 - arr.ndim) + arr.shape)
    return np.broadcast_to(arr, (max(n_draws, arr.shape[0]), n_customers))


def per_period(cumulative: np.ndarray) -> np.ndarray:
    """Per-period values from cumulative ones along the last axis."""
    return np.diff(cumulative, axis=-1, prepend=np.zeros_like(cumulative[..., :1]))


def samples_sparsely(family: PurchaseFamily) -> bool:
    """True when the family draws sparse purchase periods without the dense draws x customers
    x periods array (it overrides the base class's derivation from the dense sampler)."""
    return (
        type(family).sample_future_purchase_periods
        is not PurchaseFamily.sample_future_purchase_periods
    )


@dataclass(frozen=True)
class Customers:
    """A block of customers: their rows of the summary, the arrays the families read (the
    purchase family's ``customer_columns``, then the spend family's), the group of each, its
    costs per period (or None; ``own_costs`` when they differ between customers) and, for
    distinct rows, its multiplicity."""

    summary: pd.DataFrame
    purchase: tuple[np.ndarray, ...]
    spend: tuple[np.ndarray, ...]
    codes: np.ndarray
    costs: np.ndarray | None = None
    own_costs: bool = False
    weights: np.ndarray | None = None

    @classmethod
    def from_summary(
        cls, summary: pd.DataFrame, families, codes, costs, n_periods: int
    ) -> Customers:
        """The customers of ``summary`` for ``families`` (purchase family, spend family)."""
        n = len(summary)
        purchase_family, spend_family = families
        codes = np.zeros(n, dtype=np.intp) if codes is None else np.asarray(codes)
        own_costs = costs is not None and costs.shape[0] > 1
        costs = None if costs is None else np.broadcast_to(costs, (n, n_periods))
        return cls(
            summary,
            purchase_family.customer_arrays(summary),
            spend_family.customer_arrays(summary),
            codes,
            costs,
            own_costs,
        )

    def __len__(self) -> int:
        return len(self.codes)

    def rows(self, index) -> Customers:
        """The customers at ``index`` (a slice or an integer array)."""

        def take(a):
            return None if a is None else a[index]

        return Customers(
            self.summary.iloc[index],
            tuple(a[index] for a in self.purchase),
            tuple(a[index] for a in self.spend),
            self.codes[index],
            take(self.costs),
            self.own_costs,
            take(self.weights),
        )


def distinct_customers(customers: Customers) -> tuple[Customers, np.ndarray | None]:
    """The distinct rows (the families' customer arrays, group[, costs]) with their
    multiplicities as weights, and the map customer -> distinct row (None when the rows are
    distinct and already in order).

    The distinct rows are sorted by the customer arrays (the purchase family's first column,
    e.g. the frequency, first), so a chunk holds neighbouring histories: the families evaluate
    what depends on a few leading columns once per distinct value of the chunk (BG/NBD: the
    hypergeometric term of each frequency along the chunk's T values).
    """
    keys = [*customers.purchase, *customers.spend, customers.codes]
    if customers.own_costs:
        keys.extend(customers.costs.T)
    frame = pd.DataFrame({i: np.asarray(c) for i, c in enumerate(keys)})
    inverse = frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy()
    _, first, counts = np.unique(inverse, return_index=True, return_counts=True)
    if len(first) == len(customers) and np.array_equal(first, np.arange(len(first))):
        return customers, None
    return replace(customers.rows(first), weights=counts.astype(float)), inverse


# --------------------------------------------------------------------------------------------
# one chunk
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkPlan:
    """Everything a chunk reads (never writes): models, settings, grid and draws."""

    purchase_model: Any
    spend_model: Any
    spec: ValuationSpec
    grid: PeriodGrid
    draws: ModelDraws
    point: ModelDraws
    output: OutputSpec

    @property
    def n_draws(self) -> int:
        return self.draws.n_draws


@dataclass(frozen=True)
class PointEstimate:
    """A chunk's parameters at the point estimate and what the point columns need."""

    purchase: dict
    spend: dict
    p_alive: np.ndarray
    expected_spend: np.ndarray


@dataclass(frozen=True)
class ChunkValues:
    """A chunk's per-customer columns, per-draw totals by group and optional kept draws."""

    columns: dict[str, np.ndarray]
    totals: np.ndarray
    kept: np.ndarray | None


@dataclass(frozen=True)
class PurchasePaths:
    """Sampled future purchases in sparse form: ``n_rows`` the draw axis of the sample
    (n_draws or 1), ``pairs`` the flat indices into ``(n_rows, n_customers)`` of the paths
    with at least one purchase, ``per_period`` their counts per period."""

    n_rows: int
    pairs: np.ndarray
    per_period: np.ndarray

    def for_draws(self, n_draws: int, n_customers: int) -> PurchasePaths:
        """The same paths for ``n_draws`` draws (one shared sample repeated per draw)."""
        if self.n_rows >= n_draws:
            return self
        pairs = (np.arange(n_draws)[:, None] * n_customers + self.pairs[None, :]).ravel()
        return PurchasePaths(n_draws, pairs, np.tile(self.per_period, (n_draws, 1)))


def point_estimate(plan: ChunkPlan, block: Customers) -> PointEstimate:
    purchase = plan.purchase_model.customer_params(block.summary, plan.point.purchase)
    spend = plan.spend_model.customer_params(block.summary, plan.point.spend)
    p_alive = plan.purchase_model.family_.probability_alive(purchase, *block.purchase)
    expected_spend = plan.spend_model.family_.expected_spend(spend, *block.spend)
    return PointEstimate(purchase, spend, p_alive, expected_spend)


def point_columns(plan: ChunkPlan, block: Customers, point: PointEstimate) -> dict:
    """``probability_alive``, ``expected_spend`` and ``expected_purchases`` (over the whole
    horizon) at the point estimate."""
    c = len(block)
    if plan.grid.n_periods:
        purchases = plan.purchase_model.family_.expected_purchases(
            point.purchase, *block.purchase, plan.grid.horizon, p_alive=point.p_alive
        )
        purchases = as_2d(purchases, 1, c)[0]
    else:
        purchases = np.zeros(c)
    return {
        "expected_purchases": purchases,
        "expected_spend": as_2d(point.expected_spend, 1, c)[0],
        "probability_alive": as_2d(point.p_alive, 1, c)[0],
    }


def expected_values(plan: ChunkPlan, block: Customers, point: PointEstimate):
    """``(values (D, c), per-period values (D, c, K) or None)``: the conditional expected
    discounted value ``margin E[Z] sum_k d_k E[X_k]`` of each draw."""
    family = plan.purchase_model.family_
    c, D = len(block), plan.n_draws
    if plan.spec.kind == "point":  # the draws are the point estimate
        params, p_alive, spend = point.purchase, point.p_alive, point.expected_spend
    else:
        params = plan.purchase_model.customer_params(block.summary, plan.draws.purchase)
        p_alive = family.probability_alive(params, *block.purchase)
        spend_params = plan.spend_model.customer_params(block.summary, plan.draws.spend)
        spend = plan.spend_model.family_.expected_spend(spend_params, *block.spend)
    spend = as_2d(spend, 1, c)
    margin = plan.spec.margin
    by_period = None
    if plan.output.keep_periods:
        cumulative = np.stack(
            [
                as_2d(family.expected_purchases(params, *block.purchase, float(t), p_alive), 1, c)
                for t in plan.grid.ends
            ],
            axis=-1,
        )
        purchases = per_period(cumulative)  # (D_p, c, K)
        # einsum's own loop, not BLAS (see spend_of_buyers)
        discounted = np.einsum("dck,k->dc", purchases, plan.grid.discount)
        by_period = margin * spend[..., None] * purchases * plan.grid.discount
    else:
        discounted = discounted_expected_purchases(plan, block, params, p_alive)
    values = margin * np.broadcast_to(spend, (D, c)) * np.broadcast_to(discounted, (D, c))
    return values, by_period


def discounted_expected_purchases(plan: ChunkPlan, block: Customers, params, p_alive):
    """``sum_k d_k (E_k - E_{k-1})`` per draw and customer, shape ``(D_p, c)``, where ``E_k``
    is the expected number of purchases up to period end ``k`` and ``d_k`` its discount factor.

    Summed by parts as ``sum_k (d_k - d_{k+1}) E_k`` (``d_{K+1} = 0``), one period end at a
    time: no draws x customers x periods array (so chunks can be ``n_periods`` times larger
    than with per-period values) and one multiply-add per end.
    """
    family = plan.purchase_model.family_
    discount = np.asarray(plan.grid.discount, dtype=float)
    weights = discount - np.append(discount[1:], 0.0)
    ends = np.asarray(plan.grid.ends, dtype=float)
    values = family.discounted_expected_purchases(
        params, *block.purchase, ends, weights, p_alive=p_alive
    )
    return as_2d(values, 1, len(block))


def sample_purchase_paths(plan: ChunkPlan, block: Customers, params, rng) -> PurchasePaths:
    """The family's sparse sample of future purchases per period, checked for shape."""
    family = plan.purchase_model.family_
    ends = plan.grid.ends
    shape, pairs, counts = family.sample_future_purchase_periods(params, *block.purchase, ends, rng)
    shape = (1,) * (2 - len(shape)) + tuple(shape)
    counts = np.asarray(counts)
    if len(shape) != 2 or shape[1] != len(block) or counts.shape != (len(pairs), len(ends)):
        raise RuntimeError(
            f"{type(family).__name__}.sample_future_purchase_periods returned shape {shape} and "
            f"counts {counts.shape}; expected (n_draws, {len(block)}) and (n_pairs, {len(ends)})"
        )
    return PurchasePaths(shape[0], np.asarray(pairs), counts)


def spend_of_buyers(plan: ChunkPlan, block: Customers, params, paths: PurchasePaths, rng):
    """``(values (D, c), per-period (D, c, K) or None)``: the discounted spend of sampled
    purchase paths times the margin.

    Only the (draw, customer) pairs with at least one future purchase are passed to the spend
    family's ``sample_future_spend`` (as 1-d arrays of parameters and customers, which the
    interface broadcasts like any other shape); the others spend 0 whatever their latent spend
    level, so this is exact in distribution and saves most of the work when many customers
    have lapsed.
    """
    c, D = len(block), plan.n_draws
    paths = paths.for_draws(D, c)
    K = plan.grid.n_periods
    values = np.zeros((D, c))
    by_period = np.zeros((D, c, K)) if plan.output.keep_periods else None
    buyers = paths.pairs
    if len(buyers) == 0:
        return values, by_period
    flat = {name: take_flat(value, (D, c), buyers) for name, value in params.items()}
    customers = buyers % c
    family = plan.spend_model.family_
    drawn = np.asarray(
        family.sample_future_spend(
            flat, *(a[customers] for a in block.spend), paths.per_period, rng
        )
    )
    if drawn.shape != paths.per_period.shape:
        raise RuntimeError(
            f"{type(family).__name__}.sample_future_spend returned shape {drawn.shape} for "
            f"counts of shape {paths.per_period.shape}"
        )
    # the margin is applied to the buying paths only (the others are 0); einsum's own loop,
    # not BLAS: a (paths x periods) by (periods) product is too thin for BLAS's threads,
    # whose spin-waiting cost ~20% of the CPU time next to the valuation threads
    margin = plan.spec.margin
    values.reshape(-1)[buyers] = np.einsum("pk,k->p", drawn, plan.grid.discount) * margin
    if by_period is not None:
        by_period.reshape(-1, K)[buyers] = drawn * plan.grid.discount * margin
    return values, by_period


def predictive_values(plan: ChunkPlan, block: Customers, rng: np.random.Generator):
    """``(values (D, c), per-period values (D, c, K) or None)``: draws of the value each
    customer will produce (parameters, latent state, purchases and spend all drawn)."""
    purchase = plan.purchase_model.customer_params(block.summary, plan.draws.purchase)
    spend = plan.spend_model.customer_params(block.summary, plan.draws.spend)
    paths = sample_purchase_paths(plan, block, purchase, rng)
    return spend_of_buyers(plan, block, spend, paths, rng)


def group_totals(values: np.ndarray, block: Customers, n_groups: int) -> np.ndarray:
    """Per-draw totals ``(D, n_groups)`` of the chunk's values (rows weighted by their
    multiplicity): a plain sum over customers when there is one group and no weights (a
    matrix product with a one-hot matrix costs several times more)."""
    if n_groups == 1 and block.weights is None:
        return values.sum(axis=1, keepdims=True)
    weights = np.ones(len(block)) if block.weights is None else block.weights
    onehot = np.zeros((len(block), n_groups))
    onehot[np.arange(len(block)), block.codes] = weights
    return values @ onehot


def value_summary(values: np.ndarray, kind: str, quantiles: tuple[float, float]) -> dict:
    """Mean, median and interval of each customer's values over the draws."""
    if kind == "point":
        mean = values[0]
        return {"clv_mean": mean, "clv_median": mean, "clv_lower": mean, "clv_upper": mean}
    median, lower, upper = np.quantile(values, [0.5, *quantiles], axis=0)
    return {
        "clv_mean": values.mean(axis=0),
        "clv_median": median,
        "clv_lower": lower,
        "clv_upper": upper,
    }


def value_chunk(plan: ChunkPlan, block: Customers, seed) -> ChunkValues:
    """Value one chunk of customers (pure: reads ``plan`` and ``block``, returns arrays)."""
    c, D, K = len(block), plan.n_draws, plan.grid.n_periods
    point = point_estimate(plan, block)
    columns = point_columns(plan, block, point)
    if K == 0:
        values, by_period = np.zeros((D, c)), np.zeros((D, c, 0))
    elif plan.spec.kind == "predictive":
        values, by_period = predictive_values(plan, block, np.random.default_rng(seed))
    else:
        values, by_period = expected_values(plan, block, point)
    if block.costs is not None:
        values = values - (block.costs @ plan.grid.discount)[None, :]
        if by_period is not None:
            by_period = by_period - (block.costs * plan.grid.discount)[None]
    values = np.broadcast_to(values, (D, c))
    columns.update(value_summary(values, plan.spec.kind, plan.spec.quantiles))
    kept = None
    if plan.output.keep_periods:
        kept = np.broadcast_to(by_period, (D, c, K))
    elif plan.output.keep_draws:
        kept = values
    return ChunkValues(columns, group_totals(values, block, plan.output.n_groups), kept)


# --------------------------------------------------------------------------------------------
# all chunks
# --------------------------------------------------------------------------------------------
@dataclass
class ValueResult:
    frame: pd.DataFrame
    totals: np.ndarray  # (n_draws, n_groups)
    draws: np.ndarray | None  # (n_draws, n_customers[, n_periods])
    grid: PeriodGrid


class Collector:
    """The output arrays of a valuation, filled chunk by chunk by the calling thread."""

    def __init__(self, n: int, plan: ChunkPlan):
        D, K = plan.n_draws, plan.grid.n_periods
        self.columns = {name: np.empty(n) for name in VALUE_COLUMNS}
        self.totals = np.zeros((D, plan.output.n_groups))
        self.kept = None
        if plan.output.keep_periods:
            self.kept = np.empty((D, n, K))
        elif plan.output.keep_draws:
            self.kept = np.empty((D, n))

    def add(self, rows: slice, chunk: ChunkValues) -> None:
        for name, values in chunk.columns.items():
            self.columns[name][rows] = values
        self.totals += chunk.totals
        if self.kept is not None:
            self.kept[:, rows] = chunk.kept

    def expand(self, inverse: np.ndarray | None) -> None:
        """Copy the values of distinct rows back to every customer."""
        if inverse is None:
            return
        self.columns = {name: column[inverse] for name, column in self.columns.items()}
        if self.kept is not None:
            self.kept = self.kept[:, inverse]


def finished_frame(collector: Collector, summary: pd.DataFrame, plan: ChunkPlan) -> pd.DataFrame:
    """The per-customer frame, checked for non-finite values, with the settings as attrs."""
    frame = pd.DataFrame(collector.columns, index=summary.index)[list(VALUE_COLUMNS)]
    bad = ~np.isfinite(frame.to_numpy())
    if bad.any():
        rows = bad.any(axis=1)
        raise RuntimeError(
            f"valuation produced non-finite values for {int(rows.sum())} customers, e.g.\n"
            f"{summary[rows].head().to_string()}\nthis is a bug in the model's math; please report"
        )
    grid = plan.grid
    frame.attrs.update(
        {
            "kind": plan.spec.kind,
            "interval": float(plan.spec.interval),
            "horizon": grid.horizon,
            "period": grid.period,
            "period_discount_rate": grid.rate,
            "time_unit": grid.unit,
            "n_draws": plan.n_draws,
        }
    )
    return frame


def plan_valuation(purchase_model, spend_model, summary, spec, draws: DrawSpec, output):
    """Check models, summary and settings; resolve the grid, costs and draws."""
    check_model(purchase_model, "purchase_model")
    check_model(spend_model, "spend_model")
    families = (purchase_model.family_, spend_model.family_)
    for family in families:
        family.validate_summary(summary)
    purchase_model.check_unit(summary)
    grid = spec.grid(purchase_model.time_unit_)
    costs = costs_matrix(spec.costs, summary, grid)
    point = ModelDraws(purchase_model.point_draws(), spend_model.point_draws())
    model_draws = resolve_draws(purchase_model, spend_model, spec.kind, draws)
    check_spend_draws(spend_model, model_draws.spend)
    plan = ChunkPlan(purchase_model, spend_model, spec, grid, model_draws, point, output)
    customers = Customers.from_summary(summary, families, output.group_codes, costs, grid.n_periods)
    return plan, customers


def value_customers(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    spec: ValuationSpec,
    draws: DrawSpec,
    run: RunSpec,
    output: OutputSpec,
) -> ValueResult:
    """Value every customer of ``summary`` (see the module docstring for the steps)."""
    plan, customers = plan_valuation(purchase_model, spend_model, summary, spec, draws, output)
    inverse = None
    if (
        spec.kind != "predictive"
        and len(customers) > 1
        and params_are_shared(purchase_model, spend_model, summary, plan.draws)
    ):
        customers, inverse = distinct_customers(customers)
    n, D, K = len(customers), plan.n_draws, plan.grid.n_periods
    if (
        spec.kind == "predictive"
        and not output.keep_periods
        and samples_sparsely(purchase_model.family_)
    ):
        # no dense draws x customers x periods array is built (sparse purchase paths)
        chunk = chunk_length(run.chunk_size, D, 1, PREDICTIVE_CHUNK_PATHS)
    elif spec.kind != "predictive" and not output.keep_periods:
        # expected values are accumulated one period end at a time
        chunk = chunk_length(run.chunk_size, D, 1, CHUNK_ELEMENTS)
    else:
        chunk = chunk_length(run.chunk_size, D, K, CHUNK_ELEMENTS)
    n_chunks = -(-n // chunk)
    if spec.kind == "predictive" and K:
        seeds = draws.chunk_seeds(n_chunks)
    else:
        seeds = [None] * n_chunks

    def rows(b: int) -> slice:
        return slice(b * chunk, min(n, (b + 1) * chunk))

    tasks = ((customers.rows(rows(b)), seeds[b]) for b in range(n_chunks))
    collector = Collector(n, plan)
    for b, values in enumerate(
        map_chunks(lambda task: value_chunk(plan, *task), tasks, run.n_jobs)
    ):
        collector.add(rows(b), values)
    collector.expand(inverse)
    frame = finished_frame(collector, summary, plan)
    return ValueResult(frame, collector.totals, collector.kept, plan.grid)
