"""Real Fashion-MNIST: the forgetting and replay bars of the core issue, on a reduced budget.

Full budget (the issue's fixed settings, 3 seeds) is in benchmarks/split_fmnist.py and BENCHMARKS.md.
Here: the same scenario and network on 2,000 training samples per chunk, one seed.
"""

from __future__ import annotations

import pytest

from lifelong.experiments.config import from_dict
from lifelong.data.datasets import dataset_available
from lifelong.evaluate import classic_metrics
from lifelong.experiments.run import iter_seed, load_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dataset_available("fashion_mnist"),
                       reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"),
]


def final_metrics(learner: dict) -> dict:
    cfg = from_dict({
        "dataset": {"name": "fashion_mnist"},
        "scenario": {"name": "class_incremental", "n_chunks": 5, "train_per_chunk": 2000, "test_per_chunk": 1000},
        "learner": learner,
    })
    records = [rec for rec, _ in iter_seed(cfg, load_data(cfg), 0, None, None)]
    return classic_metrics(records, 0)


def test_naive_forgets_catastrophically():
    m = final_metrics({"name": "naive"})
    assert m["acc"] <= 0.25
    assert m["forgetting"] > 0.8


def test_er_keeps_most_of_what_it_learned():
    m = final_metrics({"name": "er", "mem_size": 500})
    assert m["acc"] >= 0.6
    assert m["forgetting"] < 0.45
