"""Training protocols that fit the data: epochs, batch size and learning rate when the config leaves them out.

One epoch per chunk is the MNIST-family convention, and it under-trains every stream of a few
thousand samples: on the bundled digits Joint then reaches 0.52 instead of the 0.94 an MLP reaches.
So the ``[train]`` keys a config does not set are filled, in this order of precedence:

1. what the user set (config file or flags) always wins;
2. the scenario's protocol, where the field has one: the online, task-free scenarios
   (``online``, ``blurry``) are single-pass at batch 10, the reference setting of the online
   MNIST-family benchmarks (Aljundi et al. 2019; Mai et al. 2022). The offline references
   (``joint``, ``cumulative``) keep the dataset's protocol there: they are the i.i.d. offline upper
   bounds, and a single pass would make them lower than the methods they bound;
3. the dataset's declared protocol (:attr:`lifelong.data.datasets.DatasetInfo.protocol`):
   Fashion-MNIST, MNIST and KMNIST one epoch at batch 32 and lr 0.05, CIFAR-10 and CIFAR-100 50
   epochs at lr 0.03 with random crop and flip (``augment = "crop_flip"``, left out for a learner
   with its own update rule or flattened images);
4. otherwise (digits, blobs, a user's own file, a plugin's dataset) a protocol derived from the
   size of the training stream, all chunks together (:func:`size_protocol`): enough epochs that
   the network sees about :data:`TARGET_SAMPLES` samples, at most :data:`MAX_EPOCHS`. A
   domain-incremental stream repeats the training set once per domain, so it gets fewer epochs.

The resolved protocol is written to the run's ``config.toml`` and printed by ``lifelong run``, so
a rerun from that file does exactly the same.

Examples
--------
>>> size_protocol(60000)
{'epochs': 1, 'batch_size': 32, 'lr': 0.05}
>>> size_protocol(1346)
{'epochs': 45, 'batch_size': 32, 'lr': 0.05}
>>> size_protocol(200)
{'epochs': 100, 'batch_size': 32, 'lr': 0.05}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from lifelong.data.datasets import DATASETS
from lifelong.learn.methods import LEARNERS

__all__ = ["BASE", "MAX_EPOCHS", "REFERENCE_LEARNERS", "SCENARIO_PROTOCOLS", "TARGET_SAMPLES", "describe",
           "resolve_protocol", "resolve_train", "size_protocol", "stream_size"]

#: What every protocol starts from.
BASE: dict[str, Any] = {"epochs": 1, "batch_size": 32, "lr": 0.05}
#: Samples a size-derived protocol shows the network per training run (the whole training set ~60k
#: times: what one epoch of Fashion-MNIST gives, where these defaults were validated).
TARGET_SAMPLES = 60_000
#: The most epochs a size-derived protocol asks for.
MAX_EPOCHS = 100
#: Scenario protocols (only the keys they set).
SCENARIO_PROTOCOLS: dict[str, dict[str, Any]] = {
    "online": {"epochs": 1, "batch_size": 10},
    "blurry": {"epochs": 1, "batch_size": 10},
}
#: Learners that are offline references, not online methods: they keep the dataset's epochs.
REFERENCE_LEARNERS = ("joint", "cumulative")


def size_protocol(n_train: int) -> dict[str, Any]:
    """The protocol for ``n_train`` training samples with no declared protocol."""
    epochs = max(1, min(MAX_EPOCHS, math.ceil(TARGET_SAMPLES / max(1, int(n_train)))))
    return {**BASE, "epochs": epochs}


def dataset_protocol(dataset: str, n_train: int) -> tuple[dict[str, Any], str]:
    """``(protocol, where it comes from)`` for dataset ``dataset`` whose stream trains on ``n_train`` samples."""
    info = DATASETS.get(dataset)
    if info is not None and info.protocol is not None:
        return {**BASE, **dict(info.protocol)}, f"the {dataset} protocol"
    return size_protocol(n_train), f"derived from the stream's {n_train} training samples"


def stream_size(stream: Any, learner: str = "") -> int:
    """Training samples the size-derived protocol counts: in a stream whose chunks each hold every
    class (domain-incremental: the same data, transformed, once per domain) one chunk's worth, so
    that every domain is learned as well as the dataset alone would be; otherwise all chunks
    together (a class split of the dataset). ``cumulative`` always counts the whole stream: it
    retrains on everything seen at every chunk, so on a many-domain stream the per-domain count
    would make its cost grow with the square of the number of domains.

    Digits, 10 permuted domains: at the stream-wide count (5 epochs per domain) naive's learning
    accuracy is 0.79 and no regulariser can beat it; at one domain's count (45) every domain is
    learned (0.94) and forgetting is what separates the methods.
    """
    n = sum(len(c.y) for c in stream.chunks)
    chunks = stream.chunks
    if learner != "cumulative" and len(chunks) > 1 and all(set(c.classes) == set(chunks[0].classes) for c in chunks):
        return max(1, n // len(chunks))
    return n


def resolve_train(user: Mapping[str, Any], dataset: str, n_train: int, scenario: str,
                  learner: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The full ``[train]`` table and, per protocol key, where its value came from."""
    proto, why = dataset_protocol(dataset, n_train)
    source = {k: why for k in proto}
    scen = SCENARIO_PROTOCOLS.get(scenario, {})
    for k, v in scen.items():
        if k == "epochs" and learner in REFERENCE_LEARNERS:
            continue  # the offline upper references keep the dataset's epochs (module docstring)
        proto[k] = v
        source[k] = f"the {scenario} scenario's protocol"
    for k, v in user.items():
        proto[k] = v
        source[k] = "your config"
    return proto, source


def protocol_augment_applies(cfg: Any) -> bool:
    """Whether a dataset protocol's ``augment`` (the CIFAR recipes' crop and flip) applies to
    ``cfg``: the images are not flattened and the learner augments (a composable method, or one
    that declares ``augments``). Where it does not, the protocol's augmentation is left out, never
    an error: the user did not ask for it."""
    cls = LEARNERS.get(cfg.learner_name)
    takes = cls is not None and (getattr(cls, "composable", False) or getattr(cls, "augments", False))
    return bool(takes) and not cfg.dataset.get("flatten", False)


def resolve_protocol(cfg: Any, dataset: str, n_train: int) -> Any:
    """``cfg`` with every protocol key of ``[train]`` filled (idempotent: a resolved config is a
    config whose user set them)."""
    train, source = resolve_train(cfg.train, dataset, n_train, str(cfg.scenario["name"]), cfg.learner_name)
    if "augment" in train and "augment" not in cfg.train and not protocol_augment_applies(cfg):
        del train["augment"]
    return replace(cfg, train=train)


def describe(cfg: Any, dataset: str, n_train: int) -> str:
    """One line naming the protocol a run uses and where each part comes from."""
    train, source = resolve_train(cfg.train, dataset, n_train, str(cfg.scenario["name"]), cfg.learner_name)
    groups: dict[str, list[str]] = {}
    for k in ("epochs", "batch_size", "lr"):
        groups.setdefault(source[k], []).append(f"{k} {train[k]:g}" if k == "lr" else f"{k} {train[k]}")
    parts = "; ".join(f"{', '.join(v)} ({k})" for k, v in groups.items())
    return f"protocol: {parts}"
