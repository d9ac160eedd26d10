"""Training throughput (images per second) of ER and DER++ with the reduced ResNet-18 at batch 32 on
32x32 colour images, through ``lifelong`` and through a bare PyTorch loop doing the same work.

Stream: synthetic CIFAR-shaped data (3x32x32, 10 classes, ``--images`` training images split into
5 chunks of 2 classes, one epoch), the CIFAR recipe's augmentation (random crop, padding 4, and
horizontal flip) on the incoming and the replay batches, memory 500, replay batch 32, SGD lr 0.03.
The reduced ResNet-18 has BatchNorm, so each batch gets its own forward call in both loops (the
incoming batch, then one replay batch for ER, two for DER++).

- ``lifelong``: ``iter_run`` over the stream (boundary evaluations on 10 test images per chunk);
- bare: the same steps written by hand: preallocated buffer tensors, reservoir insertion, uniform
  replay draws, the same augmentation function, summed losses, one backward pass and one SGD step.

Images per second count the incoming training images. Rounds are interleaved (lifelong, bare, ...)
and the table gives the median of each and their ratio (the goal on an accelerator is <= 1.10).
``--device`` picks the device (default: auto). Writes benchmarks/results/throughput.json and
prints a Markdown table. Never asserts on time.

Run: ``.venv/bin/python benchmarks/throughput.py [--nf 64] [--images 640] [--rounds 3] [--device auto]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lifelong.data import Dataset
from lifelong.data.scenarios import class_incremental
from lifelong.device import resolve_device
from lifelong.learn.augment import AUGMENTATIONS
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.learn.methods import make_learner
from lifelong.learn.nets import resnet18

OUT = Path(__file__).parent / "results" / "throughput.json"
MEM, BATCH, LR = 500, 32, 0.03
DERPP = {"alpha": 0.2, "beta": 0.5}


def synthetic(n_train: int, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(10).repeat_interleave(n_train // 10)
    x = (torch.rand(len(y), 3, 32, 32, generator=g) + y[:, None, None, None] / 10.0) / 2.0
    yt = torch.arange(10).repeat_interleave(2)
    xt = (torch.rand(len(yt), 3, 32, 32, generator=g) + yt[:, None, None, None] / 10.0) / 2.0
    return Dataset("synthetic-cifar", x, y, xt, yt)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def through_lifelong(method: str, stream, nf: int, device: torch.device) -> float:
    net = resnet18((3, 32, 32), 10, nf=nf, seed=0).to(device)
    hp = DERPP if method == "derpp" else {}
    learner = make_learner(method, net, mem_size=MEM, replay_batch=BATCH, lr=LR, seed=0, augment="crop_flip", **hp)
    sync(device)
    t0 = time.perf_counter()
    for _ in iter_run(stream, learner, LoopConfig(batch_size=BATCH), seed=0):
        pass
    sync(device)
    return time.perf_counter() - t0


def bare(method: str, stream, nf: int, device: torch.device) -> float:
    """The same training, hand-written: reservoir buffer, augmentation, forward calls, one step."""
    net = resnet18((3, 32, 32), 10, nf=nf, seed=0).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    aug = AUGMENTATIONS["crop_flip"]
    g_aug, g_mem, g_draw = (torch.Generator().manual_seed(s) for s in (1, 2, 3))
    bx = torch.zeros(MEM, 3, 32, 32, device=device)
    by = torch.zeros(MEM, dtype=torch.int64, device=device)
    bz = torch.zeros(MEM, 10, device=device)
    seen = 0
    sync(device)
    t0 = time.perf_counter()
    for chunk in stream.chunks:
        order = torch.randperm(len(chunk), generator=torch.Generator().manual_seed(chunk.index))
        for s in range(0, len(chunk), BATCH):
            idx = order[s : s + BATCH]
            x, y = chunk.x[idx].to(device), chunk.y[idx].to(device)
            net.train()
            out = net(aug(x, g_aug))
            loss = F.cross_entropy(out, y)
            if seen:
                n = min(seen, MEM)
                r = torch.randperm(n, generator=g_draw)[:BATCH].to(device)
                if method == "er":
                    loss = loss + F.cross_entropy(net(aug(bx[r], g_aug)), by[r])
                else:
                    loss = loss + DERPP["alpha"] * F.mse_loss(net(aug(bx[r], g_aug)), bz[r])
                    r2 = torch.randperm(n, generator=g_draw)[:BATCH].to(device)
                    loss = loss + DERPP["beta"] * F.cross_entropy(net(aug(bx[r2], g_aug)), by[r2])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())  # the loss a log would record (one read back per step, as lifelong does)
            u = torch.rand(len(y), generator=g_mem, dtype=torch.float64).tolist()
            for i, ui in enumerate(u):  # reservoir sampling
                t = seen + i
                slot = t if t < MEM else min(int(ui * (t + 1)), t)
                if slot < MEM:
                    bx[slot], by[slot], bz[slot] = x[i], y[i], out[i].detach()
            seen += len(y)
        net.eval()
        with torch.no_grad():
            for ev in stream.eval_sets:
                int((net(ev.x.to(device)).argmax(1) == ev.y.to(device)).sum())
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nf", type=int, default=64)
    ap.add_argument("--images", type=int, default=640)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", default="er,derpp")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    stream = class_incremental(synthetic(args.images), n_chunks=5)
    n_images = sum(len(c) for c in stream.chunks)
    rows = {}
    for method in args.methods.split(","):
        times: dict[str, list[float]] = {"lifelong": [], "bare": []}
        for _ in range(args.rounds):
            times["lifelong"].append(through_lifelong(method, stream, args.nf, device))
            times["bare"].append(bare(method, stream, args.nf, device))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows[method] = {"images_per_s": {k: n_images / v for k, v in med.items()},
                        "ratio": med["lifelong"] / med["bare"], "times_s": times}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    result = {"device": str(device), "gpu": gpu, "nf": args.nf, "images": n_images, "batch": BATCH,
              "rounds": args.rounds, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "load_1min": os.getloadavg()[0], "machine": platform.machine(), "methods": rows}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"device {device}{f' ({gpu})' if gpu else ''}, reduced ResNet-18 nf={args.nf}, batch {BATCH}, "
          f"{n_images} images, {args.rounds} rounds, {torch.get_num_threads()} threads, load {result['load_1min']:.1f}\n")
    print("| method | lifelong img/s | bare img/s | ratio (time) |\n|---|---|---|---|")
    for m, r in rows.items():
        ips = r["images_per_s"]
        print(f"| {m} | {ips['lifelong']:.1f} | {ips['bare']:.1f} | {r['ratio']:.3f} |")


if __name__ == "__main__":
    main()
