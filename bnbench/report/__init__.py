"""Comparison tables, side-by-side comparisons and figures from benchmark records.

* `sources`: reads result files of either kind (harness JSON Lines, pytest-benchmark JSON).
* `benchmark_json`: converts pytest-benchmark entries to records.
* `tables`: aggregates records and renders the estimator table.
* `compare`: lays several runs side by side.
* `peers`: compares bnbench's speed with peer libraries.
* `plots`: draws fidelity and time versus context size.
"""
