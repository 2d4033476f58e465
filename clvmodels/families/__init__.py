"""Model families: each model's math, written once, in one public file.

See :mod:`clvmodels.families.base` for the interface and ``docs/architecture.md`` for how a
family is used by the estimators and everything downstream.
"""
