"""``lifelong run`` (one experiment, or the built-in comparison) and ``lifelong list``.

The work is :func:`lifelong.experiments.run.execute` and :mod:`lifelong.experiments.demo`; this
module parses flags, draws the progress bar and prints the tables.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lifelong.cli.common import err_console, out_console
from lifelong.data.datasets import DATASETS
from lifelong.data.scenarios import SCENARIOS
from lifelong.errors import ConfigError
from lifelong.experiments.config import RunConfig, load_config, override
from lifelong.experiments.demo import demo_configs, run_notes, verdict
from lifelong.experiments.run import execute
from lifelong.learn.methods import LEARNERS
from lifelong.plugins import load_plugins
from lifelong.report import fmt

app = typer.Typer()

#: The columns of the summary table ``lifelong run`` prints.
SUMMARY_COLUMNS = ("acc", "aia", "bwt", "forgetting", "learning_accuracy")


def run_with_progress(cfg: RunConfig, run_dir: Path, *, resume: bool = False, force: bool = False) -> dict[str, Any]:
    """:func:`~lifelong.experiments.run.execute` with a progress bar on stderr (drawn on a terminal only)."""
    console = err_console()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    task_id = None
    state: dict[str, Any] = {"key": None}

    def on_progress(p) -> None:
        nonlocal task_id
        key = (p.seed, p.chunk)
        if task_id is None:
            task_id = progress.add_task("", total=p.n_batches, loss="-")
        if state["key"] != key:
            state["key"] = key
            state["start"] = p.batch - 1
            progress.reset(task_id, total=p.n_batches)
        loss = "-" if p.loss is None else f"{p.loss:.3f}"
        progress.update(task_id, completed=p.batch - state["start"], loss=loss,
                        description=f"{cfg.learner_name} seed {p.seed} chunk {p.chunk + 1}/{p.n_chunks}")

    with progress:
        return execute(cfg, run_dir, resume=resume, force=force, on_progress=on_progress)


def summary_table(title: str, rows: dict[str, dict]) -> Table:
    """One row per run: its mean ± std of :data:`SUMMARY_COLUMNS`."""
    table = Table(title=title)
    table.add_column("learner")
    for c in SUMMARY_COLUMNS:
        table.add_column(c)
    for name, metrics in rows.items():
        n = len(metrics["per_seed"])
        table.add_row(name, *(fmt(*metrics["summary"].get(c, (math.nan, math.nan)), n_seeds=n) for c in SUMMARY_COLUMNS))
    return table


def note(message: str) -> None:
    """One ``note:`` line on stderr: a flag that was ignored or options a flag dropped."""
    print(f"note: {message}", file=sys.stderr)


def canonical_name(registry: dict, name: str | None) -> str | None:
    """``name`` as registered, reading ``-`` as ``_`` when only that spelling is registered
    (``cls-er`` is ``cls_er``); an unknown name is returned as typed, for the config check to report."""
    if name is None or name in registry:
        return name
    underscored = name.replace("-", "_")
    return underscored if underscored in registry else name


def check_file_flags(flags: dict[str, Any], config_dataset: str | None) -> None:
    """``--data`` is dataset ``file``; ``--label`` and ``--standardize`` are its options: refuse
    them with another ``--dataset``, or without a file."""
    dataset = flags.get("dataset")
    if flags.get("data") is not None:
        if dataset is not None and dataset != "file":
            raise ConfigError(f"--data loads your file as dataset 'file'; drop --dataset {dataset} "
                              "(or drop --data to use that dataset)")
        return
    given = [f"--{k}" for k in ("label", "standardize") if flags.get(k) is not None]
    if given and (dataset or config_dataset) != "file":
        verb = "applies" if len(given) == 1 else "apply"
        raise ConfigError(f"{' and '.join(given)} {verb} to your own file: add --data FILE (a .csv, .npz or .parquet)")


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Argument(help="run config (TOML); omit for the built-in comparison")] = None,
    learner: Annotated[Optional[str], typer.Option(help="learner name (see `lifelong list`)")] = None,
    scenario: Annotated[Optional[str], typer.Option(help="scenario name")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="dataset name")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="your own .csv, .npz or .parquet file (dataset 'file')")] = None,
    label: Annotated[Optional[str], typer.Option(help="label column of --data (default: label; y for an npz)")] = None,
    standardize: Annotated[Optional[bool], typer.Option("--standardize", help="z-score --data's features with the training split's mean and std")] = None,
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="directory holding the dataset files")] = None,
    download: Annotated[Optional[bool], typer.Option("--download", help="fetch missing data from its official source, verified by a published checksum (SHA-256; MD5 for TinyImageNet, which publishes no SHA-256)")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="comma-separated seeds, e.g. 0,1,2")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="epochs per chunk")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    lr: Annotated[Optional[float], typer.Option(help="learning rate")] = None,
    model: Annotated[Optional[str], typer.Option(help="network: mlp, cnn, resnet18, resnet32 (options in [model] of a config)")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N, mps or auto (default: an accelerator if present)")] = None,
    augment: Annotated[Optional[str], typer.Option(help="image augmentation: crop_flip (the CIFAR protocol), crop, flip or none")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32 (default), bf16 (CPU or GPU) or fp16 (CUDA): autocast in the training step")] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile", help="torch.compile the training step's forward pass (off by default; needs a C++ compiler on the CPU)")] = None,
    memory: Annotated[Optional[int], typer.Option(help="memory size (replay learners; a learner without a memory ignores it, with a note)")] = None,
    n_chunks: Annotated[Optional[int], typer.Option("--n-chunks")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="also evaluate every N batches")] = None,
    tensorboard: Annotated[Optional[str], typer.Option("--tensorboard", metavar="DIR", help="also log every record and the final metrics to TensorBoard under DIR/<name>/ (pip install 'lifelong[tensorboard]')")] = None,
    mlflow: Annotated[Optional[str], typer.Option("--mlflow", metavar="URI", help="also log them to MLflow at this tracking URI, e.g. sqlite:///mlflow.db (pip install 'lifelong[mlflow]')")] = None,
    name: Annotated[Optional[str], typer.Option(help="run name: output goes to RUNS/<name>")] = None,
    runs: Annotated[Path, typer.Option(help="parent directory of run directories")] = Path("runs"),
    resume: Annotated[Optional[Path], typer.Option(help="continue the run in this directory")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing run directory")] = False,
) -> None:
    """Run a continual-learning experiment; with no config, compare Naive, ER and CLS-ER (and Joint)."""
    console = out_console()
    if resume is not None:
        metrics = run_with_progress(RunConfig(), resume, resume=True)
        console.print(summary_table(f"resumed {resume}", {str(resume): metrics}))
        console.print(f"wrote {resume}/report.md")
        return
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    flags = dict(learner=learner, scenario=scenario, dataset=dataset, data=data, label=label,
                 standardize=standardize, data_dir=data_dir, download=download,
                 seeds=seed_list, epochs=epochs, batch_size=batch_size, lr=lr, mem_size=memory,
                 n_chunks=n_chunks, eval_every=eval_every, name=name, model=model, device=device, augment=augment,
                 tensorboard=tensorboard, mlflow=mlflow, precision=precision, compile=compile)
    # Everything below is checked (config, flags, names) before any data is read.
    if config is not None:
        base = load_config(config)
        check_file_flags(flags, base.dataset["name"])
        cfg = override(base, note=note, **flags)
        run_dir = runs / cfg.name
        metrics = run_with_progress(cfg, run_dir, force=force)
        on = Path(cfg.dataset["path"]).name if cfg.dataset["name"] == "file" and "path" in cfg.dataset else cfg.dataset["name"]
        console.print(summary_table(f"{cfg.name}: {cfg.learner_name} on {on}", {cfg.learner_name: metrics}))
        for line in run_notes(metrics):
            console.print(line, markup=False)
        console.print(f"wrote {run_dir}/ (config.toml, log.jsonl, metrics.json, report.md)")
        return
    check_file_flags(flags, None)
    load_plugins()
    for key, registry in (("learner", LEARNERS), ("scenario", SCENARIOS), ("dataset", DATASETS)):
        flags[key] = canonical_name(registry, flags[key])
    with warnings.catch_warnings(record=True) as caught:  # override's notes (e.g. --memory on naive)
        warnings.simplefilter("always")
        dataset, configs = demo_configs(flags)
    for message in dict.fromkeys(str(w.message) for w in caught):
        note(message)
    if data is not None:
        dataset = data.name
    learners = [cfg.learner_name for cfg in configs]
    scen = configs[0].scenario
    scen_name = scen["name"].replace("_", "-")
    chunks = f", {scen['n_chunks']} chunks" if "n_chunks" in scen else ""
    console.print(f"[bold]lifelong[/]: Split {dataset}, {scen_name}{chunks}; learners {', '.join(learners)}")
    results = {cfg.learner_name: run_with_progress(cfg, runs / cfg.name, force=True) for cfg in configs}
    console.print(summary_table(f"Split-{dataset} ({scen_name})", results))
    for learner_name, m in results.items():
        console.print("  " + verdict(learner_name, m))
    for line in run_notes(next(iter(results.values()))):
        if line.startswith("protocol:"):
            console.print(line, markup=False)
    for learner_name, m in results.items():
        for line in run_notes(m):
            if not line.startswith("protocol:"):
                console.print(line, markup=False)
    console.print(f"reports: {', '.join(str(runs / cfg.name / 'report.md') for cfg in configs)}")


@app.command("list")
def list_() -> None:
    """Show the datasets, scenarios and learners (plugins' included), one line each."""
    load_plugins()
    console = out_console()
    for title, rows in (
        ("datasets", [(n, d.description) for n, d in DATASETS.items()]),
        ("scenarios", [(n, s.description) for n, s in SCENARIOS.items()]),
        ("learners", [(n, f"{c.description} [{c.paper}]") for n, c in LEARNERS.items()]),
    ):
        table = Table(title=title, show_header=False, box=None)
        for n, d in rows:
            table.add_row(f"[bold]{n}[/]", d)
        console.print(table)
