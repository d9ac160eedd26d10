"""Hyper-parameter search with Ray Tune: random search or ASHA over declared ranges, under an
explicit continual-learning protocol.

A tune file is a run config plus ``[search]`` (the ranges) and ``[tune]`` (the search)::

    name = "tune-er"
    seeds = [0, 1, 2]                 # seeds of the final evaluation

    [dataset]
    name = "fashion_mnist"
    [scenario]
    name = "class_incremental"
    n_chunks = 5
    [learner]
    name = "er"

    [search]
    "train.lr" = { loguniform = [0.001, 0.3] }
    "learner.mem_size" = { choice = [100, 200, 500] }
    "train.epochs" = { randint = [1, 3] }          # inclusive bounds
    "learner.replay_batch" = { lograndint = [8, 64] }
    "train.momentum" = { uniform = [0.0, 0.9] }

    [tune]
    algorithm = "asha"                # or "random"
    num_samples = 16
    protocol = "first-chunks"         # or "full-stream" (leaky)
    first_chunks = 2
    metric = "acc"                    # or "aia"; both are maximised
    # seed = 0                        # the trials' run seed (default: the first of `seeds`)
    # search_seed = 0                 # the random state of the sampler
    # cpus_per_trial = 1
    # max_concurrent = 0              # 0: as many as the CPUs allow
    # grace_period = 1                # ASHA: chunks before a trial may be stopped
    # reduction_factor = 2            # ASHA

Protocols
---------
``first-chunks``
    Each trial trains and evaluates on the first ``first_chunks`` chunks of the stream only; the
    later chunks and their test sets are never built into a trial. The chosen values are then
    run on the full stream over every seed. This follows the spirit of Chaudhry et al. 2019
    (A-GEM), who tune on the first tasks; unlike them we report the full-stream metrics, and also
    ``held_out_acc``: the final accuracy on the chunks the search never saw.
``full-stream``
    Trials see the whole stream, so the chosen values have seen the future. Every output says
    so ("LEAKY").

A trial reports after every chunk: ``acc`` (mean accuracy over the evaluation sets of the chunks
seen so far) and ``aia`` (the running mean of those). ASHA's time unit is the chunk, so it needs
several tuning chunks to stop trials early. The best trial is chosen among trials that finished
every tuning chunk (an early-stopped trial's accuracy over fewer tasks is not comparable).

Outputs in ``<out>/<name>/``: ``history.json`` and ``history.csv`` (every trial, its values and its
per-chunk scores), ``best.json`` (the protocol, the chosen values, the tuning score and the final
metrics), ``best_config.toml`` (a run config with the chosen values: ``lifelong run`` it, or use it
as the base of a sweep), ``final/`` (the full-stream evaluation, one run per seed) and
``summary.md``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError
from lifelong.experiments.config import from_dict, read_toml
from lifelong.experiments.protocol import resolve_protocol, stream_size
from lifelong.experiments.runner import build_run, iter_seed, load_data, make_stream, torch_threads
from lifelong.experiments.sweep import apply_values, check_key, parse_sweep, ray_session, run_sweep
from lifelong.learn.methods import LEARNERS
from lifelong.report import fmt

ALGORITHMS = ("random", "asha")
PROTOCOLS = ("first-chunks", "full-stream")
METRICS = ("acc", "aia")
DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint", "lograndint")
TUNE_KEYS = {
    "algorithm": str, "num_samples": int, "protocol": str, "first_chunks": int, "metric": str, "seed": int,
    "search_seed": int, "cpus_per_trial": int, "max_concurrent": int, "grace_period": int, "reduction_factor": (int, float),
}
LEAKY_LABEL = "LEAKY: tuned on the full stream, so the chosen values have seen every future chunk"


@dataclass(frozen=True)
class TuneSpec:
    """A parsed tune file."""

    name: str
    base: dict[str, Any]  # run-config dict, seeds included (the final evaluation's seeds)
    space: dict[str, dict[str, list]]  # dotted key -> {distribution: arguments}
    algorithm: str = "random"
    num_samples: int = 8
    protocol: str = "first-chunks"
    first_chunks: int = 2
    metric: str = "acc"
    seed: int = 0
    search_seed: int = 0
    cpus_per_trial: int = 1
    max_concurrent: int = 0
    grace_period: int = 1
    reduction_factor: float = 2.0
    text: str = ""

    @property
    def leaky(self) -> bool:
        return self.protocol == "full-stream"

    @property
    def tuning_chunks(self) -> int | None:
        return self.first_chunks if self.protocol == "first-chunks" else None


def _check_range(key: str, dist: str, args: Any) -> None:
    where = f"[search] {key!r}"
    if dist == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}: choice needs a non-empty list, e.g. {{ choice = [100, 200] }}")
        return
    if not isinstance(args, list) or len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ConfigError(f"{where}: {dist} needs [low, high], e.g. {{ {dist} = [1, 10] }}, got {args!r}")
    lo, hi = args
    if not lo < hi:
        raise ConfigError(f"{where}: {dist} needs low < high, got {args}")
    if dist in ("randint", "lograndint") and not (isinstance(lo, int) and isinstance(hi, int)):
        raise ConfigError(f"{where}: {dist} needs integer bounds, got {args}")
    if dist in ("loguniform", "lograndint") and lo <= 0:
        raise ConfigError(f"{where}: {dist} needs low > 0, got {args}")


def parse_tune(data: dict[str, Any], *, source: str = "tune file", text: str = "", **flags: Any) -> TuneSpec:
    """Validate a parsed tune file; ``flags`` (``None`` = not given) override ``[tune]``.

    Examples
    --------
    >>> spec = parse_tune({"name": "t", "learner": {"name": "er"},
    ...                    "search": {"train.lr": {"loguniform": [0.001, 0.1]}},
    ...                    "tune": {"algorithm": "asha", "num_samples": 4}}, protocol="full-stream")
    >>> spec.algorithm, spec.num_samples, spec.leaky
    ('asha', 4, True)
    """
    data = copy.deepcopy(data)
    space_raw = data.pop("search", None)
    opts = data.pop("tune", {})
    if not isinstance(space_raw, dict) or not space_raw:
        raise ConfigError(f"{source}: needs a [search] table, e.g. \"train.lr\" = {{ loguniform = [0.001, 0.3] }}")
    if not isinstance(opts, dict):
        raise ConfigError(f"{source}: [tune] must be a table")
    for key, value in opts.items():
        kind = TUNE_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"{source}: unknown [tune] option {key!r}; known: {sorted(TUNE_KEYS)}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{source}: [tune] {key} has the wrong type: {value!r}")
    opts.update({k: v for k, v in flags.items() if v is not None})
    space: dict[str, dict[str, list]] = {}
    for key, rng in space_raw.items():
        check_key(key, where=f"{source} [search]")
        if not isinstance(rng, dict) or len(rng) != 1 or next(iter(rng)) not in DISTRIBUTIONS:
            raise ConfigError(f"{source}: [search] {key!r} must be one of {{ {' | '.join(f'{d} = ...' for d in DISTRIBUTIONS)} }}, got {rng!r}")
        dist, args = next(iter(rng.items()))
        _check_range(key, dist, args)
        space[key] = {dist: args}
    data.setdefault("name", "tune")
    base_cfg = from_dict(data)  # the base must be a valid run config on its own
    spec = TuneSpec(name=base_cfg.name, base=base_cfg.to_dict(), space=space, seed=opts.pop("seed", base_cfg.seeds[0]),
                    text=text, **opts)
    if spec.algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm must be one of {list(ALGORITHMS)}, got {spec.algorithm!r}")
    if spec.protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {list(PROTOCOLS)}, got {spec.protocol!r}")
    if spec.metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}, got {spec.metric!r}")
    for key in ("num_samples", "first_chunks", "cpus_per_trial", "grace_period"):
        if getattr(spec, key) < 1:
            raise ConfigError(f"[tune] {key} must be >= 1, got {getattr(spec, key)}")
    if spec.max_concurrent < 0 or spec.reduction_factor <= 1:
        raise ConfigError("[tune] max_concurrent must be >= 0 and reduction_factor > 1")
    # every sampled config must be a valid run config: check the range ends now, not in the trials
    for key, rng in space.items():
        dist, args = next(iter(rng.items()))
        for v in (args if dist == "choice" else args[:2]):
            try:
                from_dict(apply_values(data, {key: v}))
            except ConfigError as e:
                raise ConfigError(f"{source}: [search] {key!r} = {v!r} gives an invalid config: {e}") from None
    return spec


def load_tune(path: str | Path, **flags: Any) -> TuneSpec:
    """Read a tune file; ``flags`` override its ``[tune]`` options."""
    doc, text = read_toml(path, "tune file")
    return parse_tune(doc, source=str(path), text=text, **flags)


# -- the stream a trial sees ---------------------------------------------------------------------
def first_chunks(stream, k: int):
    """The stream cut to its first ``k`` chunks and their evaluation sets: nothing after chunk
    ``k - 1`` is visible.

    Examples
    --------
    >>> from lifelong.data.datasets import load_dataset
    >>> from lifelong.data.scenarios import build_stream
    >>> s = build_stream("class_incremental", load_dataset("blobs", seed=0), seed=0, n_chunks=5)
    >>> cut = first_chunks(s, 2)
    >>> [c.name for c in cut.chunks], [e.name for e in cut.eval_sets]
    (['task0_0-1', 'task1_2-3'], ['task0_0-1', 'task1_2-3'])
    """
    n = len(stream.chunks)
    if not 1 <= k < n:
        raise ConfigError(f"first_chunks must be in [1, {n - 1}] for a stream of {n} chunks, got {k}; "
                          "tuning on every chunk is the (leaky) full-stream protocol")
    names = [c.name for c in stream.chunks[:k]]
    eval_names = [e.name for e in stream.eval_sets]
    if len(set(eval_names)) == len(eval_names) and all(name in eval_names for name in names):
        keep = [e for e in stream.eval_sets if e.name in names]
    elif len(stream.eval_sets) == n:
        keep = stream.eval_sets[:k]
    else:
        raise ConfigError(f"scenario {stream.name!r}: cannot tell which evaluation sets belong to the first {k} chunks; "
                          "use protocol full-stream")
    keep = [replace(e, index=i) for i, e in enumerate(keep)]  # accuracy-matrix columns 0..k-1
    task_classes = stream.task_classes[:k] if stream.task_classes is not None else None
    return replace(stream, chunks=stream.chunks[:k], eval_sets=keep, task_classes=task_classes,
                   info={**stream.info, "tuning_chunks": k})


def _plain(value: Any) -> Any:
    """numpy scalars (what Tune samples) to Python numbers, for JSON and TOML."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value


def trial(params: dict[str, Any], *, spec: dict[str, Any]) -> None:
    """One Tune trial: the base config with ``params``, one seed, on the protocol's stream.

    Reports ``acc``, ``aia``, ``chunk`` and ``final`` (1 on the last chunk) after every chunk.
    """
    from ray import tune

    values = {k: _plain(v) for k, v in params.items()}
    cfg = from_dict({**apply_values(spec["base"], values), "seeds": [spec["seed"]]})
    with torch_threads(cfg.threads or spec["cpus_per_trial"]):
        for report in trial_scores(cfg, spec["seed"], spec["tuning_chunks"]):
            tune.report(report)


def trial_scores(cfg, seed: int, tuning_chunks: int | None):
    """What a trial reports after every chunk, from the one runner: ``acc`` (mean accuracy over the
    evaluation sets of the chunks seen so far), ``aia`` (their running mean), ``chunk`` and ``final``.

    Examples
    --------
    >>> cfg = from_dict({"dataset": {"name": "blobs", "n_per_class": 10, "n_test_per_class": 4},
    ...                  "scenario": {"name": "class_incremental", "n_chunks": 5}, "model": {"hidden": [8]}})
    >>> [r["chunk"] for r in trial_scores(cfg, 0, 2)], [r["final"] for r in trial_scores(cfg, 0, 2)]
    ([1, 2], [0, 1])
    """
    ds = load_data(cfg)
    stream = make_stream(cfg, ds, seed)
    cfg = resolve_protocol(cfg, ds.name, stream_size(stream, cfg.learner_name))  # the whole stream's protocol, not the first chunks'
    if tuning_chunks is not None:
        stream = first_chunks(stream, tuning_chunks)
    run = build_run(cfg, seed, ds, stream=stream)
    joint = run.learner.data_view == "joint"
    n_eval = len(stream.eval_sets)
    row: dict[int, float] = {}
    accs: list[float] = []
    for rec in iter_seed(run):
        if rec.kind == "eval" and rec.boundary and rec.chunk >= 0:
            row[rec.task] = rec.accuracy
        elif rec.kind == "chunk_end":
            # tasks seen so far: chunk i of a stream brings eval set i; the joint view sees them all
            seen = n_eval if joint else min(rec.chunk + 1, n_eval)
            accs.append(sum(row[j] for j in range(seen)) / seen)
            yield {"acc": accs[-1], "aia": sum(accs) / len(accs), "chunk": rec.chunk + 1,
                   "final": int(len(accs) == run.n_chunks)}


# -- the search ----------------------------------------------------------------------------------
@dataclass
class TuneResult:
    out_dir: Path
    best: dict[str, Any]
    trials: list[dict[str, Any]]
    summary_path: Path


def _search_space(space: dict[str, dict[str, list]]) -> dict[str, Any]:
    from ray import tune

    out = {}
    for key, rng in space.items():
        dist, args = next(iter(rng.items()))
        if dist == "choice":
            out[key] = tune.choice(args)
        elif dist in ("randint", "lograndint"):
            out[key] = getattr(tune, dist)(args[0], args[1] + 1)  # Tune's upper bound is exclusive
        else:
            out[key] = getattr(tune, dist)(float(args[0]), float(args[1]))
    return out


def _n_train_chunks(spec: TuneSpec) -> int:
    """The number of chunks a trial trains on (ASHA's max_t); also validates ``first_chunks``
    against the real stream before any trial starts."""
    cfg = from_dict({**spec.base, "seeds": [spec.seed]})
    stream = make_stream(cfg, load_data(cfg), spec.seed)
    if spec.tuning_chunks is not None:
        stream = first_chunks(stream, spec.tuning_chunks)
    names = spec.space.get("learner.name", {}).get("choice", [cfg.learner_name])
    joint_only = all(n in LEARNERS and LEARNERS[n].data_view == "joint" for n in names)
    return 1 if joint_only else len(stream.chunks)


def _history(grid, metric: str) -> list[dict[str, Any]]:
    trials = []
    for i, r in enumerate(grid):
        df = r.metrics_dataframe
        per_chunk = []
        if df is not None and len(df):
            for _, row in df.iterrows():
                per_chunk.append({"chunk": int(row["chunk"]), "acc": float(row["acc"]), "aia": float(row["aia"])})
        params = {k: _plain(v) for k, v in r.config.items()}
        finished = bool(per_chunk) and bool(r.metrics.get("final", 0)) and r.error is None
        trials.append({
            "trial": i, "trial_id": r.metrics.get("trial_id") or Path(r.path).name, "params": params,
            "status": "error" if r.error is not None else ("finished" if finished else "stopped"),
            "chunks_trained": len(per_chunk), "stopped_early": r.error is None and not finished,
            "score": per_chunk[-1][metric] if finished else None, "per_chunk": per_chunk,
            "error": None if r.error is None else str(r.error).strip().splitlines()[-1],
        })
    return trials


def _write_history(out_dir: Path, trials: list[dict[str, Any]], header: dict[str, Any]) -> None:
    (out_dir / "history.json").write_text(json.dumps({**header, "trials": trials}, indent=2) + "\n", encoding="utf-8")
    keys = sorted({k for t in trials for k in t["params"]})
    with open(out_dir / "history.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["trial", "trial_id", "status", *keys, "chunk", "acc", "aia", "error"])
        for t in trials:
            rows = t["per_chunk"] or [{"chunk": "", "acc": "", "aia": ""}]
            for c in rows:
                w.writerow([t["trial"], t["trial_id"], t["status"], *(t["params"].get(k, "") for k in keys),
                            c["chunk"], c["acc"], c["aia"], t["error"] or ""])


def _held_out_acc(final_dir: Path, runs: list[str], k: int) -> list[float]:
    """Per seed: the final accuracy averaged over the chunks the search never saw (j >= k)."""
    out = []
    for name in runs:
        metrics = json.loads((final_dir / name / "metrics.json").read_text(encoding="utf-8"))
        for matrix in metrics["accuracy_matrix"].values():
            last = matrix[-1][k:]
            out.append(sum(last) / len(last))
    return out


def run_tune(spec: TuneSpec, out_dir: str | Path, *, address: str | None = None, num_cpus: int | None = None,
             force: bool = False, console: Any = None, final: bool = True) -> TuneResult:
    """Search, save the history and the choice, then evaluate the choice on the full stream.

    Parameters
    ----------
    spec : TuneSpec
        From :func:`load_tune` or :func:`parse_tune`.
    out_dir : path
        Where the outputs go (see the module docstring).
    address, num_cpus : optional
        Where Ray runs (see :func:`lifelong.experiments.sweep.ray_session`).
    force : bool
        Overwrite an existing output directory.
    final : bool
        Run the chosen values on the full stream over every seed of the base config.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    out_dir = Path(out_dir).resolve()
    if (out_dir / "history.json").exists() and not force:
        raise ConfigError(f"{out_dir} already holds a search; pass --force to overwrite it, or change `name`")
    n_train = _n_train_chunks(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec.text:
        (out_dir / "tune.toml").write_text(spec.text, encoding="utf-8")
    shutil.rmtree(out_dir / "ray_tune", ignore_errors=True)
    header = {"protocol": spec.protocol, "leaky": spec.leaky, "algorithm": spec.algorithm, "metric": spec.metric,
              "num_samples": spec.num_samples, "tuning_chunks": spec.tuning_chunks, "trial_seed": spec.seed,
              "search_seed": spec.search_seed, "space": spec.space}
    label = LEAKY_LABEL if spec.leaky else f"first-chunks: tuned on chunks 0..{spec.first_chunks - 1} only"
    console.print(f"tune {spec.name}: {spec.algorithm}, {spec.num_samples} samples, {label}", highlight=False, markup=False)

    # Tune's default console output (tables, a TensorBoard hint) would bury the per-trial lines;
    # the classic reporter with verbose=0 stays silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    t0 = time.perf_counter()
    with ray_session(address, num_cpus):
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import BasicVariantGenerator

        class Lines(tune.Callback):
            """One line per finished, stopped or failed trial, on stderr. Tune pickles its callbacks,
            so this holds plain data only (no console)."""

            def __init__(self, metric: str, total: int) -> None:
                self.metric, self.total, self.n = metric, total, 0

            def _line(self, t, what: str) -> None:
                self.n += 1
                params = ", ".join(f"{k}={_plain(v):.4g}" if isinstance(_plain(v), float) else f"{k}={v}" for k, v in t.config.items())
                r = t.last_result or {}
                score = f"{self.metric} {r[self.metric]:.4f} after {r.get('chunk', 0)} chunk(s)" if self.metric in r else ""
                print(f"[{self.n}/{self.total}] {what:6s} {params}  {score}", file=sys.stderr, flush=True)

            def on_trial_complete(self, iteration, trials, trial, **info) -> None:
                self._line(trial, "done")

            def on_trial_error(self, iteration, trials, trial, **info) -> None:
                self._line(trial, "FAILED")

        payload = {"base": spec.base, "seed": spec.seed, "tuning_chunks": spec.tuning_chunks, "cpus_per_trial": spec.cpus_per_trial}
        trainable = tune.with_resources(tune.with_parameters(trial, spec=payload), {"cpu": spec.cpus_per_trial})
        scheduler = None
        if spec.algorithm == "asha":
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=n_train,
                                      grace_period=min(spec.grace_period, n_train), reduction_factor=spec.reduction_factor)
        tuner = tune.Tuner(
            trainable, param_space=_search_space(spec.space),
            tune_config=tune.TuneConfig(
                metric=spec.metric, mode="max", num_samples=spec.num_samples, scheduler=scheduler,
                reuse_actors=True,  # a fresh trial process would re-import torch (seconds per trial)
                search_alg=BasicVariantGenerator(random_state=spec.search_seed, max_concurrent=spec.max_concurrent),
            ),
            run_config=tune.RunConfig(name="search", storage_path=str(out_dir / "ray_tune"), verbose=0, callbacks=[Lines(spec.metric, spec.num_samples)]),
        )
        grid = tuner.fit()
        trials = _history(grid, spec.metric)
        _write_history(out_dir, trials, header)
        finished = [t for t in trials if t["status"] == "finished"]
        if not finished:
            errors = [t["error"] for t in trials if t["error"]]
            raise ConfigError(f"no trial finished its tuning chunks (see {out_dir}/history.json)"
                              + (f"; first error: {errors[0]}" if errors else ""))
        best = max(finished, key=lambda t: (t["score"], -t["trial"]))  # ties: the earliest trial
        search_time = time.perf_counter() - t0

        chosen_cfg = from_dict({**apply_values(spec.base, best["params"]), "name": f"{spec.name}-tuned"})
        comment = (f"# chosen by `lifelong tune` ({spec.algorithm}, {spec.num_samples} samples, protocol {spec.protocol}"
                   f"{'' if not spec.leaky else ' — ' + LEAKY_LABEL}): {json.dumps(best['params'])}\n")
        (out_dir / "best_config.toml").write_text(comment + chosen_cfg.to_toml(), encoding="utf-8")
        record: dict[str, Any] = {**header, "label": label, "chosen": best["params"], "best_trial": best["trial"],
                                  "tuning_score": best["score"], "n_finished": len(finished), "n_trials": len(trials),
                                  "search_time_s": round(search_time, 2)}
        final_table = ""
        if final:
            plan = parse_sweep({**chosen_cfg.to_dict()}, source=str(out_dir / "best_config.toml"))
            res = run_sweep(plan, out_dir / "final", text=(out_dir / "best_config.toml").read_text(encoding="utf-8"),
                            backend="ray", force=True, console=console, compare=False)
            summary = json.loads((out_dir / "final" / "summary.json").read_text(encoding="utf-8"))
            record["final"] = summary["cells"][0]["metrics"]
            record["final_failed"] = res.failed
            if spec.tuning_chunks is not None and res.done:
                held = _held_out_acc(out_dir / "final", res.done, spec.tuning_chunks)
                mean = sum(held) / len(held)
                std = math.sqrt(sum((h - mean) ** 2 for h in held) / (len(held) - 1)) if len(held) > 1 else 0.0
                record["held_out_acc"] = [mean, std]
            final_table = (out_dir / "final" / "summary.md").read_text(encoding="utf-8")
    (out_dir / "best.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    summary_path = out_dir / "summary.md"
    summary_path.write_text(_summary_md(spec, record, trials, final_table), encoding="utf-8")
    return TuneResult(out_dir, record, trials, summary_path)


def _summary_md(spec: TuneSpec, record: dict[str, Any], trials: list[dict[str, Any]], final_table: str) -> str:
    lines = [f"# Tune: {spec.name}", ""]
    if spec.leaky:
        lines += [f"**{LEAKY_LABEL}.** These numbers overstate what the method would reach on an unseen stream.", ""]
    lines += [
        f"- protocol: `{spec.protocol}`" + (f" (trials saw chunks 0..{spec.first_chunks - 1} only)" if not spec.leaky else " (leaky)"),
        f"- search: {spec.algorithm}, {record['n_trials']} trials, {record['n_finished']} finished every tuning chunk; "
        f"metric `{spec.metric}` (max), trial seed {spec.seed}",
        f"- chosen: `{json.dumps(record['chosen'])}` (trial {record['best_trial']}, tuning {spec.metric} {record['tuning_score']:.4f})",
    ]
    if "held_out_acc" in record:
        lines.append(f"- final accuracy on the chunks the search never saw: {fmt(*record['held_out_acc'], n_seeds=len(spec.base['seeds']))}")
    lines += ["", "## Trials", "", "| trial | " + " | ".join(spec.space) + f" | status | chunks | {spec.metric} |",
              "|---|" + "---|" * (len(spec.space) + 3)]
    for t in trials:
        vals = [f"{t['params'][k]:.4g}" if isinstance(t["params"].get(k), float) else str(t["params"].get(k)) for k in spec.space]
        score = "" if not t["per_chunk"] else f"{t['per_chunk'][-1][spec.metric]:.4f}"
        lines.append(f"| {t['trial']} | " + " | ".join(vals) + f" | {t['status']} | {t['chunks_trained']} | {score} |")
    if final_table:
        lines += ["", "## The chosen values on the full stream", "", final_table.split("\n", 2)[2] if final_table.startswith("# ") else final_table]
    return "\n".join(lines) + "\n"
