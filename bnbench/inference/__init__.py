"""Inference in discrete Bayesian networks: evidence, exact conditionals, Pyro posteriors.

* `bnbench.inference.evidence`: evidence masks, labels to codes, and exact conditional
  marginals and joints by variable elimination.
* `bnbench.inference.weighting`: likelihood weighting, the approximate fallback.
* `bnbench.inference.enumeration`: exact conditional marginals and sampling under
  evidence with Pyro's parallel enumeration, with its limits checked up front.
* `bnbench.inference.posterior`: the Dirichlet posterior of the tables given context
  rows, by NUTS or SVI, and its posterior predictive.

Submodules are imported on use, because some import torch and Pyro.
"""
