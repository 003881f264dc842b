"""Estimators by short name, and the three ways to add one without editing bnbench.

1. ``@register("name")`` (or ``register("name", cls)``) in any imported module.
2. A ``package.module:Class`` path wherever a name is accepted.
3. An entry point in the ``bnbench.estimators`` group of an installed package.

A spec may carry settings: ``mle:policy=marginal,alpha=0.5`` builds
``CountMLE(policy="marginal", alpha=0.5)``.
"""

from __future__ import annotations

import ast
import importlib
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from bnbench.estimators.base import Estimator

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "bnbench.estimators"

#: Built-in estimators, imported only when used (some import torch or pgmpy).
_BUILTIN: dict[str, str] = {
    "oracle": "bnbench.estimators.oracle:Oracle",
    "mle": "bnbench.estimators.mle:CountMLE",
    "pgmpy-mle": "bnbench.estimators.pgmpy_peer:PgmpyMLE",
    "pyro-posterior": "bnbench.estimators.pyro_posterior:PyroPosterior",
    "pyro-enum": "bnbench.estimators.pyro_enum:PyroEnum",
    "trained-transformer": "bnbench.estimators.trained_transformer:TrainedTransformer",
    "exact-transformer": "bnbench.estimators.exact_transformer:ExactTransformer",
}
_REGISTERED: dict[str, type[Estimator]] = {}

EstimatorType = TypeVar("EstimatorType", bound=type[Estimator])


class UnknownEstimatorError(KeyError):
    """Raised for a name that is neither registered, built in, an entry point nor a class path."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(name: str, cls: EstimatorType | None = None) -> Callable[[EstimatorType], EstimatorType] | EstimatorType:
    """Register ``cls`` under ``name``; usable as ``@register("name")`` or a plain call."""

    def decorate(estimator_class: EstimatorType) -> EstimatorType:
        if not (isinstance(estimator_class, type) and issubclass(estimator_class, Estimator)):
            raise TypeError(f"cannot register {estimator_class!r} as {name!r}: it is not an Estimator subclass")
        if name in _BUILTIN:
            raise ValueError(f"estimator name {name!r} is built in; choose another name")
        estimator_class.name = name
        _REGISTERED[name] = estimator_class
        return estimator_class

    return decorate if cls is None else decorate(cls)


def estimator_names() -> list[str]:
    """Every name that `get_estimator_class` accepts without a class path."""
    return sorted({*_BUILTIN, *_REGISTERED, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def get_estimator_class(name: str) -> type[Estimator]:
    """Resolve a registered name, a built-in name, an entry point, or ``package.module:Class``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        return _load_class(_BUILTIN[name], name)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == name:
            return _load_class(entry_point.value, name)
    if ":" in name:
        return _load_class(name, name)
    raise UnknownEstimatorError(
        f"unknown estimator {name!r}; valid names: {estimator_names()}, or a class path 'package.module:Class'"
    )


def make_estimator(spec: str, **settings: Any) -> Estimator:
    """Build an estimator from ``name`` or ``name:key=value,...`` plus keyword settings."""
    name, options = split_spec(spec)
    cls = get_estimator_class(name)
    options.update(settings)
    try:
        return cls(**options)
    except TypeError as error:
        raise ValueError(f"invalid settings {options} for estimator {name!r}: {error}") from error


def split_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name:key=value,...`` into the name and its settings.

    A class path ``package.module:Class`` has a colon too; it is recognized by an
    identifier (not ``key=value``) after the colon, and its settings follow a second colon.
    """
    head, separator, rest = spec.partition(":")
    if separator and _looks_like_class_path(head, rest):
        class_name, _, rest = rest.partition(":")
        head, rest = f"{head}:{class_name}", rest
    settings: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"invalid setting {item!r} in estimator spec {spec!r}; write key=value, as in 'mle:alpha=1'")
        settings[key.strip()] = _parse_value(value.strip())
    return head, settings


def _looks_like_class_path(head: str, rest: str) -> bool:
    class_name = rest.partition(":")[0]
    return class_name.isidentifier() and all(part.isidentifier() for part in head.split("."))


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _load_class(path: str, name: str) -> type[Estimator]:
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownEstimatorError(f"estimator {name!r}: cannot import module {module_name!r}: {error}") from error
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise UnknownEstimatorError(
            f"estimator {name!r}: {path!r} is not an Estimator subclass; point to a class deriving from "
            "bnbench.estimators.Estimator"
        )
    # A subclass of a built-in inherits its name ("mle"); give it the name it was loaded by.
    if not vars(cls).get("name"):
        cls.name = name
    return cls
