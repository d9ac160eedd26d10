"""The built-in comparison that ``lifelong run`` without a config runs: Split-dataset,
class-incremental, 5 chunks; the forgetting baseline, replay, the best learner available, and the
joint upper bound.
"""

from __future__ import annotations

import math
from typing import Any

from lifelong.data.datasets import dataset_available
from lifelong.experiments.config import RunConfig, from_dict, override
from lifelong.learn.methods import LEARNERS, hyperparameters
from lifelong.report.view import learns_late, never_learned

#: The main job: the forgetting baseline, replay, and the best learner available, with the joint upper bound.
DEMO_LEARNERS = ("naive", "er", "cls_er", "joint")
#: Replay memory of the demo's replay learners, unless ``mem_size`` is given.
DEMO_MEMORY = 500


def default_dataset() -> str:
    """Fashion-MNIST where its files are present, else the bundled digits."""
    return "fashion_mnist" if dataset_available("fashion_mnist") else "digits"


def demo_configs(flags: dict[str, Any]) -> tuple[str, list[RunConfig]]:
    """The dataset and one run config per demo learner (``<name>-<learner>``, ``name`` defaulting
    to ``demo``), with the command's flags applied.

    ``flags`` are :func:`lifelong.experiments.config.override`'s keywords; ``learner`` (one learner
    instead of the demo's) and ``dataset`` choose what runs, ``name`` prefixes the run names.
    """
    flags = dict(flags)
    learner = flags.pop("learner", None)
    learners = [learner] if learner is not None else [n for n in DEMO_LEARNERS if n in LEARNERS]
    dataset = flags.pop("dataset", None) or default_dataset()
    prefix = flags.pop("name", None) or "demo"
    base = from_dict({"name": "demo", "dataset": {"name": dataset}, "scenario": {"name": "class_incremental", "n_chunks": 5}})
    configs = []
    for name in learners:
        cfg = override(base, learner=name, name=f"{prefix}-{name}", **flags)
        if "mem_size" in hyperparameters(LEARNERS[name]):
            cfg = override(cfg, mem_size=flags.get("mem_size") or DEMO_MEMORY)
        configs.append(cfg)
    return dataset, configs


def verdict(name: str, metrics: dict[str, Any]) -> str:
    """One line on how a demo learner did, judged on learning accuracy (LA) and final accuracy together.

    A learner whose LA and final accuracy stay near chance never learned, and is called that, never
    "keeps what it learned"; one whose LA alone stays near chance learns late (its forgetting is
    then no measure); otherwise forgetting says how much of what it learned it kept.

    Examples
    --------
    >>> verdict("x", {"summary": {"forgetting": [0.0], "acc": [0.11], "learning_accuracy": [0.12]}, "chance": 0.1})
    '         x: learning accuracy 0.12, final accuracy 0.11 -> never learned (learning accuracy near chance, 0.10)'
    >>> verdict("y", {"summary": {"forgetting": [0.05], "acc": [0.9], "learning_accuracy": [0.95]}, "chance": 0.1})
    '         y: forgetting 0.05, final accuracy 0.90 -> keeps what it learned'
    >>> verdict("z", {"summary": {"forgetting": [-0.04], "acc": [0.32], "learning_accuracy": [0.1]}, "chance": 0.1})
    '         z: learning accuracy 0.10, final accuracy 0.32 -> learns late (learning accuracy near chance, 0.10, but it ends above; its forgetting measures nothing)'
    """
    summary = metrics["summary"]
    f, final = summary["forgetting"][0], summary["acc"][0]
    la = (summary.get("learning_accuracy") or [math.nan])[0]
    chance = metrics.get("chance")
    chance = math.nan if chance is None else float(chance)
    if math.isnan(f):  # joint: one training chunk, nothing to forget
        if never_learned(final, chance):
            return f"{name:>10}: final accuracy {final:.2f} -> never learned (near chance, {chance:.2f})"
        return f"{name:>10}: final accuracy {final:.2f} -> the upper reference (trained on all chunks at once)"
    if learns_late(la, final, chance):
        return (f"{name:>10}: learning accuracy {la:.2f}, final accuracy {final:.2f} -> learns late (learning "
                f"accuracy near chance, {chance:.2f}, but it ends above; its forgetting measures nothing)")
    if never_learned(la, chance, final):
        return (f"{name:>10}: learning accuracy {la:.2f}, final accuracy {final:.2f} -> never learned "
                f"(learning accuracy near chance, {chance:.2f})")
    words = "forgets most of what it learned" if f > 0.5 else ("forgets some" if f > 0.2 else "keeps what it learned")
    return f"{name:>10}: forgetting {f:.2f}, final accuracy {final:.2f} -> {words}"


def run_notes(metrics: dict[str, Any]) -> list[str]:
    """What ``lifelong run`` prints under a run's results: the protocol it used and its warnings
    (:func:`lifelong.evaluate.health.run_warnings`)."""
    lines = []
    p = metrics.get("protocol")
    if p:
        lines.append("protocol: " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in p.items())
                     + " (in config.toml; set [train] or --epochs/--batch-size/--lr to change it)")
    lines += [f"warning: {w}" for w in metrics.get("warnings", [])]
    return lines
