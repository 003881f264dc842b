"""``bnbench list networks|estimators``: what can be benchmarked, with sizes."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from bnbench import exact
from bnbench.estimators.registry import estimator_names, get_estimator_class
from bnbench.networks import load_network, network_names
from bnbench.networks.synthetic import FAMILIES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list networks or estimators",
        description="List networks or estimators. The first listing of networks parses every bundled BIF file "
        "(about a minute); later listings read the cache.",
    )
    parser.add_argument("what", choices=("networks", "estimators"))
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    if args.what == "networks":
        print(tabulate(_network_rows(), headers="keys", tablefmt="github"))
    else:
        print(tabulate(_estimator_rows(), headers="keys", tablefmt="github"))
    return 0


def _network_rows() -> list[dict[str, object]]:
    rows = []
    for name in network_names():
        network = load_network(name)
        row = {"network": name, "source": "synthetic family" if name in FAMILIES else "bnlearn (pgmpy)"}
        row.update({k: v for k, v in network.structure.describe().items() if k != "network"})
        row["exact scores"] = _exact_scores(network)
        row["joint enumerable"] = "yes" if network.structure.num_joint_states <= exact.MAX_JOINT_STATES else "no"
        rows.append(row)
    return rows


def _exact_scores(network) -> str:
    """Whether every family marginal is exactly computable within `exact.MAX_INTERMEDIATE_ENTRIES`."""
    try:
        exact.family_marginals(network.structure, network.batched_cpts)
    except exact.IntractableError:
        return "estimated"
    return "yes"


def _estimator_rows() -> list[dict[str, object]]:
    rows = []
    for name in estimator_names():
        try:
            cls = get_estimator_class(name)
        except (KeyError, ValueError) as error:
            rows.append({"estimator": name, "class": f"unavailable: {error}"})
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append(
            {
                "estimator": name,
                "probabilities": "yes" if cls.provides_probabilities else "no",
                "conditions on": cls.conditions_on,
                "any evidence": "yes" if cls.supports_evidence else "no",
                "description": doc[0] if doc else "",
            }
        )
    return rows
