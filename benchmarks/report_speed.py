"""How long the reports of a realistic experiment take to build (goal: under 10 s).

The experiment: four learners (Naive, ER, DER++, EWC) on Split Fashion-MNIST (class-incremental,
5 chunks of 2 classes, one epoch, batch 32, MLP 784-256-256-10), 3 seeds each, evaluated every 100
batches so the accuracy curves have some 20 points per chunk. The runs are made first (and reused
from ``--runs`` when their config matches); they are not timed.

Timed, in a fresh Python process each repeat (so imports of matplotlib and lifelong count, as for
a user typing the command):

- ``html``: :func:`lifelong.report.html_report` for each of the 4 runs (reads ``metrics.json`` and
  the log through :func:`lifelong.log.read_log` without its ``train`` records, computes the
  curves with :func:`lifelong.evaluate.curves.accuracy_curves`, draws the heatmap and the curves,
  writes ``report.html`` and the PNGs);
- ``compare``: :func:`lifelong.report.compare_runs` over the 4 runs (tables, scatter, overlay);
- ``total``: both, plus the imports; this is the number measured against the goal;
- ``rebuild_metrics`` (reported separately): :func:`lifelong.experiments.run.write_outputs` for each run,
  which ``lifelong report RUN --html`` also does (classic and L2M metrics recomputed from the log).

Writes benchmarks/results/report_speed.json and prints a short summary. Never asserts on time.
Run: ``.venv/bin/python benchmarks/report_speed.py`` (``--repeats 3``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "report_speed.json"
LEARNERS = {"naive": {}, "er": {"mem_size": 500}, "derpp": {"mem_size": 500}, "ewc": {}}
SEEDS = [0, 1, 2]


def config(learner: str) -> dict:
    return {
        "name": f"report-speed-{learner}", "seeds": SEEDS, "threads": 1,
        "dataset": {"name": "fashion_mnist"},
        "scenario": {"name": "class_incremental", "n_chunks": 5},
        "model": {"kind": "mlp", "hidden": [256, 256]},
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "eval_every": 100},
        "learner": {"name": learner, **LEARNERS[learner]},
    }


def make_runs(runs: Path) -> list[Path]:
    """Run every learner (3 seeds) unless a finished run with the same config is already there."""
    from lifelong.experiments.config import from_dict
    from lifelong.experiments.run import execute

    dirs = []
    for learner in LEARNERS:
        cfg = from_dict(config(learner))
        run_dir = runs / cfg.name
        done = (run_dir / "metrics.json").is_file() and (run_dir / "config.toml").is_file() \
            and (run_dir / "config.toml").read_text() == cfg.to_toml()
        if not done:
            t0 = time.perf_counter()
            execute(cfg, run_dir, force=True)
            print(f"ran {cfg.name} in {time.perf_counter() - t0:.0f} s", flush=True)
        dirs.append(run_dir)
    return dirs


def time_once(run_dirs: list[str], out: str) -> dict:
    """One timed repeat (runs in a child process; imports are part of the time)."""
    t0 = time.perf_counter()
    from lifelong.report import compare_runs, html_report

    t_import = time.perf_counter()
    per_run = []
    for d in run_dirs:
        t = time.perf_counter()
        html_report(d, out_dir=Path(out) / Path(d).name)
        per_run.append(time.perf_counter() - t)
    t_html = time.perf_counter()
    result = compare_runs(run_dirs, Path(out) / "compare")
    t_compare = time.perf_counter()
    from lifelong.experiments.run import write_outputs

    t_rebuild = time.perf_counter()
    for d in run_dirs:
        write_outputs(d)
    t_end = time.perf_counter()
    return {
        "import_s": t_import - t0, "html_s": t_html - t_import, "html_per_run_s": per_run,
        "compare_s": t_compare - t_html, "total_s": t_compare - t0, "rebuild_metrics_s": t_end - t_rebuild,
        "verdict": result.verdict,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / ".cache" / "report_speed_runs",
                        help="where the 4 runs are made and reused")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-once", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_once:  # child process: one timed repeat; last argument is the output directory
        print(json.dumps(time_once(args.time_once[:-1], args.time_once[-1])))
        return

    from lifelong.data.datasets import dataset_available

    if not dataset_available("fashion_mnist"):
        sys.exit("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); nothing measured")
    run_dirs = make_runs(args.runs)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    repeats = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            res = subprocess.run([sys.executable, __file__, "--time-once", *map(str, run_dirs), out],
                                 capture_output=True, text=True, check=True, env=env)
        repeats.append(json.loads(res.stdout.strip().splitlines()[-1]))
    total = [r["total_s"] for r in repeats]
    log_lines = sum(1 for _ in open(run_dirs[0] / "log.jsonl", encoding="utf-8"))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), python {platform.python_version()}",
        "experiment": "Split Fashion-MNIST, class-incremental, 5 chunks; naive, er, derpp, ewc; 3 seeds each; "
                      "eval_every 100",
        "log_lines_per_run": log_lines,
        "goal_s": 10.0,
        "total_s": [round(t, 3) for t in total],
        "total_median_s": round(statistics.median(total), 3),
        "import_s": [round(r["import_s"], 3) for r in repeats],
        "html_4_runs_s": [round(r["html_s"], 3) for r in repeats],
        "compare_s": [round(r["compare_s"], 3) for r in repeats],
        "rebuild_metrics_4_runs_s": [round(r["rebuild_metrics_s"], 3) for r in repeats],
        "verdict": repeats[-1]["verdict"],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"reports of 4 runs x 3 seeds + compare: median {result['total_median_s']:.2f} s "
          f"(goal < {result['goal_s']:.0f} s); wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
