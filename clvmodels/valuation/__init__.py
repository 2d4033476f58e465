"""Discounted-cash-flow customer lifetime value with uncertainty intervals.

Everything here goes through the fitted-model surface (``family_``, ``customer_params``,
``param_draws``, ``point_draws``) and the family interface of :mod:`clvmodels.families.base`,
so a maximum-likelihood model, a hierarchical Bayesian one and a lifetimes-wrapped one are
valued by the same code.

The package, in reading order:

* :mod:`~clvmodels.valuation.spec`: the settings (horizon and period grid, discounting, margin,
  costs, interval, kind) in a frozen :class:`ValuationSpec`;
* :mod:`~clvmodels.valuation.draws`: parameter draws and seeds (:class:`DrawSpec`);
* :mod:`~clvmodels.valuation.engine`: customers in chunks x draws, in threads;
* :mod:`~clvmodels.valuation.summaries`: :func:`lifetime_value`, :func:`customer_equity`,
  :func:`expected_cash_flows`;
* :mod:`~clvmodels.valuation.purchases`: :func:`predict_purchases`;
* :mod:`~clvmodels.valuation.calibration`: PIT values and interval coverage;
* :mod:`~clvmodels.valuation.dert`: :func:`discounted_expected_residual_transactions`.

Cash flows
----------
The horizon ``H`` is cut into periods of length ``p`` (both calendar strings such as
``"52W"``/``"1M"``, or numbers in the model's time unit; converted once with
:func:`clvmodels.units.to_unit`). The period ends are ``t_k = k p`` for ``k = 1..K`` with
``K = floor(H / p)``, plus ``t_{K+1} = H`` when ``H`` is not a whole number of periods (a last,
partial period). A zero horizon has no period and every value is 0.

For customer ``i`` the cash flow of period ``k`` is ``margin * S_ik - c_ik`` where ``S_ik`` is the
customer's spend in ``(T + t_{k-1}, T + t_k]`` and ``c_ik`` the optional cost. It is discounted
at the end of its period (the convention of lifetimes' ``customer_lifetime_value``):

    CLV_i = sum_k (margin * S_ik - c_ik) / (1 + i_p) ** (t_k / p)

with ``i_p`` the per-period rate implied by the annual rate,
``i_p = (1 + annual_discount_rate) ** (p_days / 365.25) - 1`` (:func:`units.per_period_rate`),
or given directly as ``period_discount_rate``. The exponent ``t_k / p`` equals ``k`` for full
periods and is fractional for a last partial period.

Three kinds of answer
---------------------
Write ``theta`` for the model parameters (purchase and spend), ``X_ik`` for the purchases in
period ``k``, ``Z_i`` for the customer's latent mean spend.

* ``kind="point"``: ``E[CLV_i | history, theta_hat]`` at the fitted point (MLE, or posterior mean
  for Bayesian models): ``sum_k d_k (margin E[Z_i | x, m, theta] E[X_ik | x, t_x, T, theta] - c_ik)``
  with ``E[X_ik] = E[X(T, T+t_k)] - E[X(T, T+t_{k-1})]``. No interval: lower = median = upper =
  mean.
* ``kind="expected"``: the same conditional expectation evaluated at each parameter draw
  ``theta_d`` (posterior draws; MLE asymptotic or bootstrap draws). The interval is the
  equal-tailed quantile interval of ``{E[CLV_i | theta_d]}_d``: *parameter* uncertainty about
  the customer's expected value, which shrinks as the customer base grows.
* ``kind="predictive"``: draws from the posterior predictive distribution of the value the
  customer will actually produce. For each draw ``d``: take ``theta_d``; draw the customer's
  latent state (alive or not, own purchase rate, own dropout, own spend level) from its
  conditional distribution given the history and ``theta_d``; draw the purchase counts of each
  period (the family's ``sample_future_purchase_periods``) and the spend of those purchases
  (the spend family's ``sample_future_spend``); discount and sum. Quantiles over ``d`` give the
  interval; ``clv_mean`` is the Monte-Carlo mean of the draws. This interval includes parameter
  uncertainty, survival, individual heterogeneity and purchase/spend noise -- it is what one
  should plan with, and what is checked against holdout data.

Intervals are equal-tailed: ``[q_{(1-interval)/2}, q_{(1+interval)/2}]`` of the draws (linear
interpolation between order statistics for values; the ``inverted_cdf`` rule -- always an
attainable integer -- for purchase counts in :func:`predict_purchases`).

The columns ``expected_purchases`` (``E[X(T, T+H)]``), ``expected_spend`` (``E[Z_i]``) and
``probability_alive`` are always evaluated at the point estimate, whatever ``kind``.

Draws
-----
``draws`` is an int ``n`` (the function calls ``model.param_draws(n, seed=...)`` on each model),
or given explicitly: a pair ``(purchase_draws, spend_draws)`` (or a dict with keys
``"purchase"`` and ``"spend"``) of DataFrames in the layout of ``param_draws``, used as they are;
for :func:`predict_purchases` a single DataFrame. Draw ``d`` of the purchase model is paired with
draw ``d`` of the spend model; a one-row table is broadcast against the other.

Scale and reproducibility
-------------------------
For ``kind="expected"`` and ``"point"`` with models whose parameters are shared by all
customers (not grouped), each distinct row (frequency, recency, T, monetary_value, costs,
group) is valued once and the result copied to its customers (exact; totals weight each row
by its multiplicity) -- real summaries at day resolution have far fewer distinct rows than
customers. ``n_jobs`` threads value chunks in parallel.

Customers are processed in chunks (``chunk_size``; by default chosen so that one chunk holds at
most about 4 million draw x customer x period values, i.e. a few tens of MB per array; for
predictive values without per-period draws, which never hold a dense draw x customer x period
array, about 1 million draw x customer paths), so
memory stays bounded by the chunk plus the per-customer outputs; nothing of shape customers x
draws x periods is ever held unless ``return_draws`` asks for it. Per-customer quantiles are
computed inside each chunk (they are per customer, so chunking is exact). Totals (customer
equity) accumulate the *per-draw* sums over customers across chunks, so their interval comes
from the joint draws, not from adding up intervals.

Randomness: ``random_seed`` seeds a ``numpy.random.SeedSequence``; the parameter draws use its
first two children, chunk ``b`` uses child ``b + 2`` (``spawn``). Results are therefore
reproducible for a given seed, customer order, number of draws and ``chunk_size``; the default
chunk size depends only on the kind, the number of draws and periods, so two default calls agree.

Continuous discounting (DERT)
-----------------------------
:func:`discounted_expected_residual_transactions` gives the discounted expected residual
transactions ``DERT = int_0^inf e^{-delta t} dE[X(T, T+t)]`` (Fader, Hardie & Lee 2005, "RFM and
CLV", Journal of Marketing Research 42(4), eq. 2): the purchase family's own method, a closed
form for Pareto/NBD and a Gauss-Laguerre quadrature of the family's ``expected_purchases`` for
every other purchase model (BG/NBD, MBG/NBD, hierarchical models).
"""

from __future__ import annotations

from clvmodels.valuation.calibration import (
    empirical_cdf_bounds,
    interval_coverage,
    pit_interval_coverage,
    pit_values,
)
from clvmodels.valuation.dert import discounted_expected_residual_transactions
from clvmodels.valuation.draws import DrawSpec
from clvmodels.valuation.engine import OutputSpec, RunSpec
from clvmodels.valuation.purchases import predict_purchases
from clvmodels.valuation.spec import (
    DEFAULT_ANNUAL_DISCOUNT_RATE,
    KINDS,
    PeriodGrid,
    ValuationSpec,
    discount_factors,
    period_grid,
)
from clvmodels.valuation.summaries import customer_equity, expected_cash_flows, lifetime_value

__all__ = [
    "lifetime_value",
    "predict_purchases",
    "customer_equity",
    "expected_cash_flows",
    "discounted_expected_residual_transactions",
    "interval_coverage",
    "pit_values",
    "pit_interval_coverage",
    "empirical_cdf_bounds",
    "period_grid",
    "discount_factors",
    "KINDS",
    "DEFAULT_ANNUAL_DISCOUNT_RATE",
    "PeriodGrid",
    "ValuationSpec",
    "DrawSpec",
    "RunSpec",
    "OutputSpec",
]
