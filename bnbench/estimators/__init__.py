"""Estimators: the contract, the registry and the built-in implementations."""

from bnbench.estimators.base import Estimator, NotFittedError, TableEstimator
from bnbench.estimators.registry import (
    UnknownEstimatorError,
    estimator_names,
    get_estimator_class,
    make_estimator,
    register,
)

__all__ = [
    "Estimator",
    "NotFittedError",
    "TableEstimator",
    "UnknownEstimatorError",
    "estimator_names",
    "get_estimator_class",
    "make_estimator",
    "register",
]
