"""Wall time of each method against the compute limit, measured side by side in one process.

The compute limit is the same number of SGD steps on preloaded batches, with each step's incoming
and replay samples in one forward pass (two replay draws for DER++), no buffer work, no checks and
no logging: what the hardware must do for that method's arithmetic. Beside it, in the same rounds:

- ``lifelong``: ``iter_run`` with the JSONL log writer, exactly as ``lifelong run`` trains (boundary
  evaluations included; the limit runs the same evaluations);
- for ER, a bare hand-written loop with two forward passes (incoming, then replay), the usual way
  such a loop is written.

Stream: Split Fashion-MNIST class-IL (5 chunks of 2 classes, one epoch, MLP 784-256-256-10, SGD
lr 0.05, memory 500) or Split digits when Fashion-MNIST is absent. Batch 32 and batch 10 (the
online setting, where per-step cost shows most). Rounds are interleaved (limit, lifelong, bare,
limit, ...) so that load changes hit all alike; the table gives medians, the ratio of medians and
the min-max over rounds. The 1-minute load average is printed beside the figures.

Peers (Avalanche, Mammoth) are not run here: they need torchvision, which has no CPU build for
this machine's torch pin; ``issue 13`` asks for them in throwaway environments.

Peak resident memory: each method is also run once more through ``lifelong`` in a fresh process
(``--peak-memory``, on by default), beside a process that only imports torch and builds the stream;
the difference is what training adds (network, optimiser, buffers, stored logits, Fisher, log).

Writes benchmarks/results/speed.json and prints a Markdown table. Never asserts on time.
Run: ``.venv/bin/python benchmarks/speed.py [--methods er,derpp] [--batches 32,10] [--rounds 5]``.
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

import torch
import torch.nn.functional as F

from lifelong.data.datasets import dataset_available, load_dataset
from lifelong.data.scenarios import class_incremental
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.learn.methods import make_learner
from lifelong.learn.nets import mlp
from lifelong.log import RunLog
from lifelong.seeding import derive_seed

OUT = Path(__file__).parent / "results" / "speed.json"
#: per method: how many replay draws of the incoming batch's size each step trains on
REPLAY_DRAWS = {"naive": 0, "er": 1, "er_ace": 1, "der": 1, "derpp": 2, "agem": 1, "ewc": 0, "lwf": 0}
#: A-GEM's reference gradient: its own forward-backward pass on ``ref_batch`` (default 256) memory
#: samples at every step after the first chunk (the paper's A-GEM has no reference in chunk 0)
AGEM_REF_BATCH = 256
#: EWC's Fisher sample per chunk (``fisher_samples``): one forward-backward over it at each boundary,
#: and the penalty's closed-form gradient (two element-wise passes) at every step after the first
EWC_FISHER_SAMPLES = 1000


def make_stream(seed: int = 0):
    name = "fashion_mnist" if dataset_available("fashion_mnist") else "digits"
    return name, class_incremental(load_dataset(name), n_chunks=5, seed=seed)


def through_lifelong(stream, method: str, batch: int, seed: int = 0) -> float:
    kw = {"mem_size": 500} if REPLAY_DRAWS.get(method) else {}
    learner = make_learner(method, mlp(stream.input_shape, 10, seed=seed), seed=seed, **kw)
    with tempfile.TemporaryDirectory() as d, RunLog(Path(d) / "log.jsonl") as log:
        t0 = time.perf_counter()
        for rec in iter_run(stream, learner, LoopConfig(batch_size=batch), seed=seed):
            log.write(rec)
        return time.perf_counter() - t0


def _evaluate(model, stream) -> None:
    with torch.no_grad():
        model.eval()
        for ev in stream.eval_sets:
            for e in range(0, len(ev), 2048):
                model(ev.x[e : e + 2048]).argmax(1)
        model.train()


def compute_limit(stream, method: str, batch: int, seed: int = 0) -> float:
    """The method's arithmetic alone: preloaded batches, one forward over incoming + replay.

    What each method must compute is included: A-GEM's reference pass (on 256 memory samples, from
    the second chunk on), LwF's teacher forward pass, EWC's Fisher pass at each boundary and its
    penalty gradient. Left out: buffer writes, sampling, checks, logging and any Python around them.
    """
    model = mlp(stream.input_shape, 10, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    draws = REPLAY_DRAWS.get(method, 0)
    teacher = mlp(stream.input_shape, 10, seed=seed + 1) if method == "lwf" else None
    params = list(model.parameters())
    weights = [torch.rand_like(p) for p in params]  # EWC: a stand-in importance and anchor
    pull = [w * p.detach() for w, p in zip(weights, params, strict=True)]
    # preloaded: every step's incoming batch and its replay samples, drawn before timing
    plan = []
    for chunk in stream.chunks:
        order = torch.randperm(len(chunk), generator=torch.Generator().manual_seed(derive_seed(seed, f"limit/{chunk.index}")))
        for s in range(0, len(chunk), batch):
            idx = order[s : s + batch]
            extra = torch.randint(len(chunk), (len(idx) * draws,), generator=torch.Generator().manual_seed(s))
            ref = None
            if method == "agem" and chunk.index > 0:
                j = torch.randint(len(chunk), (AGEM_REF_BATCH,), generator=torch.Generator().manual_seed(s))
                ref = (chunk.x[j], chunk.y[j])
            both = torch.cat([idx, extra])
            plan.append((chunk.x[both], chunk.y[both], len(idx), ref, method == "ewc" and chunk.index > 0))
        plan.append(chunk.x[:EWC_FISHER_SAMPLES] if method == "ewc" else None)  # boundary: (Fisher,) evaluate
    t0 = time.perf_counter()
    for item in plan:
        if not isinstance(item, tuple):
            if item is not None:  # EWC's Fisher: one forward-backward over the chunk's sample
                model.zero_grad(set_to_none=True)
                F.log_softmax(model(item), 1).max(1).values.sum().backward()
            _evaluate(model, stream)
            continue
        x, y, n, ref, penalty = item
        logits = model(x)
        loss = F.cross_entropy(logits[:n], y[:n])
        if len(y) > n:
            loss = loss + F.cross_entropy(logits[n:], y[n:])
        if teacher is not None:
            with torch.no_grad():
                teacher(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if ref is not None:  # A-GEM: the reference gradient's pass on the memory samples
            F.cross_entropy(model(ref[0]), ref[1]).backward()
        if penalty:
            grads = [p.grad for p in params]
            torch._foreach_addcmul_(grads, weights, params)
            torch._foreach_sub_(grads, pull)
        opt.step()
    return time.perf_counter() - t0


def bare_two_pass_er(stream, batch: int, seed: int = 0) -> float:
    """ER as a notebook would write it: incoming, then replay, each with its own forward pass."""
    model = mlp(stream.input_shape, 10, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(seed)
    cap, seen = 500, 0
    buf_x, buf_y = torch.zeros(cap, *stream.input_shape), torch.zeros(cap, dtype=torch.int64)
    t0 = time.perf_counter()
    for chunk in stream.chunks:
        order = torch.randperm(len(chunk), generator=torch.Generator().manual_seed(derive_seed(seed, f"shuffle/{chunk.index}/0")))
        for s in range(0, len(chunk), batch):
            idx = order[s : s + batch]
            x, y = chunk.x[idx], chunk.y[idx]
            loss = F.cross_entropy(model(x), y)
            size = min(seen, cap)
            if size:
                j = torch.randint(size, (len(idx),), generator=gen)
                loss = loss + F.cross_entropy(model(buf_x[j]), buf_y[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t = seen + torch.arange(len(y))
            slot = torch.where(t < cap, t, (torch.rand(len(y), generator=gen) * (t + 1)).long())
            keep = slot < cap
            buf_x[slot[keep]], buf_y[slot[keep]] = x[keep], y[keep]
            seen += len(y)
        _evaluate(model, stream)
    return time.perf_counter() - t0


def peak_rss_mb(which: str, method: str = "", batch: int = 0, threads: int = 1) -> float:
    """Peak resident memory (MB) of a fresh process that builds the stream and, unless ``which`` is
    ``"data"``, trains ``method`` through ``lifelong`` once."""
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a child would
    # report this (large) benchmark process's own high-water mark
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import speed; "
            f"torch.set_num_threads({threads}); _, st = speed.make_stream(); "
            + ("" if which == "data" else f"speed.through_lifelong(st, {method!r}, {batch}); ")
            + "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.split()[-1]) / 1024  # kB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="er,derpp,agem,ewc,lwf")
    ap.add_argument("--batches", default="32,10")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "1")))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--no-peak-memory", dest="peak_memory", action="store_false")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, stream = make_stream()
    rows = []
    print(f"stream: split {data}, {sum(len(c) for c in stream.chunks)} training samples; threads {args.threads}; "
          f"load {os.getloadavg()[0]:.2f}\n")
    base_mb = peak_rss_mb("data", threads=args.threads) if args.peak_memory else None
    if base_mb is not None:
        print(f"peak RSS of a process holding only torch and the stream: {base_mb:.0f} MB\n")
    print("| method | batch | limit s | lifelong s | lifelong / limit (min-max) | bare two-pass ER / limit | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for batch in (int(b) for b in args.batches.split(",")):
        for method in args.methods.split(","):
            times: dict[str, list[float]] = {"limit": [], "lifelong": [], "bare": []}
            for _ in range(args.rounds):
                times["limit"].append(compute_limit(stream, method, batch))
                times["lifelong"].append(through_lifelong(stream, method, batch))
                if method == "er":
                    times["bare"].append(bare_two_pass_er(stream, batch))
            lim = statistics.median(times["limit"])
            ratios = [a / b for a, b in zip(times["lifelong"], times["limit"], strict=True)]
            row = {"method": method, "batch": batch, "limit_s": lim, "lifelong_s": statistics.median(times["lifelong"]),
                   "ratio": statistics.median(times["lifelong"]) / lim, "ratio_min": min(ratios), "ratio_max": max(ratios),
                   "bare_ratio": statistics.median(times["bare"]) / lim if times["bare"] else None,
                   "load_1m": os.getloadavg()[0], "times": times,
                   "peak_mb": peak_rss_mb("lifelong", method, batch, args.threads) if args.peak_memory else None}
            rows.append(row)
            bare = f"{row['bare_ratio']:.2f}" if row["bare_ratio"] else "-"
            peak = f"{row['peak_mb']:.0f}" if row["peak_mb"] else "-"
            print(f"| {method} | {batch} | {lim:.2f} | {row['lifelong_s']:.2f} | {row['ratio']:.2f} "
                  f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) | {bare} | {peak} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "data": data,
                                          "threads": args.threads, "rounds": args.rounds, "data_only_peak_mb": base_mb,
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
