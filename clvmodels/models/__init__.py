"""Purchase models (BG/NBD, MBG/NBD, Pareto/NBD), spend models (Gamma-Gamma), their
hierarchical Bayesian versions, and the shared base contract (:mod:`clvmodels.models.base`)."""
