"""Recovery after concept shifts: with and without the fast and adaptive mechanisms.

Stream: ``concept_drift`` over Fashion-MNIST (or digits when absent): 8 segments, labels remapped by
one of 3 seeded permutations per segment, old mappings recur. MLP 784-256-256-10, SGD lr 0.05,
batch 32, one pass. For each shift, the recovery time is the number of batches until the 5-batch
moving online accuracy regains 90% of its level over the last 30 batches before the shift.

Learners: naive, error_memory (over naive), homeostatic, drift_experts (experts and plasticity
responses). Writes benchmarks/results/drift_recovery.json and prints a Markdown table.
Run: ``.venv/bin/python benchmarks/drift_recovery.py``. Never asserts on time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from lifelong.data.datasets import dataset_available, load_dataset
from lifelong.learn.methods import make_learner
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.learn.nets import mlp
from lifelong.data.scenarios import concept_drift

OUT = Path(__file__).parent / "results" / "drift_recovery.json"
VARIANTS = {
    "naive": ("naive", {}),
    "error_memory(naive)": ("error_memory", {"inner": "naive"}),
    "homeostatic": ("homeostatic", {}),
    "drift_experts(experts)": ("drift_experts", {"response": "experts"}),
    "drift_experts(plasticity)": ("drift_experts", {"response": "plasticity"}),
}


def recovery_times(acc: np.ndarray, chunk_of: np.ndarray, n_chunks: int, window: int = 5) -> list[int]:
    out = []
    for k in range(1, n_chunks):
        prev, cur = acc[chunk_of == k - 1], acc[chunk_of == k]
        level = prev[-30:].mean()
        moving = np.convolve(cur, np.ones(window) / window, mode="valid")
        hit = np.nonzero(moving >= 0.9 * level)[0]
        out.append(int(hit[0]) + window if len(hit) else len(cur))
    return out


def measure(name: str, hp: dict, ds, seeds=(0, 1, 2)) -> dict:
    per_seed, t0 = [], time.perf_counter()
    for seed in seeds:
        stream = concept_drift(ds, n_chunks=8, n_concepts=3, n_train=30000, seed=seed)
        learner = make_learner(name, mlp(stream.input_shape, stream.n_classes, seed=seed), seed=seed, lr=0.05, **hp)
        acc, chunk_of = [], []
        for r in iter_run(stream, learner, LoopConfig(batch_size=32), seed=seed):
            if r.kind == "train":
                acc.append(r.n_correct / r.n)
                chunk_of.append(r.chunk)
        acc_a, chunk_a = np.array(acc), np.array(chunk_of)
        rec = recovery_times(acc_a, chunk_a, len(stream.chunks))
        concepts = stream.info["concepts"]
        new = [rec[k - 1] for k in range(1, len(concepts)) if concepts[k] not in concepts[:k]]
        old = [rec[k - 1] for k in range(1, len(concepts)) if concepts[k] in concepts[:k]]
        per_seed.append({"recovery": rec, "new_concept": new, "recurring": old, "online_acc": float(acc_a.mean())})
    flat = lambda key: [x for s in per_seed for x in s[key]]  # noqa: E731
    return {
        "per_seed": per_seed,
        "mean_recovery": float(np.mean(flat("recovery"))),
        "mean_recovery_new": float(np.mean(flat("new_concept"))) if flat("new_concept") else None,
        "mean_recovery_recurring": float(np.mean(flat("recurring"))) if flat("recurring") else None,
        "online_acc": float(np.mean([s["online_acc"] for s in per_seed])),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    torch.set_num_threads(1)
    name = "fashion_mnist" if dataset_available("fashion_mnist") else "digits"
    ds = load_dataset(name)
    results = {"dataset": name, "variants": {}}
    for label, (learner, hp) in VARIANTS.items():
        results["variants"][label] = measure(learner, hp, ds)
        print(label, round(results["variants"][label]["mean_recovery"], 1), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| learner | mean recovery (batches) | new concept | recurring | online accuracy |\n|---|---|---|---|---|")
    for label, r in results["variants"].items():
        print(f"| {label} | {r['mean_recovery']:.1f} | {r['mean_recovery_new']:.1f} | {r['mean_recovery_recurring']:.1f} | {r['online_acc']:.3f} |")


if __name__ == "__main__":
    main()
