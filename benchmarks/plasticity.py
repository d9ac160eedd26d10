"""Loss of plasticity on a long stream: plain SGD against ReDo, shrink-and-perturb and continual backprop.

Stream: ``label_permuted`` over digits (scikit-learn 8x8, 1346 train / 451 test): ``tasks`` tasks,
each a seeded sample of the training set with its labels remapped by a fresh seeded permutation of
the 10 classes, so every task is as hard as the first. Two presets (:data:`PRESETS`): ``decay``
(the default: 100 tasks of 500 samples, MLP 64-32-32-10, SGD lr 0.3, batch 32, 5 epochs per task,
the regime where Dohare et al. 2024 see plain SGD lose plasticity) and ``gentle`` (100 tasks of the
whole training set, MLP 64-256-256-10, SGD lr 0.05, 5 epochs per task: no decay appeared there).

New-task accuracy is the accuracy on task ``i``'s test set (under ``π_i``) right after training on
task ``i``. After each task the script also records the dormant fraction (τ = 0 and τ = 0.1, on
the test inputs) and the effective rank of the penultimate features
(:mod:`lifelong.evaluate.plasticity`).

Variants: ``naive`` (plain SGD), ``naive + redo``, ``naive + shrink_perturb``, ``naive +
continual_backprop``, each at the term's defaults (not tuned on this stream). Writes
benchmarks/results/<preset file>.json, the matching .png (with matplotlib, through
:func:`lifelong.report.plots.task_series_plot`) and the section "## Loss of plasticity (issue 15)"
of BENCHMARKS.md (rendered from every preset's saved results).
Run: ``.venv/bin/python benchmarks/plasticity.py [--preset decay --seeds 0 1 2]``.
Never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
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
RESULTS = ROOT / "benchmarks" / "results"
TITLE = "## Loss of plasticity (issue 15)"
VARIANTS = {
    "naive": [],
    "redo": [{"name": "redo"}],
    "shrink_perturb": [{"name": "shrink_perturb"}],
    "continual_backprop": [{"name": "continual_backprop"}],
}
#: The streams. ``gentle``: the library's default MLP and step size on the whole training set (no
#: decay appeared). ``decay``: the setting of Dohare et al.'s line where plain SGD loses plasticity
#: (a large step size, no weight decay, a small network, several epochs per task), on 500 samples
#: per task so that a run costs a few minutes of one CPU core.
PRESETS = {
    "gentle": {"tasks": 100, "epochs": 5, "batch": 32, "lr": 0.05, "hidden": [256, 256], "train_per_chunk": None,
               "file": "plasticity"},
    "decay": {"tasks": 100, "epochs": 5, "batch": 32, "lr": 0.3, "hidden": [32, 32], "train_per_chunk": 500,
              "file": "plasticity_decay"},
}


def run(variant: str, seed: int, cfg: dict) -> dict:
    stream = label_permuted(load_dataset("digits", seed=seed), n_chunks=cfg["tasks"], seed=seed,
                            train_per_chunk=cfg.get("train_per_chunk"))
    model = mlp(stream.input_shape, stream.n_classes, hidden=cfg.get("hidden", [256, 256]), seed=seed)
    learner = make_learner("naive", model, seed=seed, lr=float(cfg.get("lr", 0.05)), terms=VARIANTS[variant] or None)
    shuffle = torch.Generator().manual_seed(derive_seed(seed, "bench/shuffle"))
    epochs, batch = cfg["epochs"], cfg["batch"]
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


def describe(cfg: dict) -> str:
    hidden = "-".join(str(h) for h in cfg.get("hidden", [256, 256]))
    data = "the whole training set" if cfg.get("train_per_chunk") is None else f"{cfg['train_per_chunk']} training samples"
    return (f"`label_permuted` digits, {cfg['tasks']} tasks ({data} per task, labels remapped by a fresh seeded "
            f"permutation per task), MLP 64-{hidden}-10, SGD lr {cfg.get('lr', 0.05)} (no momentum, no weight decay), "
            f"batch {cfg['batch']}, {cfg['epochs']} epochs per task, seeds {', '.join(map(str, cfg['seeds']))}")


def render_one(res: dict, cfg: dict, heading: str) -> str:
    k = max(1, cfg["tasks"] // 10)
    loads = [r["load_1m"] for per_seed in res.values() for r in per_seed if "load_1m" in r]
    lines = [heading, "",
             f"`benchmarks/plasticity.py --preset {cfg.get('preset', 'gentle')}`: {describe(cfg)}."
             + (f" 1-minute load average at the end of the runs {min(loads):.1f}-{max(loads):.1f} (2 cores)." if loads else ""),
             "",
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
    lines += ["", f"New-task accuracy over the last {k} tasks per seed, and paired against naive (remedy − naive):", ""]
    for v, per_seed in res.items():
        last = [window(r["acc"], False, k) for r in per_seed]
        diffs = "" if v == "naive" else "; − naive " + " / ".join(f"{b - a:+.3f}" for a, b in zip(naive_last, last))
        lines.append(f"- {v}: {' / '.join(f'{x:.3f}' for x in last)}{diffs}")
    naive_delta = [window(r["acc"], False, k) - window(r["acc"], True, k) for r in res["naive"]]
    verdicts = []
    for v, per_seed in res.items():
        if v == "naive":
            continue
        ds = [window(r["acc"], False, k) - b for r, b in zip(per_seed, naive_last)]
        word = "above" if all(d > 0 for d in ds) else "below" if all(d < 0 for d in ds) else "mixed against"
        flat = [window(r["acc"], False, k) - window(r["acc"], True, k) for r in per_seed]
        verdicts.append(f"{v}: {word} naive on the last tasks (last − first {min(flat):+.3f} to {max(flat):+.3f}).")
    lines += ["", "Reading (derived from the numbers above): plain SGD's new-task accuracy "
              + (f"decays on every seed (last − first {min(naive_delta):+.3f} to {max(naive_delta):+.3f})"
                 if all(d < 0 for d in naive_delta) else
                 f"does not decay on this stream (last − first > 0 on {sum(d > 0 for d in naive_delta)} of "
                 f"{len(naive_delta)} seeds)") + ". " + " ".join(verdicts)]
    f = cfg.get("file", "plasticity")
    lines += ["", f"Raw curves: `benchmarks/results/{f}.json`; plot: `benchmarks/results/{f}.png`.", ""]
    return "\n".join(lines)


HEADINGS = {"decay": "### A stream where plain SGD decays: lr 0.3, MLP 64-32-32-10",
            "gentle": "### The first stream (no decay): lr 0.05, MLP 64-256-256-10"}
INTRO = ("New-task accuracy: test accuracy on task i right after training on it. Every remedy at its defaults "
         "(`redo`: every 1000 updates, τ = 0.1; `shrink_perturb`: λ = 0.8, σ = 0.01 at each boundary; "
         "`continual_backprop`: ρ = 1e-4, η = 0.99, maturity 100), not tuned on either stream. First/last: mean over "
         "the first/last tenth of the tasks; per seed, then mean. Dormant fraction and effective rank (of the "
         "penultimate features) are measured on the test inputs after each task.")


#: How the decaying stream was found: a plain PyTorch loop (the same MLP initialisation and SGD
#: without momentum, not the learner), seed 0 unless noted; new-task test accuracy, mean over the
#: first 10 → last 10 tasks. Hand-written; not regenerated by this script.
SEARCH = """How the decaying stream was found (a plain PyTorch loop with the same initialisation and SGD, not the learner; seed 0 unless noted; new-task accuracy, first 10 → last 10 tasks):

- input-permuted digits (`domain_incremental`, permutation), 200 tasks of the whole training set: MLP 64-64-64-10, 1 epoch, lr 0.1: 0.361 → 0.622 (no decay; under-trained); lr 0.3: 0.476 → 0.375; 5 epochs, lr 0.1: 0.857 → 0.795; MLP 64-32-32-10, 3 epochs, lr 0.5: 0.516 → 0.101.
- `label_permuted`, the whole training set, MLP 64-32-32-10, 5 epochs: lr 0.2, 150 tasks: 0.913 → 0.333; lr 0.3, 200 tasks: 0.886 → 0.197; MLP 64-64-64-10, lr 0.3, 150 tasks: 0.881 → 0.100 (flat until about task 90, then chance).
- `label_permuted`, 500 samples per task, MLP 64-32-32-10: lr 0.3, 5 epochs, 200 tasks: 0.885 → 0.100 (chance from about task 40); lr 0.2, 10 epochs, 150 tasks: 0.885 → 0.100 (from about task 120). The first of these, cut to 100 tasks, is the `decay` preset.
- The fast ledger suite (`ledger/fast_digits_plasticity.toml`): 300 samples, lr 0.4, 5 epochs, 40 tasks: seeds 0/1/2 0.679/0.758/0.710 → 0.398/0.460/0.326.
"""


#: The ledger suites on these streams, as recorded (``late_learning_acc``: new-task accuracy over the
#: last tenth of the tasks, through the library's runner, whose batch order differs from this
#: script's). Hand-written from the --record runs; not regenerated by this script.
LEDGER = """Ledger (`late_learning_acc`, per seed 0 / 1 / 2; orderings only where they hold on every seed):

- `ledger/fast_digits_plasticity.toml` (fast tier; 40 tasks of 300 training / 150 test samples, MLP 64-32-32-10, lr 0.4, 5 epochs): naive 0.593 / 0.413 / 0.205; redo 0.670 / 0.812 / 0.770; continual_backprop 0.680 / 0.327 / 0.845. `redo > naive` holds (+0.077 / +0.398 / +0.565) and is in the file; `continual_backprop > naive` fails on seed 1 (−0.086: at the default ρ = 1e-4 it replaces about 6 units per layer in this stream's 2,000 updates), so it is not. Recorded at load 24-25 on 2 cores: 27-65 s per seed (expect a few seconds per seed on a quiet machine; not measured).
- `ledger/plasticity_digits.toml` (full tier; the `decay` preset): naive 0.101 / 0.099 / 0.100; redo 0.934 / 0.876 / 0.911; continual_backprop 0.665 / 0.905 / 0.828; shrink_perturb 0.873 / 0.826 / 0.849. `redo > naive`, `continual_backprop > naive` and `shrink_perturb > naive` hold on every seed (margins ≥ +0.78, ≥ +0.56, ≥ +0.73). About 200 s per seed at load 21-26.
"""


def render_all() -> str:
    parts = [TITLE, "", INTRO, "", SEARCH, LEDGER]
    for preset in ("decay", "gentle"):
        path = RESULTS / f"{PRESETS[preset]['file']}.json"
        if path.exists():
            saved = json.loads(path.read_text())
            cfg = {**PRESETS[preset], **saved["config"], "preset": preset}
            parts.append(render_one(saved["results"], cfg, HEADINGS[preset]))
    return "\n".join(parts)


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    if TITLE in doc:
        doc = re.sub(re.escape(TITLE) + r".*?(?=^## |\Z)", lambda m: text + "\n", doc, flags=re.S | re.M)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def plot(res: dict, name: str) -> None:
    try:
        from lifelong.report.plots import task_series_plot
        panels = []
        for key, title in (("acc", "new-task test accuracy"), ("dormant_tau0.1", "dormant fraction (τ=0.1)"),
                           ("effective_rank", "effective rank of features")):
            panels.append((title, {v: (np.mean([r[key] for r in per_seed], axis=0),
                                       np.std([r[key] for r in per_seed], axis=0)) for v, per_seed in res.items()}))
        p = task_series_plot(panels, f"{name}.png")
    except ImportError:  # no matplotlib
        return
    (RESULTS / p.name).write_bytes(p.png)


def save(out: Path, cfg: dict, res: dict) -> dict:
    """Write ``res`` into ``out``, keeping the saved variants that were not rerun when the saved
    config is the same (so the variants can be run in separate processes); returns all results."""
    import fcntl

    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = dict(res)
        if out.exists():
            saved = json.loads(out.read_text())
            if saved["config"] == cfg:
                merged = {**saved["results"], **res}
                merged = {v: merged[v] for v in VARIANTS if v in merged}
        out.write_text(json.dumps({"config": cfg, "results": merged}, indent=1))
    out.with_suffix(".lock").unlink(missing_ok=True)
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=list(PRESETS), default="decay")
    ap.add_argument("--tasks", type=int, default=None, help="override the preset's number of tasks")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--from-json", action="store_true", help="re-render BENCHMARKS.md and the plot from the saved results")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md and results alone")
    args = ap.parse_args()
    torch.set_num_threads(1)
    preset = PRESETS[args.preset]
    out = RESULTS / f"{preset['file']}.json"
    cfg = {k: v for k, v in preset.items() if k != "file"} | {"seeds": args.seeds}
    if args.tasks is not None:
        cfg["tasks"] = args.tasks
    res: dict[str, list[dict]] = {}
    if args.from_json:
        saved = json.loads(out.read_text())
        cfg, res = saved["config"], saved["results"]
        args.variants = []
    for v in args.variants:
        for seed in args.seeds:
            t0 = time.perf_counter()
            r = run(v, seed, cfg)
            r["wall_s"] = time.perf_counter() - t0
            r["load_1m"] = os.getloadavg()[0]
            res.setdefault(v, []).append(r)
            k = max(1, cfg["tasks"] // 10)
            print(f"{v} seed {seed}: new-task acc first {window(r['acc'], True, k):.3f} last {window(r['acc'], False, k):.3f} "
                  f"({r['wall_s']:.0f}s, load {r['load_1m']:.1f})", flush=True)
    if not args.no_write and not args.from_json:
        res = save(out, cfg, res)  # first, so a failure below loses no run
    if "naive" in res:
        print(render_one(res, {**preset, **cfg, "preset": args.preset}, HEADINGS[args.preset]))
    if not args.no_write:
        plot(res, preset["file"])
        write_section(render_all())


if __name__ == "__main__":
    main()
