"""Bayesian estimators in PyMC: hierarchical BG/NBD and Gamma-Gamma, their samplers and
diagnostics. Imported only when used (PyMC is an optional extra: ``clvmodels[bayes]``)."""
