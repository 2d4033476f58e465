"""Parameter draws of the purchase and spend models, and the seeds of a valuation.

``draws`` is an int ``n`` (each model's ``param_draws(n, seed=...)`` is called), or given
explicitly: a pair ``(purchase_draws, spend_draws)`` (or a dict with keys ``"purchase"`` and
``"spend"``) of DataFrames in the layout of ``param_draws``, used as they are. Draw ``d`` of the
purchase model is paired with draw ``d`` of the spend model; a one-row table is broadcast
against the other.

Randomness: ``random_seed`` seeds a ``numpy.random.SeedSequence``; the parameter draws use its
first two children, chunk ``b`` of the predictive simulation uses child ``b + 2``, as the seed
of the chunk's ``numpy.random.default_rng`` (PCG64). The compiled samplers of
:mod:`clvmodels.families.sampling` draw from that same Generator (numba runs numpy's own
algorithms on its bit generator), path after path in a fixed order, so a valuation is a
function of ``random_seed`` and the chunk size alone: the same for any ``n_jobs``, and chunks
are independent streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from clvmodels.errors import InputError

__all__ = ["DrawSpec", "ModelDraws", "draw_table", "resolve_draws", "params_are_shared"]


@dataclass(frozen=True)
class DrawSpec:
    """How many parameter draws (or which) and the seed of everything random."""

    draws: Any = 200
    random_seed: Any = None
    #: the root of the valuation's seeds (built from ``random_seed``)
    seeds: np.random.SeedSequence = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "seeds", np.random.SeedSequence(self.random_seed))

    def parameter_seeds(self) -> list[np.random.SeedSequence]:
        """The seeds of the purchase and spend parameter draws (the first two children)."""
        return [np.random.SeedSequence(self.seeds.entropy, spawn_key=(i,)) for i in (0, 1)]

    def chunk_seeds(self, n_chunks: int) -> list[np.random.SeedSequence]:
        """The seed of the predictive simulation of each chunk (children 2, 3, ...)."""
        return [
            np.random.SeedSequence(self.seeds.entropy, spawn_key=(i,))
            for i in range(2, 2 + n_chunks)
        ]


@dataclass(frozen=True)
class ModelDraws:
    """The draws tables of the purchase and the spend model (spend None when not valued)."""

    purchase: pd.DataFrame
    spend: pd.DataFrame | None = None

    @property
    def n_draws(self) -> int:
        return max(len(self.purchase), len(self.spend) if self.spend is not None else 0)


def draw_table(model, draws, seed_seq: np.random.SeedSequence, what: str) -> pd.DataFrame:
    """``draws`` as a draws table: a given DataFrame as is, an int via ``model.param_draws``."""
    if isinstance(draws, pd.DataFrame):
        if len(draws) == 0:
            raise InputError(f"the {what} draws table is empty")
        return draws
    if isinstance(draws, bool) or not isinstance(draws, Real) or int(draws) != draws or draws < 1:
        raise InputError(
            f"draws must be a positive int or explicit draw tables, got {draws!r} for the {what}"
        )
    seed = int(seed_seq.generate_state(1)[0])
    return model.param_draws(int(draws), seed=seed)


def _split(draws):
    """(purchase part, spend part) of the ``draws`` argument."""
    if isinstance(draws, dict):
        unknown = set(draws) - {"purchase", "spend"}
        if unknown:
            raise InputError(f"draws dict keys must be 'purchase' and 'spend', got {sorted(draws)}")
        return draws.get("purchase"), draws.get("spend")
    if isinstance(draws, tuple | list):
        if len(draws) != 2:
            raise InputError("draws as a sequence must be (purchase_draws, spend_draws)")
        return tuple(draws)
    return draws, draws


def resolve_draws(purchase_model, spend_model, kind: str, spec: DrawSpec) -> ModelDraws:
    """The draws tables valued for ``kind``: the point estimates for ``"point"``."""
    if kind == "point":
        spend = spend_model.point_draws() if spend_model is not None else None
        return ModelDraws(purchase_model.point_draws(), spend)
    p_in, s_in = _split(spec.draws)
    if p_in is None:
        raise InputError("draws for the purchase model are missing")
    seeds = spec.parameter_seeds()
    p_draws = draw_table(purchase_model, p_in, seeds[0], "purchase model")
    if spend_model is None:
        return ModelDraws(p_draws)
    if s_in is None:
        raise InputError("draws for the spend model are missing")
    if isinstance(s_in, Real) and isinstance(p_in, pd.DataFrame) and not isinstance(s_in, bool):
        s_in = int(s_in)
    s_draws = draw_table(spend_model, s_in, seeds[1], "spend model")
    n_p, n_s = len(p_draws), len(s_draws)
    if n_p != n_s and 1 not in (n_p, n_s):
        raise InputError(
            f"the purchase model has {n_p} draws and the spend model {n_s}; draw d of one "
            "is paired with draw d of the other, so give the same number (or a single row)"
        )
    return ModelDraws(p_draws, s_draws)


def params_are_shared(purchase_model, spend_model, summary: pd.DataFrame, draws: ModelDraws):
    """True when both models give every customer the same parameters (no grouping): their
    ``customer_params`` arrays have a customer axis of length 1."""
    probe = summary.iloc[:2]
    for model, table in ((purchase_model, draws.purchase), (spend_model, draws.spend)):
        if model is None:
            continue
        params = model.customer_params(probe, table.iloc[:1])
        if any(np.ndim(v) >= 2 and np.shape(v)[-1] != 1 for v in params.values()):
            return False
    return True
