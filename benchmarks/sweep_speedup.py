"""Wall time of a 12-run sweep: the Ray backend on a local 2-CPU Ray against the local backend
(the same runs in sequence, one torch thread each in both).

The grid: Split Fashion-MNIST (class-incremental, 5 chunks), ER with an MLP 784-256-256-10, three
epochs per chunk, ``learner.mem_size`` in {200, 500} x ``train.lr`` in {0.01, 0.05} x seeds
{0, 1, 2}. Each run takes over 10 s on one core. ``--quick`` swaps in scikit-learn's digits for a
smoke test.

Reported:

- ``local_s``: the local backend, end to end;
- ``ray_total_s``: the Ray backend end to end, cold: ``ray.init`` + the sweep + ``ray.shutdown``;
- ``ray_init_s``, ``ray_shutdown_s`` and ``ray_overhead_s = ray_total_s - local_s / 2``: what Ray
  costs on top of a perfect 2-way split of the local time (start-up, worker processes importing
  torch, scheduling, and any slow-down of two runs sharing the machine);
- ``speedup = local_s / ray_total_s`` (2.0 is the ceiling on 2 cores);
- the mean run time in each backend, the machine's load average, and whether every run's
  ``log.jsonl`` is byte-identical between the backends;
- ``cores_used``: the runs' CPU time (``status.json``'s ``cpu_time_s``) over each phase's wall
  time: about 1 for the local backend, up to 2 for Ray when the machine lets it;
- ``cpu_capacity``: how many cores this process could get at the time, measured before and after
  by running a fixed CPU-bound loop in 1 and then in 2 processes (``2 * t_1 / t_2``): 2.0 on an idle
  2-core machine, about 1.0 when another job keeps one core busy. The speed-up cannot exceed it.

Writes ``benchmarks/results/sweep_speedup.json`` and prints a Markdown block. Never asserts on time.

Usage: ``python benchmarks/sweep_speedup.py [--quick] [--num-cpus 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lifelong.experiments.sweep import parse_sweep, ray_session, read_status, run_sweep  # noqa: E402


def sweep_file(quick: bool) -> dict:
    if quick:
        data = {"dataset": {"name": "digits"}, "scenario": {"name": "class_incremental", "n_chunks": 5},
                "model": {"hidden": [64]}, "train": {"epochs": 2, "batch_size": 32}}
    else:
        data = {"dataset": {"name": "fashion_mnist"}, "scenario": {"name": "class_incremental", "n_chunks": 5},
                "model": {"hidden": [256, 256]}, "train": {"epochs": 3, "batch_size": 32}}
    return {"name": "speedup", "seeds": [0, 1, 2], "learner": {"name": "er"}, **data,
            "axes": {"learner.mem_size": [200, 500], "train.lr": [0.01, 0.05]}}


SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(15_000_000): x += i\nprint(time.perf_counter() - t)"


def cpu_capacity(n: int) -> float:
    """``n * t_1 / t_n``: the cores a CPU-bound process gets when ``n`` run at once (n = ideal)."""
    import subprocess

    def spin(k: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for _ in range(k)]
        return statistics.mean(float(p.communicate()[0]) for p in procs)

    return round(n * spin(1) / spin(n), 2)


def run_times(sweep_dir: Path, names: list[str], key: str = "wall_time_s") -> list[float]:
    return [float(read_status(sweep_dir / n)[key]) for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="digits instead of Fashion-MNIST (a smoke test)")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sweep_speedup.json")
    args = ap.parse_args()

    from rich.console import Console

    console = Console(stderr=True)
    plan = parse_sweep(sweep_file(args.quick))
    names = [r.name for r in plan.runs]
    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    load_before = os.getloadavg()
    capacity_before = cpu_capacity(args.num_cpus)
    try:
        console.print(f"local backend: {len(names)} runs in sequence")
        t0 = time.perf_counter()
        local = run_sweep(plan, work / "local", backend="local", console=console, compare=False)
        local_s = time.perf_counter() - t0

        console.print(f"ray backend: a local Ray with {args.num_cpus} CPUs")
        t0 = time.perf_counter()
        with ray_session(num_cpus=args.num_cpus) as ray:
            ray_init_s = time.perf_counter() - t0
            ray_version = ray.__version__
            t_sweep = time.perf_counter()
            ray_res = run_sweep(plan, work / "ray", backend="ray", console=console, compare=False)
            t_shutdown = time.perf_counter()
            ray_sweep_s = t_shutdown - t_sweep
        ray_shutdown_s = time.perf_counter() - t_shutdown
        ray_total_s = time.perf_counter() - t0

        identical = all((work / "local" / n / "log.jsonl").read_bytes() == (work / "ray" / n / "log.jsonl").read_bytes()
                        for n in names)
        local_runs, ray_runs = run_times(work / "local", names), run_times(work / "ray", names)
        # cores the runs actually got: their CPU time over the phase's wall time
        local_cores = sum(run_times(work / "local", names, "cpu_time_s")) / local_s
        ray_cores = sum(run_times(work / "ray", names, "cpu_time_s")) / ray_sweep_s
        nodes = sorted({read_status(work / "ray" / n).get("node_id", "")[:8] for n in names})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import torch

    result = {
        "benchmark": "sweep_speedup", "quick": args.quick, "n_runs": len(names), "num_cpus": args.num_cpus,
        "grid": sweep_file(args.quick), "failed": {**local.failed, **ray_res.failed},
        "local_s": round(local_s, 2), "ray_total_s": round(ray_total_s, 2), "ray_init_s": round(ray_init_s, 2),
        "ray_shutdown_s": round(ray_shutdown_s, 2), "ray_overhead_s": round(ray_total_s - local_s / args.num_cpus, 2),
        "speedup": round(local_s / ray_total_s, 3),
        "run_s_local": {"mean": round(statistics.mean(local_runs), 2), "min": round(min(local_runs), 2), "max": round(max(local_runs), 2)},
        "run_s_ray": {"mean": round(statistics.mean(ray_runs), 2), "min": round(min(ray_runs), 2), "max": round(max(ray_runs), 2)},
        "identical_logs": identical, "ray_nodes": nodes,
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_capacity": {"before": capacity_before, "after": cpu_capacity(args.num_cpus)},
        "cores_used": {"local": round(local_cores, 2), "ray": round(ray_cores, 2)},
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "ray": ray_version},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    r = result
    print(f"""
### Sweep speed-up: Ray vs local ({r['n_runs']} runs, {'digits' if r['quick'] else 'Split Fashion-MNIST ER'}, {r['num_cpus']} CPUs)

| backend | wall time (s) | mean run (s) |
|---|---|---|
| local, in sequence | {r['local_s']:.1f} | {r['run_s_local']['mean']:.1f} |
| Ray, {r['num_cpus']} CPUs (cold start included) | {r['ray_total_s']:.1f} | {r['run_s_ray']['mean']:.1f} |

- speed-up: **{r['speedup']:.2f}×** (ceiling {r['num_cpus']}×); identical per-run logs: {r['identical_logs']}
- Ray start-up (`ray.init`): {r['ray_init_s']:.1f} s, shutdown {r['ray_shutdown_s']:.1f} s; overhead over a perfect split
  of the local time: {r['ray_overhead_s']:.1f} s
- cores the runs actually got (their CPU time / wall time): local {r['cores_used']['local']}, Ray {r['cores_used']['ray']}
- CPU capacity available (cores a CPU-bound process got with {r['num_cpus']} running; {r['num_cpus']}.0 = idle), before/after:
  {r['cpu_capacity']['before']} / {r['cpu_capacity']['after']}; load average before/after: {r['loadavg_before'][0]} / {r['loadavg_after'][0]}
""")


if __name__ == "__main__":
    main()
