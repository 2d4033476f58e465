"""Every model, one line each: its command-line name, its public estimator and its family.

A new maximum-likelihood model is a family file (:mod:`clvmodels.families`) plus one line in
``MAXIMUM_LIKELIHOOD`` below: the estimator class (``clv.<Name>``), the CLI's ``--model`` choice,
model files, valuation, evaluation, plots and Dask scoring all follow from it. Bayesian
estimators are classes of their own (:mod:`clvmodels.estimators.bayes`) and are listed in
``BAYESIAN`` by module, so PyMC is imported only when one is used.

The maximum-likelihood classes are built here once, at import, from their entries
(:func:`maximum_likelihood_class`) and are reachable as ``clvmodels.registry.<Name>`` and
``clvmodels.<Name>``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType

from clvmodels.estimators.mle import PurchaseModel, SpendModel
from clvmodels.families.base import Family
from clvmodels.families.beta_discrete_weibull import BetaDiscreteWeibullFamily
from clvmodels.families.bg_bb import BetaGeoBetaBinomFamily
from clvmodels.families.bg_cnbd import BetaGeoCNBDFamily
from clvmodels.families.bg_nbd import BetaGeoNBDFamily
from clvmodels.families.gamma_gamma import GammaGammaFamily
from clvmodels.families.ggompertz_nbd import GGompertzNBDFamily
from clvmodels.families.mbg_cnbd import ModifiedBetaGeoCNBDFamily
from clvmodels.families.mbg_nbd import ModifiedBetaGeoNBDFamily
from clvmodels.families.pareto_nbd import ParetoNBDFamily
from clvmodels.families.shifted_beta_geo import ShiftedBetaGeoFamily


@dataclass(frozen=True)
class MaximumLikelihoodEntry:
    """A family fitted by maximum likelihood: ``name`` is the public class name
    (``clv.BetaGeo``), ``cli_name`` the command line's ``--model``/``--spend`` choice."""

    cli_name: str
    name: str
    family: type[Family]
    lifetimes_fitter: str | None = None

    @property
    def kind(self) -> str:
        return self.family.kind


@dataclass(frozen=True)
class BayesianEntry:
    """A Bayesian estimator class, imported from ``module`` when first used."""

    cli_name: str
    name: str
    kind: str
    module: str


MAXIMUM_LIKELIHOOD: tuple[MaximumLikelihoodEntry, ...] = (
    MaximumLikelihoodEntry("bgnbd", "BetaGeo", BetaGeoNBDFamily, "BetaGeoFitter"),
    MaximumLikelihoodEntry("pareto", "ParetoNBD", ParetoNBDFamily, "ParetoNBDFitter"),
    MaximumLikelihoodEntry(
        "mbgnbd", "ModifiedBetaGeo", ModifiedBetaGeoNBDFamily, "ModifiedBetaGeoFitter"
    ),
    MaximumLikelihoodEntry("bgcnbd", "BetaGeoCNBD", BetaGeoCNBDFamily),
    MaximumLikelihoodEntry("mbgcnbd", "ModifiedBetaGeoCNBD", ModifiedBetaGeoCNBDFamily),
    MaximumLikelihoodEntry("ggomnbd", "GGompertzNBD", GGompertzNBDFamily),
    MaximumLikelihoodEntry(
        "bgbb", "BetaGeoBetaBinom", BetaGeoBetaBinomFamily, "BetaGeoBetaBinomFitter"
    ),
    MaximumLikelihoodEntry("sbg", "ShiftedBetaGeo", ShiftedBetaGeoFamily),
    MaximumLikelihoodEntry("bdw", "BetaDiscreteWeibull", BetaDiscreteWeibullFamily),
    MaximumLikelihoodEntry("gamma-gamma", "GammaGamma", GammaGammaFamily, "GammaGammaFitter"),
)

BAYESIAN: tuple[BayesianEntry, ...] = (
    BayesianEntry(
        "hierarchical",
        "HierarchicalBetaGeo",
        "purchase",
        "clvmodels.estimators.bayes.hierarchical_beta_geo",
    ),
    BayesianEntry(
        "hierarchical",
        "HierarchicalGammaGamma",
        "spend",
        "clvmodels.estimators.bayes.hierarchical_gamma_gamma",
    ),
    BayesianEntry(
        "hierarchical-sbg",
        "HierarchicalShiftedBetaGeo",
        "purchase",
        "clvmodels.estimators.bayes.hierarchical_shifted_beta_geo",
    ),
)


def maximum_likelihood_class(entry: MaximumLikelihoodEntry) -> type:
    """The estimator class of an entry: :class:`~clvmodels.estimators.mle.PurchaseModel` or
    :class:`~clvmodels.estimators.mle.SpendModel` bound to the entry's family."""
    base = PurchaseModel if entry.kind == "purchase" else SpendModel
    family = entry.family
    settings = ", ".join(f"{name}=None" for name in family.settings_grid)
    doc = (
        f"{family.label} fitted by maximum likelihood.\n\n"
        f"Construct as ``{entry.name}({settings + ', ' if settings else ''}engine='native')``; "
        f"the model's math is :class:`{family.__module__}.{family.__name__}`.\n\n"
        f"{family.__doc__ or ''}\n\n{base.__doc__ or ''}\n\n"
        f"{base.__mro__[1].__doc__ or ''}"
    )
    return type(
        entry.name,
        (base,),
        {
            "family_class": family,
            "lifetimes_fitter": entry.lifetimes_fitter,
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": entry.name,
        },
    )


ESTIMATORS = MappingProxyType({e.name: maximum_likelihood_class(e) for e in MAXIMUM_LIKELIHOOD})


def __getattr__(name: str):
    if name in ESTIMATORS:
        return ESTIMATORS[name]
    raise AttributeError(f"module 'clvmodels.registry' has no attribute {name!r}")


def entries() -> tuple[MaximumLikelihoodEntry | BayesianEntry, ...]:
    """Every model: the maximum-likelihood ones, then the Bayesian ones."""
    return MAXIMUM_LIKELIHOOD + BAYESIAN


def public_names() -> list[str]:
    """The public estimator names (``clv.<name>``)."""
    return [e.name for e in entries()]


def class_by_name(name: str) -> type:
    """The estimator class named ``name`` (e.g. ``"BetaGeo"``); KeyError when unknown."""
    if name in ESTIMATORS:
        return ESTIMATORS[name]
    for entry in BAYESIAN:
        if entry.name == name:
            return getattr(importlib.import_module(entry.module), entry.name)
    raise KeyError(name)


def purchase_model_names() -> list[str]:
    """The command line's purchase model choices."""
    return [e.cli_name for e in entries() if e.kind == "purchase"]


def spend_model_names() -> list[str]:
    """The command line's spend model choices."""
    return [e.cli_name for e in entries() if e.kind == "spend"]


def maximum_likelihood_purchase_names() -> list[str]:
    """The purchase models fitted by maximum likelihood (command-line names)."""
    return [e.cli_name for e in MAXIMUM_LIKELIHOOD if e.kind == "purchase"]


def estimator_class(kind: str, cli_name: str) -> type:
    """The estimator class of the command line's ``--model`` (kind "purchase") or ``--spend``
    (kind "spend") choice; KeyError when unknown."""
    for entry in entries():
        if entry.kind == kind and entry.cli_name == cli_name:
            return class_by_name(entry.name)
    raise KeyError(f"no {kind} model named {cli_name!r}")


def entry_for_lifetimes_fitter(fitter_name: str) -> MaximumLikelihoodEntry | None:
    """The entry whose ``lifetimes`` fitter is ``fitter_name`` (e.g. "BetaGeoFitter")."""
    for entry in MAXIMUM_LIKELIHOOD:
        if entry.lifetimes_fitter == fitter_name:
            return entry
    return None
