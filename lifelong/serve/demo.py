"""Adaptation demo: a concept-drift stream replayed through the service, with and without the fast path.

``python -m lifelong.serve.demo`` builds a relabelling stream from Fashion-MNIST (Split digits if
Fashion-MNIST is absent): the images keep their distribution, but at fixed points every class is
relabelled by a seeded permutation, and an earlier labelling comes back later. The stream is written
as a JSONL file of ``/feedback`` bodies (10 events each, the online setting) and replayed through
:class:`~lifelong.serve.service.Service` exactly as ``lifelong serve --replay`` does, once per
learner:

- ``er``: the slow path alone (a network with reservoir replay);
- ``error_memory`` (inner ``er``): plus the error memory, updated on every feedback;
- ``error_memory`` (inner ``homeostatic``): plus a drift response on the slow side, the
  homeostatic learner raising its learning rate while its recent error exceeds its long-run error.

The service's own ADWIN detector runs in every variant; its alarms are logged and journaled, and
call ``on_drift()`` on learners that define one: the homeostatic learner (third variant, through
the error memory) raises its fast error average. The figures recorded in docs/serve.md were measured
before that hook existed, when the alarms were only logged.

The curve is the rolling prequential accuracy: each event is scored by the served model *before*
it learns from it. The plot goes to ``docs/img/serve_adaptation.png``; the recovery times (events
after a shift until the rolling accuracy is back to 80 % of its level before the shift) are printed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from lifelong.data.datasets import dataset_available, load_dataset
from lifelong.seeding import derive_seed
from lifelong.serve.config import config_from_dict
from lifelong.serve.service import Service, load_replay, replay

VARIANTS = {
    "slow path only (ER)": {"name": "er", "mem_size": 500},
    "+ error memory": {"name": "error_memory", "inner": "er", "inner_hp": {"mem_size": 500}},
    "+ error memory + homeostatic response": {"name": "error_memory", "inner": "homeostatic",
                                              "inner_hp": {"mem_size": 500}},
}


def drift_stream(x: torch.Tensor, y: torch.Tensor, *, segment: int, schedule: list[int], seed: int):
    """Events ``(x, y)`` in ``len(schedule)`` segments of ``segment`` events; segment ``i`` labels
    with permutation ``schedule[i]`` (0 is the identity). Returns x, y and the drift points."""
    n_classes = int(y.max()) + 1
    g = torch.Generator().manual_seed(derive_seed(seed, "serve-demo"))
    perms = [torch.arange(n_classes)] + [torch.randperm(n_classes, generator=g) for _ in range(max(schedule))]
    order = torch.randperm(len(y), generator=g)[: segment * len(schedule)]
    xs, ys = x[order], y[order].clone()
    for i, c in enumerate(schedule):
        ys[i * segment:(i + 1) * segment] = perms[c][ys[i * segment:(i + 1) * segment]]
    drifts = [i * segment for i in range(1, len(schedule)) if schedule[i] != schedule[i - 1]]
    return xs, ys, drifts


def rolling(correct: list[int], window: int) -> list[float]:
    c = torch.tensor(correct, dtype=torch.float64).cumsum(0)
    out = []
    for i in range(len(correct)):
        lo = max(0, i - window + 1)
        out.append(float(c[i] - (c[lo - 1] if lo else 0)) / (i - lo + 1))
    return out


def recovery_times(correct: list[int], drifts: list[int], *, window: int = 100, frac: float = 0.8) -> list[int | None]:
    """Events after each drift until the rolling accuracy regains ``frac`` of its pre-drift level."""
    r = rolling(correct, window)
    out: list[int | None] = []
    for d in drifts:
        target = frac * r[d - 1]
        end = next((i for i in range(d + window // 2, len(r)) if r[i] >= target), None)
        out.append(None if end is None else end - d)
    return out


def run_variant(learner: dict, jsonl: Path, work: Path, input_shape: tuple[int, ...], n_classes: int) -> dict:
    cfg = config_from_dict({"learner": learner, "model": {"input_shape": list(input_shape), "n_classes": n_classes,
                                                          "hidden": [256, 256]},
                            "serve": {"data_dir": str(work), "linger_ms": 0, "snapshot_every": 2000, "threads": 1}}, env={})
    svc = Service(cfg)
    svc.start()
    try:
        replay(svc, load_replay(jsonl, cfg), curve=work / "curve.json")
    finally:
        svc.stop()
    return json.loads((work / "curve.json").read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="replay a concept-drift stream through lifelong serve and plot it")
    ap.add_argument("--out", type=Path, default=Path("docs/img/serve_adaptation.png"))
    ap.add_argument("--segment", type=int, default=1500, help="events per concept segment")
    ap.add_argument("--window", type=int, default=100, help="rolling accuracy window (events)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    name = "fashion_mnist" if dataset_available("fashion_mnist") else "digits"
    ds = load_dataset(name)
    schedule = [0, 1, 2, 0, 1]
    x, y, drifts = drift_stream(ds.train_inputs(), ds.y_train, segment=args.segment, schedule=schedule, seed=args.seed)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        jsonl = Path(d) / "events.jsonl"
        with open(jsonl, "w") as fh:
            for i in range(0, len(y), 10):
                fh.write(json.dumps({"inputs": x[i:i + 10].flatten(1).tolist(), "labels": y[i:i + 10].tolist()}) + "\n")
        for label, learner in VARIANTS.items():
            curve = run_variant(learner, jsonl, Path(d) / f"v{len(results)}", ds.input_shape, ds.n_classes)
            results[label] = curve
            rec = recovery_times(curve["correct"], drifts, window=args.window)
            print(f"{label:34s} online acc {curve['online_accuracy']:.3f}  drift alarms {curve['drift_alarms']:2d}  "
                  f"recovery (events) {rec}  [{curve['seconds']:.0f}s]")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.2))
    for label, curve in results.items():
        ax.plot(rolling(curve["correct"], args.window), label=label, lw=1.3)
    for i, d in enumerate(drifts):
        ax.axvline(d, color="grey", ls="--", lw=0.8, label="label remapping" if i == 0 else None)
    ax.set_xlabel("feedback events (10 per request)")
    ax.set_ylabel(f"rolling online accuracy ({args.window} events)")
    ax.set_title(f"lifelong serve --replay: relabelled {name}, concepts {schedule}")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
