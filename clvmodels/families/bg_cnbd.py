"""BG/CNBD-k: the beta-geometric / condensed negative binomial purchase model.

Platzer, M. and Reutterer, T. (2016), "Ticking Away the Moments: Timing Regularity Helps to
Better Predict Customer Activity", *Marketing Science* 35(5). BG/NBD (Fader, Hardie &
Lee 2005) with Erlang-k inter-purchase times: a customer's purchases are every k-th event of a
Poisson process of rate ``lambda ~ Gamma(r, alpha)``, and after each repeat purchase they drop
out with probability ``p ~ Beta(a, b)`` (never right after the first purchase, unlike
MBG/CNBD-k). ``k = 1`` is BG/NBD exactly.

The math is shared with MBG/CNBD-k and written once, in :mod:`clvmodels.families.mbg_cnbd`
(its functions with ``shift = 0``; the likelihood, posterior and predictions are stated there).
"""

from __future__ import annotations

from dataclasses import dataclass

from clvmodels.families.mbg_cnbd import CNBDFamily


@dataclass(frozen=True)
class BetaGeoCNBDFamily(CNBDFamily):
    """BG/CNBD-k (Platzer & Reutterer 2016): BG/NBD with Erlang-k inter-purchase times; dropout
    possible after each repeat purchase only."""

    name = "bgcnbd"
    label = "BG/CNBD-k"
    dropout_at_zero = False
