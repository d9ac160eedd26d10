"""Every learner with its default settings on varied streams: the bar of issue 10.

Each stream is a run config with only ``[dataset]`` and ``[scenario]`` (and ``seeds``) set: the
protocol (epochs, batch size, learning rate) and every hyper-parameter are the defaults a new user
gets. For each stream and learner we report the mean final ACC and learning accuracy over seeds,
and check the bar:

- no replay method, and none of issue 15's methods, ends below naive fine-tuning;
- Joint and Cumulative are upper references (no learner clearly above them);
- the regularisers beat naive on domain-incremental streams;
- nobody's learning accuracy stays near chance.

Writes ``benchmarks/results/defaults_matrix.json`` and prints a Markdown table per stream.
Never asserts on time. Run: ``.venv/bin/python benchmarks/defaults_matrix.py [--streams a,b] [--learners x,y]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lifelong.data.datasets import dataset_available
from lifelong.evaluate import classic_metrics
from lifelong.experiments.config import from_dict
from lifelong.experiments.runner import build_run, iter_seed, load_data
from lifelong.learn.methods import builtin_learners

OUT = Path(__file__).parent / "results" / "defaults_matrix.json"

STREAMS: dict[str, dict] = {
    "digits-cil5": {"dataset": {"name": "digits"}, "scenario": {"name": "class_incremental", "n_chunks": 5}},
    "digits-cil10": {"dataset": {"name": "digits"}, "scenario": {"name": "class_incremental", "n_chunks": 10}},
    "digits-til5": {"dataset": {"name": "digits"}, "scenario": {"name": "task_incremental", "n_chunks": 5}},
    "digits-dil20": {"dataset": {"name": "digits"}, "scenario": {"name": "domain_incremental", "n_chunks": 20}},
    "digits-online": {"dataset": {"name": "digits"}, "scenario": {"name": "online", "n_chunks": 5}},
    "digits-online10": {"dataset": {"name": "digits"}, "scenario": {"name": "online", "n_chunks": 10}},
    "mnist1d-cil5": {"dataset": {"name": "mnist1d"}, "scenario": {"name": "class_incremental", "n_chunks": 5}},
    "mnist1d-online": {"dataset": {"name": "mnist1d"}, "scenario": {"name": "online", "n_chunks": 5}},
    "mnist1d-dil10": {"dataset": {"name": "mnist1d"}, "scenario": {"name": "domain_incremental", "n_chunks": 10}},
    "blobs-cil5": {"dataset": {"name": "blobs"}, "scenario": {"name": "class_incremental", "n_chunks": 5}},
    "fmnist-cil5": {"dataset": {"name": "fashion_mnist"}, "scenario": {"name": "class_incremental", "n_chunks": 5}},
    "fmnist-dil5": {"dataset": {"name": "fashion_mnist"}, "scenario": {"name": "domain_incremental", "n_chunks": 5}},
}
REPLAY = {"er", "der", "derpp", "xder", "er_ace", "agem", "cls_er", "gdumb", "icarl", "powerlaw", "error_memory"}
#: The methods of issue 15, held to the same bar as the replay methods: never below naive.
NEW_METHODS = {"gem", "mir", "ncm", "slda", "ranpac", "scr", "gss", "lucir", "bic", "wa"}
REGULARISERS = {"ewc", "si", "mas", "l2", "lwf"}
REFERENCES = {"joint", "cumulative"}


def run_one(doc: dict, seeds: list[int]) -> dict:
    cfg = from_dict({**doc, "seeds": seeds})
    ds = load_data(cfg)
    accs, las, forg = [], [], []
    t0 = time.perf_counter()
    for seed in seeds:
        try:
            run = build_run(cfg, seed, ds)
            records = list(iter_seed(run))
        except Exception as e:  # noqa: BLE001 - a refusal is a result here
            return {"error": f"{type(e).__name__}: {e}"[:200]}
        m = classic_metrics(records, seed)
        accs.append(m["acc"])
        las.append(m["learning_accuracy"])
        forg.append(m["forgetting"])
    return {"acc": float(np.mean(accs)), "acc_seeds": accs, "la": float(np.mean(las)),
            "forgetting": float(np.nanmean(forg)) if not all(np.isnan(forg)) else float("nan"),
            "wall_s": time.perf_counter() - t0}


def check(stream: str, res: dict) -> list[str]:
    bad = []
    if "naive" not in res or "error" in res["naive"]:
        return bad
    naive = res["naive"]["acc"]
    refs = [res[r]["acc"] for r in REFERENCES if r in res and "error" not in res[r]]
    n_classes = 10
    for name, r in res.items():
        if "error" in r:
            continue
        if name in REPLAY | NEW_METHODS and r["acc"] < naive - 0.01:
            kind = "replay" if name in REPLAY else "new method"
            bad.append(f"{stream}: {kind} {name} {r['acc']:.3f} below naive {naive:.3f}")
        if "dil" in stream and name in REGULARISERS and r["acc"] < naive + 0.005:
            bad.append(f"{stream}: regulariser {name} {r['acc']:.3f} does not beat naive {naive:.3f}")
        if refs and name not in REFERENCES and r["acc"] > max(refs) + 0.02:
            bad.append(f"{stream}: {name} {r['acc']:.3f} above the references {max(refs):.3f}")
        if r["la"] < 1.5 / n_classes and "cil" in stream:
            bad.append(f"{stream}: {name} learning accuracy {r['la']:.3f} near chance")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument("--learners", default="")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    learners = args.learners.split(",") if args.learners else list(builtin_learners())
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict] = {}
    problems: list[str] = []
    for stream in args.streams.split(","):
        doc = STREAMS[stream]
        if not dataset_available(doc["dataset"]["name"]):
            print(f"## {stream}: skipped (dataset not available)")
            continue
        res = {}
        print(f"## {stream}\n\n| learner | ACC | LA | forgetting | s |\n|---|---|---|---|---|", flush=True)
        for name in learners:
            r = run_one({**doc, "learner": {"name": name}}, seeds)
            res[name] = r
            if "error" in r:
                print(f"| {name} | refused: {r['error']} | | | |", flush=True)
            else:
                print(f"| {name} | {r['acc']:.3f} | {r['la']:.3f} | {r['forgetting']:.3f} | {r['wall_s']:.1f} |", flush=True)
        results[stream] = res
        bad = check(stream, res)
        problems += bad
        print("\n" + ("\n".join(f"- {b}" for b in bad) or "- bar met") + "\n", flush=True)
        # written after every stream, so that an interrupted run keeps what it measured
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "seeds": seeds,
                                              "results": results, "problems": problems}, indent=1))
    print(f"{len(problems)} problem(s)")


if __name__ == "__main__":
    main()
