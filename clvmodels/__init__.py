"""clvmodels: probabilistic customer lifetime value.

The public names are imported lazily so that ``import clvmodels`` stays fast and the heavy
optional stacks (PyMC, Dask) load only when their models are used::

    import clvmodels as clv

    tx = clv.datasets.load_cdnow_transactions()
    s = clv.rfm_summary(tx, customer_id="customer_id", datetime="date", monetary="amount",
                        observation_end="1997-09-30", time_unit="W",
                        after_observation_end="exclude")
    bg = clv.BetaGeo().fit(s)
    gg = clv.GammaGamma().fit(s)
    v = clv.lifetime_value(bg, gg, s, horizon="52W", annual_discount_rate=0.10, margin=0.3)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # data layer
    "rfm_summary": "clvmodels.data",
    "calibration_holdout_summary": "clvmodels.data",
    "discrete_summary": "clvmodels.discrete",
    # the lifetimes fitters as a second engine
    "from_lifetimes": "clvmodels.estimators.lifetimes_engine",
    # valuation
    "lifetime_value": "clvmodels.valuation",
    "predict_purchases": "clvmodels.valuation",
    "customer_equity": "clvmodels.valuation",
    "discounted_expected_residual_transactions": "clvmodels.valuation",
    "value_tiers": "clvmodels.segments",
    "rfm_segments": "clvmodels.segments",
    "clv_to_cac": "clvmodels.segments",
    "HeuristicCLV": "clvmodels.heuristic",
    # subscriptions (contractual): tables and the price per payment
    "subscription_table": "clvmodels.subscriptions",
    "table_from_survivors": "clvmodels.subscriptions",
    "SubscriptionPrice": "clvmodels.subscriptions",
    # evaluation
    "compare_models": "clvmodels.evaluation",
    # covariates
    "join_covariates": "clvmodels.covariates",
    "likelihood_ratio_test": "clvmodels.estimators.covariates",
    # persistence
    "save_model": "clvmodels.io",
    "load_model": "clvmodels.io",
    # time-varying covariates
    "TimeVaryingParetoNBD": "clvmodels.estimators.time_varying",
    "calendar_covariates": "clvmodels.calendar",
}
_SUBMODULES = {
    "families",
    "estimators",
    "registry",
    "validation",
    "optimize",
    "data",
    "discrete",
    "datasets",
    "simulate",
    "units",
    "errors",
    "valuation",
    "segments",
    "heuristic",
    "evaluation",
    "plotting",
    "io",
    "scoring",
    "distributed",
    "subscriptions",
    "plotting_contractual",
}

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])

if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from clvmodels.data import calibration_holdout_summary, rfm_summary  # noqa: F401
    from clvmodels.registry import BetaGeo, GammaGamma  # noqa: F401


def _import(module: str, name: str):
    """Import ``module`` for the public ``name``; a missing optional dependency is a
    :class:`~clvmodels.errors.MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        from clvmodels.errors import missing_extra

        converted = missing_extra(exc, f"clvmodels.{name}")
        if converted is None:
            raise
        raise converted from exc


def __getattr__(name: str):
    if name[:1].isupper() and name not in _EXPORTS:
        # the estimators (clv.BetaGeo, clv.HierarchicalBetaGeo, ...) are listed by the registry
        from clvmodels import registry

        if name in registry.public_names():
            try:
                value = registry.class_by_name(name)
            except ModuleNotFoundError as exc:
                from clvmodels.errors import missing_extra

                converted = missing_extra(exc, f"clvmodels.{name}")
                if converted is None:
                    raise
                raise converted from exc
            globals()[name] = value
            return value
    if name in _EXPORTS:
        value = getattr(_import(_EXPORTS[name], name), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = _import(f"clvmodels.{name}", name)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'clvmodels' has no attribute {name!r}")


def __dir__():
    from clvmodels import registry

    return sorted([*__all__, *registry.public_names()])
