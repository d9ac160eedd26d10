"""Loss of plasticity on a long stream: plain SGD against ReDo, shrink-and-perturb and continual backprop.

Stream: ``label_permuted`` over digits (scikit-learn 8x8, 1347 train / 450 test): ``--tasks`` tasks
(100 by default), each the whole training set with its labels remapped by a fresh seeded
permutation of the 10 classes, so every task is as hard as the first. MLP 64-256-256-10 (the
library's default widths), SGD lr 0.05 (the learner default), batch 32, ``--epochs`` passes per task.

New-task accuracy is the accuracy on task ``i``'s test set (under ``π_i``) right after training on
task ``i``. After each task the script also records the dormant fraction (τ = 0 and τ = 0.1, on
the test inputs) and the effective rank of the penultimate features
(:mod:`lifelong.evaluate.plasticity`).

Variants: ``naive`` (plain SGD), ``naive + redo``, ``naive + shrink_perturb``, ``naive +
continual_backprop``, each at the term's defaults (not tuned on this stream). Writes
benchmarks/results/plasticity.json, benchmarks/results/plasticity.png (with matplotlib) and the
section "## Loss of plasticity (issue 15)" of BENCHMARKS.md.
Run: ``.venv/bin/python benchmarks/plasticity.py [--tasks 100 --epochs 5 --seeds 0 1 2]``.
Never asserts.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from lifelong.data import Batch
from lifelong.data.datasets import load_dataset
from lifelong.data.scenarios import label_permuted
from lifelong.evaluate.plasticity import dormant_fraction, effective_rank
from lifelong.learn.methods import make_learner
from lifelong.learn.nets import mlp
from lifelong.seeding import derive_seed

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "plasticity.json"
PLOT = ROOT / "benchmarks" / "results" / "plasticity.png"
TITLE = "## Loss of plasticity (issue 15)"
VARIANTS = {
    "naive": [],
    "redo": [{"name": "redo"}],
    "shrink_perturb": [{"name": "shrink_perturb"}],
    "continual_backprop": [{"name": "continual_backprop"}],
}


def run(variant: str, seed: int, tasks: int, epochs: int, batch: int) -> dict:
    stream = label_permuted(load_dataset("digits", seed=seed), n_chunks=tasks, seed=seed)
    model = mlp(stream.input_shape, stream.n_classes, seed=seed)
    learner = make_learner("naive", model, seed=seed, terms=VARIANTS[variant] or None)
    shuffle = torch.Generator().manual_seed(derive_seed(seed, "bench/shuffle"))
    acc, train_acc, dormant0, dormant01, erank = [], [], [], [], []
    for chunk, ev in zip(stream.chunks, stream.eval_sets, strict=True):
        n_correct = n = 0
        for e in range(epochs):
            order = torch.randperm(len(chunk), generator=shuffle)
            for s in range(0, len(chunk), batch):
                idx = order[s:s + batch]
                st = learner.observe(Batch(chunk.x[idx], chunk.y[idx]))
                if e == epochs - 1:
                    n_correct, n = n_correct + st.n_correct, n + st.n
        learner.end_chunk()
        acc.append(float((learner.predict(ev.x).argmax(1) == ev.y).float().mean()))
        train_acc.append(n_correct / n)
        dormant0.append(dormant_fraction(learner.model, ev.x, tau=0.0))
        dormant01.append(dormant_fraction(learner.model, ev.x, tau=0.1))
        with torch.no_grad():
            erank.append(effective_rank(learner.model.features(ev.x)))
    return {"acc": acc, "train_acc_last_epoch": train_acc, "dormant_tau0": dormant0, "dormant_tau0.1": dormant01,
            "effective_rank": erank}


def window(xs: list[float], first: bool, k: int) -> float:
    return float(np.mean(xs[:k] if first else xs[-k:]))


def render(res: dict, cfg: dict) -> str:
    seeds, k = cfg["seeds"], max(1, cfg["tasks"] // 10)
    lines = [TITLE, "",
             f"`benchmarks/plasticity.py`: `label_permuted` digits, {cfg['tasks']} tasks (the whole training set, "
             f"labels remapped by a fresh seeded permutation per task), MLP 64-256-256-10, SGD lr 0.05, batch "
             f"{cfg['batch']}, {cfg['epochs']} epochs per task, seeds {', '.join(map(str, seeds))}. "
             f"New-task accuracy: test accuracy on task i right after training on it. Every remedy at its "
             f"defaults (`redo`: every 1000 updates, τ = 0.1; `shrink_perturb`: λ = 0.8, σ = 0.01 at each boundary; "
             f"`continual_backprop`: ρ = 1e-4, η = 0.99, maturity 100), not tuned on this stream. "
             f"First/last: mean over the first/last {k} tasks; per seed, then mean.", "",
             "| variant | new-task acc, first | new-task acc, last | last − first per seed | dormant (τ=0.1) first → last "
             "| dormant (τ=0) last | eff. rank first → last | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for v, per_seed in res.items():
        first = [window(r["acc"], True, k) for r in per_seed]
        last = [window(r["acc"], False, k) for r in per_seed]
        d01 = (np.mean([window(r["dormant_tau0.1"], True, k) for r in per_seed]),
               np.mean([window(r["dormant_tau0.1"], False, k) for r in per_seed]))
        d0 = np.mean([window(r["dormant_tau0"], False, k) for r in per_seed])
        er = (np.mean([window(r["effective_rank"], True, k) for r in per_seed]),
              np.mean([window(r["effective_rank"], False, k) for r in per_seed]))
        wall = np.mean([r["wall_s"] for r in per_seed])
        lines.append(f"| {v} | {np.mean(first):.3f} | {np.mean(last):.3f} | "
                     f"{' / '.join(f'{b - a:+.3f}' for a, b in zip(first, last))} | {d01[0]:.3f} → {d01[1]:.3f} | "
                     f"{d0:.3f} | {er[0]:.1f} → {er[1]:.1f} | {wall:.0f} |")
    naive_last = [window(r["acc"], False, k) for r in res["naive"]]
    lines += ["", "Paired against naive on the last tasks (remedy − naive, per seed):", ""]
    for v, per_seed in res.items():
        if v != "naive":
            diffs = [window(r["acc"], False, k) - b for r, b in zip(per_seed, naive_last)]
            lines.append(f"- {v}: {' / '.join(f'{d:+.3f}' for d in diffs)}")
    naive_delta = [window(r["acc"], False, k) - window(r["acc"], True, k) for r in res["naive"]]
    lines += ["", "Reading (derived from the numbers above): plain SGD's new-task accuracy "
              + ("decays on every seed" if all(d < 0 for d in naive_delta) else
                 f"does not decay on this stream (last − first > 0 on {sum(d > 0 for d in naive_delta)} of "
                 f"{len(naive_delta)} seeds)") + ". "
              + " ".join(f"{v}: {'above' if all(d > 0 for d in ds) else 'below' if all(d < 0 for d in ds) else 'mixed against'} "
                         f"naive on the last tasks." for v, ds in (
                             (v, [window(r["acc"], False, k) - b for r, b in zip(per_seed, naive_last)])
                             for v, per_seed in res.items() if v != "naive"))]
    lines += ["", "Raw curves: `benchmarks/results/plasticity.json`; plot: `benchmarks/results/plasticity.png`.", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    if TITLE in doc:
        doc = re.sub(re.escape(TITLE) + r".*?(?=^## |\Z)", lambda m: text + "\n", doc, flags=re.S | re.M)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def plot(res: dict) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for v, per_seed in res.items():
        for ax, key in zip(axes, ("acc", "dormant_tau0.1", "effective_rank")):
            ys = np.mean([r[key] for r in per_seed], axis=0)
            ax.plot(np.arange(1, len(ys) + 1), ys, label=v)
            ax.set_xlabel("task")
            ax.set_title({"acc": "new-task test accuracy", "dormant_tau0.1": "dormant fraction (τ=0.1)",
                          "effective_rank": "effective rank of features"}[key])
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=80)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--from-json", action="store_true", help="re-render BENCHMARKS.md from the saved results")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md and results alone")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = {"tasks": args.tasks, "epochs": args.epochs, "batch": args.batch, "seeds": args.seeds}
    res: dict[str, list[dict]] = {}
    if args.from_json:
        saved = json.loads(OUT.read_text())
        cfg, res = saved["config"], saved["results"]
        args.variants = []
    for v in args.variants:
        for seed in args.seeds:
            t0 = time.perf_counter()
            r = run(v, seed, args.tasks, args.epochs, args.batch)
            r["wall_s"] = time.perf_counter() - t0
            res.setdefault(v, []).append(r)
            print(f"{v} seed {seed}: acc first {r['acc'][0]:.3f} last {r['acc'][-1]:.3f} "
                  f"({r['wall_s']:.0f}s)", flush=True)
    text = render(res, cfg)
    print(text)
    if not args.no_write:
        if not args.from_json:
            OUT.write_text(json.dumps({"config": cfg, "results": res}, indent=1))
        plot(res)
        write_section(text)


if __name__ == "__main__":
    main()
