"""The flagship learner (``cls``, issue 14) against ER, DER++ and CLS-ER, with defaults, paired seeds.

Each stream is a run config with only ``[dataset]``, ``[scenario]`` (and, for the online stream,
``[train]`` batch 10, one pass: the online protocol) set; every learner keeps its default hyper-parameters. For each
(stream, learner) the script records the final ACC per seed and the wall time of its SGD steps
(the time inside ``observe``, without evaluation), and prints the paired difference of ``cls`` against each baseline with a
95% t-interval over seeds. ``--learners`` adds ablations as ``name:key=value,key=value``.

Writes ``benchmarks/results/flagship.json``. Never asserts on time.
Run: ``python benchmarks/flagship.py [--streams a,b] [--learners er,derpp,cls_er,cls] [--seeds 0,1,2]``;
``--cost`` prints the per-step cost of cls against DER++ and ER instead.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from lifelong.evaluate import classic_metrics
from lifelong.experiments.config import from_dict
from lifelong.experiments.runner import build_run, iter_seed, load_data

OUT = Path(__file__).parent / "results" / "flagship.json"
FMNIST_SUBSET = {"train_per_chunk": 1000, "test_per_chunk": 1000}
STREAMS: dict[str, dict] = {
    "digits-cil5": {"dataset": {"name": "digits"}, "scenario": {"name": "class_incremental", "n_chunks": 5}},
    "digits-dil5": {"dataset": {"name": "digits"},
                    "scenario": {"name": "domain_incremental", "n_chunks": 5, "transform": "permutation"}},
    "digits-dil20": {"dataset": {"name": "digits"}, "scenario": {"name": "domain_incremental", "n_chunks": 20}},
    "mnist1d-cil5": {"dataset": {"name": "mnist1d"}, "scenario": {"name": "class_incremental", "n_chunks": 5}},
    "fmnist5k-cil5": {"dataset": {"name": "fashion_mnist"},
                      "scenario": {"name": "class_incremental", "n_chunks": 5, **FMNIST_SUBSET}},
    "fmnist5k-cil5-10pct": {"dataset": {"name": "fashion_mnist"},
                            "scenario": {"name": "class_incremental", "n_chunks": 5, "label_fraction": 0.1,
                                         **FMNIST_SUBSET}},
    "digits-online-b10": {"dataset": {"name": "digits"}, "scenario": {"name": "online", "n_chunks": 5},
                          "train": {"epochs": 1, "batch_size": 10}},
    "mnist1d-online-b10": {"dataset": {"name": "mnist1d"}, "scenario": {"name": "online", "n_chunks": 5},
                           "train": {"epochs": 1, "batch_size": 10}},
    "digits-blurry": {"dataset": {"name": "digits"}, "scenario": {"name": "blurry", "n_chunks": 5}},
    "digits-drift": {"dataset": {"name": "digits"}, "scenario": {"name": "concept_drift"}},
    # a user's own arrays: 2,000 tabular samples, 10 classes, 20 features, from an .npz (user_array())
    "user-array-cil5": {"dataset": {"name": "file", "path": "<user_array>", "standardize": True},
                        "scenario": {"name": "class_incremental", "n_chunks": 5}},
}


def user_array() -> str:
    """The user-array stream's file: scikit-learn's ``make_classification`` (2,000 samples, 10
    classes of two clusters each, 12 informative of 20 features, seed 0) as ``x``/``y`` in an .npz,
    written once to the temporary directory (deterministic, so rewriting it changes nothing)."""
    import tempfile

    from sklearn.datasets import make_classification

    path = Path(tempfile.gettempdir()) / "lifelong-flagship-user-array-2k.npz"
    if not path.exists():
        x, y = make_classification(n_samples=2000, n_features=20, n_informative=12, n_redundant=4, n_classes=10,
                                   n_clusters_per_class=2, class_sep=1.5, random_state=0)
        np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))
    return str(path)


def parse_learner(spec: str) -> dict:
    name, _, opts = spec.partition(":")
    out: dict = {"name": name}
    for kv in filter(None, opts.split(",")):
        k, v = kv.split("=")
        out[k] = float(v) if "." in v or "e" in v else int(v)
    return out


def run_one(doc: dict, learner: dict, seeds: list[int]) -> dict:
    if doc["dataset"].get("path") == "<user_array>":
        doc = {**doc, "dataset": {**doc["dataset"], "path": user_array()}}
    cfg = from_dict({**doc, "learner": learner, "seeds": seeds})
    ds = load_data(cfg)
    accs, las, walls, steps = [], [], [], []
    for seed in seeds:
        run = build_run(cfg, seed, ds)
        spent = [0.0, 0]
        observe = run.learner.observe

        def timed(batch, observe=observe, spent=spent):  # the SGD steps' time, without evaluation
            t = time.perf_counter()
            out = observe(batch)
            spent[0] += time.perf_counter() - t
            spent[1] += 1
            return out

        run.learner.observe = timed
        records = list(iter_seed(run))
        walls.append(spent[0])
        steps.append(spent[1])
        m = classic_metrics(records, seed)
        accs.append(m["acc"])
        las.append(m["learning_accuracy"])
    return {"acc_seeds": accs, "acc": float(np.mean(accs)), "la": float(np.mean(las)), "train_s": walls,
            "steps": steps}


def paired(a: list[float], b: list[float]) -> str:
    d = np.asarray(a) - np.asarray(b)
    half = 4.303 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) == 3 else 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return f"{d.mean():+.3f} ± {half:.3f}"


def step_cost(name: str, batch: int, dim: int, n: int = 150, **hp) -> float:
    """Milliseconds per ``observe`` of learner ``name`` (defaults) on an MLP dim-256-256-10, random
    batches of ``batch`` samples, after 30 warm-up steps (the replay memory is then non-empty)."""
    import torch

    from lifelong.data import Batch
    from lifelong.learn.methods import make_learner
    from lifelong.learn.nets import mlp

    learner = make_learner(name, mlp((dim,), 10, hidden=(256, 256), seed=0), seed=0, **hp)
    g = torch.Generator().manual_seed(0)
    bs = [Batch(torch.randn(batch, dim, generator=g), torch.randint(0, 10, (batch,), generator=g)) for _ in range(n)]
    for b in bs[:30]:
        learner.observe(b)
    t = time.perf_counter()
    for b in bs[30:]:
        learner.observe(b)
    return (time.perf_counter() - t) / (n - 30) * 1e3


def cost_table(repeats: int = 3) -> None:
    """The step cost of cls against DER++ and ER, interleaved ``repeats`` times (the minimum is
    the least disturbed by other load)."""
    for batch, dim in ((10, 64), (10, 784), (32, 784)):
        times: dict[str, list[float]] = {"er": [], "derpp": [], "cls": []}
        for _ in range(repeats):
            for k in times:
                times[k].append(step_cost(k, batch, dim))
        best = {k: min(v) for k, v in times.items()}
        print(f"batch {batch}, input {dim}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in best.items())
              + f"; cls/derpp {best['cls'] / best['derpp']:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cost", action="store_true", help="only the per-step cost table (cls, DER++, ER)")
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument("--learners", default="er,derpp,cls_er,cls")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if args.cost:
        cost_table()
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    specs = args.learners.split(";" if ";" in args.learners else ",")
    for stream in args.streams.split(","):
        # seeds outer, learners inner: each seed's runs of every learner follow one another in this
        # process, so their wall times (and the cls/derpp ratio per seed) see the same machine load
        per: dict[str, list[dict]] = {spec: [] for spec in specs}
        for seed in seeds:
            for spec in specs:
                per[spec].append(run_one(STREAMS[stream], parse_learner(spec), [seed]))
        for spec in specs:
            rs = per[spec]
            res = {"acc_seeds": [r["acc_seeds"][0] for r in rs], "la_seeds": [r["la"] for r in rs],
                   "train_s": [r["train_s"][0] for r in rs], "steps": [r["steps"][0] for r in rs]}
            res["acc"], res["la"] = float(np.mean(res["acc_seeds"])), float(np.mean(res["la_seeds"]))
            results.setdefault(stream, {})[spec] = res
            print(f"{stream:20s} {spec:40s} acc {res['acc']:.4f} {[round(a, 4) for a in res['acc_seeds']]} "
                  f"la {res['la']:.3f} train {[round(t, 2) for t in res['train_s']]}s ({res['steps'][0]} steps)",
                  flush=True)
        if "cls" in per and "derpp" in per:
            ratios = [c / d for c, d in zip(results[stream]["cls"]["train_s"], results[stream]["derpp"]["train_s"])]
            print(f"{stream:20s} cls/derpp train time per seed {[round(r, 2) for r in ratios]}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**results, "_load": os.getloadavg()}, indent=1))
    for stream, res in results.items():
        if stream.startswith("_") or "cls" not in res:
            continue
        print(f"{stream}: " + "; ".join(f"cls − {k}: {paired(res['cls']['acc_seeds'], v['acc_seeds'])}"
                                        for k, v in res.items() if k != "cls" and len(v["acc_seeds"]) == len(res["cls"]["acc_seeds"])))


if __name__ == "__main__":
    main()
