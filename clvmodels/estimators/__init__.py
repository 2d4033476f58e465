"""Estimators: they hold a model family (:mod:`clvmodels.families`) and own the fitting.

* :mod:`clvmodels.estimators.mle`: maximum likelihood for any family, with asymptotic and
  bootstrap parameter draws;
* :mod:`clvmodels.estimators.lifetimes_engine`: the ``lifetimes`` fitters as a second engine;
* :mod:`clvmodels.estimators.bayes`: hierarchical Bayesian models in PyMC.
"""
