"""Per-step overhead of lifelong against a bare hand-written PyTorch loop, and memory flatness.

1. The same ER training (online: batch 10, one epoch, replay 10, memory 500) on Split
   Fashion-MNIST (or Split digits if Fashion-MNIST is absent), run (a) through ``lifelong``'s
   ``iter_run`` with the JSONL log writer and (b) through a bare loop doing the same forward,
   backward and SGD steps, the same reservoir buffer work and the same boundary evaluations.
   Reported: the wall-time ratio (goal <= 1.15), best of ``--repeats`` runs each.
2. Peak resident memory while ER streams 1,000,000 synthetic samples through a 500-sample buffer,
   sampled at growing stream lengths: it must stay flat.

Writes benchmarks/results/overhead.json and prints a Markdown block. Never asserts on time.
Run: ``.venv/bin/python benchmarks/overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lifelong.data import Batch
from lifelong.data.datasets import dataset_available, load_dataset
from lifelong.learn.methods import make_learner
from lifelong.seeding import derive_seed
from lifelong.log import RunLog
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.learn.nets import mlp
from lifelong.data.scenarios import class_incremental

OUT = Path(__file__).parent / "results" / "overhead.json"


def through_lifelong(stream, seed: int) -> float:
    learner = make_learner("er", mlp(stream.input_shape, 10, seed=seed), seed=seed, mem_size=500)
    with tempfile.TemporaryDirectory() as d, RunLog(Path(d) / "log.jsonl") as log:
        t0 = time.perf_counter()
        for rec in iter_run(stream, learner, LoopConfig(batch_size=10), seed=seed):
            log.write(rec)
        return time.perf_counter() - t0


def bare_loop(stream, seed: int) -> float:
    """Hand-written ER: what a researcher would write in a notebook, no abstractions."""
    model = mlp(stream.input_shape, 10, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(derive_seed(seed, "learner"))
    mem_gen = torch.Generator().manual_seed(derive_seed(seed, "memory"))
    cap = 500
    buf_x = torch.zeros(cap, *stream.input_shape)
    buf_y = torch.zeros(cap, dtype=torch.int64)
    seen = 0
    t0 = time.perf_counter()
    for chunk in stream.chunks:
        order = torch.randperm(len(chunk), generator=torch.Generator().manual_seed(derive_seed(seed, f"shuffle/{chunk.index}/0")))
        for s in range(0, len(chunk), 10):
            idx = order[s : s + 10]
            x, y = chunk.x[idx], chunk.y[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            total = loss
            size = min(seen, cap)
            if size:
                j = torch.randperm(size, generator=gen)[:10]
                total = total + F.cross_entropy(model(buf_x[j]), buf_y[j])
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            _ = (float(loss.detach()), int((logits.argmax(1) == y).sum()))  # the same per-step stats
            # reservoir insertion
            t = seen + torch.arange(len(y))
            u = torch.rand(len(y), generator=mem_gen, dtype=torch.float64)
            slot = torch.where(t < cap, t, torch.minimum((u * (t + 1)).long(), t))
            keep = slot < cap
            buf_x[slot[keep]] = x[keep]
            buf_y[slot[keep]] = y[keep]
            seen += len(y)
        with torch.no_grad():
            model.eval()
            for ev in stream.eval_sets:
                for e in range(0, len(ev), 2048):
                    out = model(ev.x[e : e + 2048])
                    _ = (int((out.argmax(1) == ev.y[e : e + 2048]).sum()), float(F.cross_entropy(out, ev.y[e : e + 2048], reduction="sum")))
            model.train()
    return time.perf_counter() - t0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_flatness(n_total: int, seed: int = 0) -> list[dict]:
    dim, batch = 20, 10
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(10, dim, generator=g) * 3
    learner = make_learner("er", mlp((dim,), 10, hidden=(64,), seed=seed), seed=seed, mem_size=500)
    marks = {n_total // 100, n_total // 10, n_total // 4, n_total // 2, n_total}
    out, seen = [], 0
    while seen < n_total:
        y = torch.randint(0, 10, (batch,), generator=g)
        learner.observe(Batch(means[y] + torch.randn(batch, dim, generator=g), y))
        seen += batch
        if seen in marks:
            out.append({"samples": seen, "rss_mb": round(rss_mb(), 1), "memory_size": len(learner.memory)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream", type=int, default=1_000_000, help="samples in the memory-flatness stream")
    args = ap.parse_args()
    torch.set_num_threads(1)  # both variants on one thread: the comparison is about overhead, not BLAS
    name = "fashion_mnist" if dataset_available("fashion_mnist") else "digits"
    stream = class_incremental(load_dataset(name), n_chunks=5)
    lifelong_t, bare_t = [], []
    for r in range(args.repeats):  # interleave so that machine noise hits both alike
        bare_t.append(bare_loop(stream, seed=r))
        lifelong_t.append(through_lifelong(stream, seed=r))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread",
        "dataset": name, "steps": sum(-(-len(c) // 10) for c in stream.chunks),
        "lifelong_s": [round(t, 3) for t in lifelong_t], "bare_s": [round(t, 3) for t in bare_t],
        "ratio_best": round(min(lifelong_t) / min(bare_t), 3),
        "ratio_median": round(sorted(lifelong_t)[len(lifelong_t) // 2] / sorted(bare_t)[len(bare_t) // 2], 3),
        "memory": memory_flatness(args.stream),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"## Overhead (ER online, batch 10, Split {name}, {result['steps']} steps)\n")
    print(f"- machine: {result['machine']}")
    print(f"- bare loop: best {min(bare_t):.2f} s; lifelong: best {min(lifelong_t):.2f} s")
    print(f"- ratio lifelong/bare: {result['ratio_best']} (best of {args.repeats}), {result['ratio_median']} (median)\n")
    print("| stream samples | RSS (MB) | memory size |\n|---|---|---|")
    for m in result["memory"]:
        print(f"| {m['samples']:,} | {m['rss_mb']} | {m['memory_size']} |")


if __name__ == "__main__":
    main()
