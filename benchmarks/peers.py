"""``lifelong`` against Avalanche on the same stream: wall time as a ratio to the compute limit,
final accuracy and peak resident memory.

Avalanche 0.6 is installed by this script into a throwaway virtual environment (``--env``, default
``/tmp/lifelong-peers``) that reuses this interpreter's torch (the same 2.13.0 build, through a
``.pth`` file), with ``torchvision==0.28.0`` and Avalanche's import-time dependencies installed
without their own dependencies (``--no-deps``: Avalanche's full requirement list pulls wandb,
tensorboard and a set of QP solvers, none of which its strategies need here). This machine's
torchvision wheel is a CUDA build whose compiled operators cannot load next to a CPU torch; when
they fail to load, the throwaway copy's ``_meta_registrations.py`` is patched to skip registering
fake kernels for them. Avalanche uses torchvision only for datasets and transforms, which this
benchmark does not use. When any step of the set-up fails, the peer is skipped with a message.

Mammoth is not run: it is not a package (a clone of its repository, and its own dataset classes,
which read Fashion-MNIST through torchvision's downloader), and it has no offline Fashion-MNIST
dataset here.

The stream is ``speed.make_stream``'s Split Fashion-MNIST class-IL (5 chunks of 2 classes, one
epoch, MLP 784-256-256-10, SGD lr 0.05, memory 500), written once to a ``.pt`` file that both sides
read as preloaded float32 tensors in the same class order. Avalanche's strategies: ``Replay``
(class-balanced ``ExperienceBalancedBuffer``, its ER), ``DER`` (its DER++, α 0.1, β 0.5),
``AGEM`` (256-sample reference), ``EWC`` (λ 100) and ``LwF`` (α 1, T 2); each evaluates on the
whole test stream after every experience, as ``lifelong`` does. Rounds are interleaved (compute
limit, ``lifelong``, Avalanche); each Avalanche run is a fresh process that reports its own
training time (after its imports and data set-up), final accuracy and VmHWM. ``lifelong``'s peak
is measured the same way (``speed.peak_rss_mb``). Never asserts on time.

Run: ``.venv/bin/python benchmarks/peers.py [--methods er,derpp] [--batches 32,10] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import speed  # noqa: E402

from lifelong.evaluate.classic import accuracy_matrix  # noqa: E402
from lifelong.learn.loop import LoopConfig, iter_run  # noqa: E402
from lifelong.learn.methods import make_learner  # noqa: E402
from lifelong.learn.nets import mlp  # noqa: E402
from lifelong.log import RunLog  # noqa: E402

OUT = Path(__file__).parent / "results" / "peers.json"
#: what Avalanche 0.6's strategies import, installed with --no-deps (pins as tested here)
AVALANCHE_PINS = ["torchvision==0.28.0", "avalanche-lib==0.6.0", "dill", "gdown", "beautifulsoup4", "soupsieve",
                  "tqdm", "pytorchcv", "wandb", "platformdirs", "xxhash", "psutil", "gputil", "torchmetrics",
                  "lightning-utilities", "qpsolvers", "filelock", "requests", "urllib3", "idna", "certifi",
                  "charset-normalizer"]

CHILD = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
method, batch, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(int(sys.argv[4]))
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.utils.classification_dataset import _make_taskaware_tensor_classification_dataset as tensors
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import AGEM, DER, EWC, LwF, Replay
from avalanche.training.plugins import EvaluationPlugin
d = torch.load(data)
train = tensors(d["x_train"], d["y_train"], targets=d["y_train"].tolist(), task_labels=0)
test = tensors(d["x_test"], d["y_test"], targets=d["y_test"].tolist(), task_labels=0)
bm = nc_benchmark(train, test, n_experiences=5, task_labels=False, fixed_class_order=d["order"], seed=0)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                          torch.nn.Linear(256, 10))
kw = dict(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.05), criterion=torch.nn.CrossEntropyLoss(),
          train_mb_size=batch, train_epochs=1, eval_mb_size=2048,
          evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
strategy = {"er": lambda: Replay(mem_size=500, **kw),
            "derpp": lambda: DER(mem_size=500, batch_size_mem=batch, alpha=0.1, beta=0.5, **kw),
            "agem": lambda: AGEM(patterns_per_exp=100, sample_size=256, **kw),
            "ewc": lambda: EWC(ewc_lambda=100.0, **kw),
            "lwf": lambda: LwF(alpha=1.0, temperature=2.0, **kw)}[method]()
t0 = time.perf_counter()
for exp in bm.train_stream:
    strategy.train(exp)
    res = strategy.eval(bm.test_stream)
seconds = time.perf_counter() - t0
acc = next(v for k, v in res.items() if k.startswith("Top1_Acc_Stream"))
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"seconds": seconds, "acc": acc, "peak_mb": peak}))
'''


def ensure_avalanche(env: Path) -> Path | None:
    """The throwaway environment's python with Avalanche importable, or None (with a message)."""
    py = env / "bin" / "python"
    probe = [str(py), "-c", "import avalanche.training, avalanche.benchmarks"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, capture_output=True)
        site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip())
        (site / "lifelong_torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # this torch build
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                        *AVALANCHE_PINS], check=True, capture_output=True, text=True)
        if subprocess.run([str(py), "-c", "import torchvision"], capture_output=True).returncode != 0:
            meta = site / "torchvision" / "_meta_registrations.py"
            text = meta.read_text()
            guard = ("_fake = torch.library.register_fake if torchvision.extension._has_ops() "
                     "else (lambda *a, **k: (lambda fn: fn))  # patched by lifelong's benchmarks/peers.py\n\n")
            text = text.replace("@torch.library.register_fake(", "@_fake(")
            text = text.replace("\n\n@functools.lru_cache(None)\ndef get_meta_lib", "\n\n" + guard + "@functools.lru_cache(None)\ndef get_meta_lib", 1)
            meta.write_text(text)
        check = subprocess.run(probe, capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(check.stderr.strip().splitlines()[-1])
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        print(f"Avalanche skipped: could not set up {env}: {str(detail).strip()[-300:]}", file=sys.stderr)
        return None
    return py


def lifelong_run(stream, method: str, batch: int) -> tuple[float, float]:
    """(training seconds, final ACC) of ``method`` through ``iter_run`` with the JSONL log."""
    kw = {"mem_size": 500} if speed.REPLAY_DRAWS.get(method) else {}
    learner = make_learner(method, mlp(stream.input_shape, 10, seed=0), seed=0, **kw)
    records = []
    with tempfile.TemporaryDirectory() as d, RunLog(Path(d) / "log.jsonl") as log:
        t0 = time.perf_counter()
        for rec in iter_run(stream, learner, LoopConfig(batch_size=batch), seed=0):
            log.write(rec)
            if rec.kind == "eval":
                records.append(rec)
        seconds = time.perf_counter() - t0
    return seconds, float(accuracy_matrix(records)[-1].mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="er,derpp,agem,ewc,lwf")
    ap.add_argument("--batches", default="32,10")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--env", default=os.environ.get("LIFELONG_PEERS_ENV", "/tmp/lifelong-peers"))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, stream = speed.make_stream()
    py = ensure_avalanche(Path(args.env))
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp) / "stream.pt"
        torch.save({"x_train": torch.cat([c.x for c in stream.chunks]), "y_train": torch.cat([c.y for c in stream.chunks]),
                    "x_test": torch.cat([e.x for e in stream.eval_sets]), "y_test": torch.cat([e.y for e in stream.eval_sets]),
                    "order": [c for ch in stream.chunks for c in ch.classes]}, shared)
        child = Path(tmp) / "avalanche_child.py"
        child.write_text(CHILD)
        rows = []
        print(f"stream: split {data}; threads {args.threads}; load {os.getloadavg()[0]:.2f}\n")
        print("| method | batch | limit s | lifelong / limit | avalanche / limit | ACC lifelong | ACC avalanche "
              "| peak MB lifelong | peak MB avalanche |")
        print("|---|---|---|---|---|---|---|---|---|")
        for batch in (int(b) for b in args.batches.split(",")):
            for method in args.methods.split(","):
                t = {"limit": [], "lifelong": [], "avalanche": []}
                accs, peer = [], []
                for _ in range(args.rounds):
                    t["limit"].append(speed.compute_limit(stream, method, batch))
                    s, a = lifelong_run(stream, method, batch)
                    t["lifelong"].append(s)
                    accs.append(a)
                    if py is not None:
                        out = subprocess.run([str(py), str(child), method, str(batch), str(shared), str(args.threads)],
                                             capture_output=True, text=True)
                        if out.returncode != 0:
                            print(f"avalanche {method} failed: {out.stderr.strip()[-300:]}", file=sys.stderr)
                        else:
                            r = json.loads(out.stdout.strip().splitlines()[-1])
                            t["avalanche"].append(r["seconds"])
                            peer.append(r)
                lim = statistics.median(t["limit"])
                row = {"method": method, "batch": batch, "limit_s": lim, "times": t,
                       "lifelong_ratio": statistics.median(t["lifelong"]) / lim,
                       "avalanche_ratio": statistics.median(t["avalanche"]) / lim if t["avalanche"] else None,
                       "acc_lifelong": accs[-1], "acc_avalanche": peer[-1]["acc"] if peer else None,
                       "peak_mb_lifelong": speed.peak_rss_mb("lifelong", method, batch, args.threads),
                       "peak_mb_avalanche": max(p["peak_mb"] for p in peer) if peer else None,
                       "load_1m": os.getloadavg()[0]}
                rows.append(row)
                fmt = lambda v, f="{:.2f}": "-" if v is None else f.format(v)  # noqa: E731
                print(f"| {method} | {batch} | {lim:.2f} | {row['lifelong_ratio']:.2f} | {fmt(row['avalanche_ratio'])} "
                      f"| {row['acc_lifelong']:.3f} | {fmt(row['acc_avalanche'], '{:.3f}')} "
                      f"| {row['peak_mb_lifelong']:.0f} | {fmt(row['peak_mb_avalanche'], '{:.0f}')} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"data": data, "threads": args.threads, "rounds": args.rounds, "rows": rows},
                                         indent=1))


if __name__ == "__main__":
    main()
