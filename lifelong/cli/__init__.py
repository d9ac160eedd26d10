"""The ``lifelong`` command line: ``run``, ``report`` and ``list``.

Every user error is printed as one sentence on stderr, with no traceback, and exits with status 2.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from typer.exceptions import TyperException

from lifelong.experiments.config import RunConfig, from_dict, load_config, override
from lifelong.errors import ConfigError, LifelongError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="lifelong: models that keep learning.")
console = Console(width=None if Console().is_terminal else 140)
err_console = Console(stderr=True)

#: The main job: the forgetting baseline, replay, and the best learner available, with the joint upper bound.
DEMO_LEARNERS = ("naive", "er", "cls_er", "joint")


def _progress_bar() -> tuple[Progress, object]:
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    )
    return progress, None


def _run_one(cfg: RunConfig, run_dir: Path, *, resume: bool = False, force: bool = False, reference: Path | None = None) -> dict:
    from lifelong.experiments.run import execute

    progress, _ = _progress_bar()
    task_id = None
    state = {"key": None}

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
        return execute(cfg, run_dir, resume=resume, force=force, on_progress=on_progress, reference=reference)


def _summary_table(title: str, rows: dict[str, dict]) -> Table:
    from lifelong.report import fmt

    table = Table(title=title)
    cols = ["acc", "aia", "bwt", "forgetting", "learning_accuracy"]
    table.add_column("learner")
    for c in cols:
        table.add_column(c)
    for name, metrics in rows.items():
        n = len(metrics["per_seed"])
        table.add_row(name, *(fmt(*metrics["summary"].get(c, (math.nan, math.nan)), n_seeds=n) for c in cols))
    return table


def _default_dataset() -> str:
    from lifelong.data.datasets import dataset_available

    return "fashion_mnist" if dataset_available("fashion_mnist") else "digits"


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Argument(help="run config (TOML); omit for the built-in comparison")] = None,
    learner: Annotated[Optional[str], typer.Option(help="learner name (see `lifelong list`)")] = None,
    scenario: Annotated[Optional[str], typer.Option(help="scenario name")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="dataset name")] = None,
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="directory holding the dataset files")] = None,
    download: Annotated[Optional[bool], typer.Option("--download", help="fetch missing data (verified by SHA-256)")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="comma-separated seeds, e.g. 0,1,2")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="epochs per chunk")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    lr: Annotated[Optional[float], typer.Option(help="learning rate")] = None,
    memory: Annotated[Optional[int], typer.Option(help="memory size (replay learners)")] = None,
    n_chunks: Annotated[Optional[int], typer.Option("--n-chunks")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="also evaluate every N batches")] = None,
    name: Annotated[Optional[str], typer.Option(help="run name: output goes to RUNS/<name>")] = None,
    runs: Annotated[Path, typer.Option(help="parent directory of run directories")] = Path("runs"),
    resume: Annotated[Optional[Path], typer.Option(help="continue the run in this directory")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing run directory")] = False,
) -> None:
    """Run a continual-learning experiment; with no config, compare Naive, ER and CLS-ER (and Joint)."""
    if resume is not None:
        metrics = _run_one(RunConfig(), resume, resume=True)
        console.print(_summary_table(f"resumed {resume}", {str(resume): metrics}))
        console.print(f"wrote {resume}/report.md")
        return
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    flags = dict(learner=learner, scenario=scenario, dataset=dataset, data_dir=data_dir, download=download,
                 seeds=seed_list, epochs=epochs, batch_size=batch_size, lr=lr, mem_size=memory,
                 n_chunks=n_chunks, eval_every=eval_every, name=name)
    if config is not None:
        cfg = override(load_config(config), **flags)
        run_dir = runs / cfg.name
        metrics = _run_one(cfg, run_dir, force=force)
        console.print(_summary_table(f"{cfg.name}: {cfg.learner_name} on {cfg.dataset['name']}", {cfg.learner_name: metrics}))
        console.print(f"wrote {run_dir}/ (config.toml, log.jsonl, metrics.json, report.md)")
        return
    _demo(flags, runs)


def _demo(flags: dict, runs: Path) -> None:
    from lifelong.learn.methods import LEARNERS, hyperparameters

    if flags.get("learner") is not None:
        learners = [flags.pop("learner")]
    else:
        flags.pop("learner")
        learners = [n for n in DEMO_LEARNERS if n in LEARNERS]
    dataset = flags.pop("dataset") or _default_dataset()
    base = from_dict({"name": "demo", "dataset": {"name": dataset}, "scenario": {"name": "class_incremental", "n_chunks": 5}})
    console.print(f"[bold]lifelong[/]: Split {dataset}, class-incremental, 5 chunks; learners {', '.join(learners)}")
    results = {}
    for name in learners:
        cfg = override(base, learner=name, name=f"demo-{name}", **{k: v for k, v in flags.items() if k != "name"})
        if "mem_size" in hyperparameters(LEARNERS[name]):
            cfg = override(cfg, mem_size=flags.get("mem_size") or 500)
        results[name] = _run_one(cfg, runs / cfg.name, force=True)
    console.print(_summary_table("Split-" + dataset + " (class-incremental)", results))
    for name, m in results.items():
        f, final = m["summary"]["forgetting"][0], m["summary"]["acc"][0]
        if math.isnan(f):  # joint: one training chunk, nothing to forget
            console.print(f"  {name:>10}: final accuracy {final:.2f} -> the upper bound (trained on all chunks at once)")
            continue
        verdict = "forgets most of what it learned" if f > 0.5 else ("forgets some" if f > 0.2 else "keeps what it learned")
        console.print(f"  {name:>10}: forgetting {f:.2f}, final accuracy {final:.2f} -> {verdict}")
    console.print(f"reports: {', '.join(str(runs / f'demo-{n}' / 'report.md') for n in results)}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")],
           reference: Annotated[Optional[Path], typer.Option(help="a cumulative/joint run for intransigence")] = None,
           html: Annotated[bool, typer.Option("--html", help="also write report.html and its PNG plots")] = False) -> None:
    """Rebuild metrics.json and report.md of a run from its log (and report.html with --html)."""
    from lifelong.experiments.run import write_outputs

    if not (run_dir / "log.jsonl").is_file():
        raise ConfigError(f"{run_dir} has no log.jsonl; pass a directory written by `lifelong run`")
    write_outputs(run_dir, reference=reference)
    console.print((run_dir / "report.md").read_text())
    if html:
        from lifelong.report import html_report

        console.print(f"wrote {html_report(run_dir)} (plots: accuracy_matrix.png, accuracy_curves.png)")


@app.command("list")
def list_() -> None:
    """Show the datasets, scenarios and learners, one line each."""
    from lifelong.data.datasets import DATASETS
    from lifelong.learn.methods import LEARNERS
    from lifelong.data.scenarios import SCENARIOS

    for title, rows in (
        ("datasets", [(n, d.description) for n, d in DATASETS.items()]),
        ("scenarios", [(n, s.description) for n, s in SCENARIOS.items()]),
        ("learners", [(n, f"{c.description} [{c.paper}]") for n, c in LEARNERS.items()]),
    ):
        table = Table(title=title, show_header=False, box=None)
        for n, d in rows:
            table.add_row(f"[bold]{n}[/]", d)
        console.print(table)




ledger_app = typer.Typer(help="The executable ledger of expected results.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("check")
def ledger_check(
    path: Annotated[Path, typer.Argument(help="a ledger file or directory")] = Path("ledger"),
    tier: Annotated[Optional[str], typer.Option(help="only this tier: fast or full")] = None,
    only: Annotated[Optional[str], typer.Option(help="only entries whose label contains this")] = None,
    record_: Annotated[bool, typer.Option("--record", help="write the observed values back into the files")] = False,
) -> None:
    """Rerun ledger entries; exit 1 when a mean final ACC leaves its band."""
    from lifelong.experiments.ledger import find_suites, record, run_entry

    if tier is not None and tier not in ("fast", "full"):
        raise ConfigError(f"--tier must be 'fast' or 'full', got {tier!r}")
    suites = find_suites(path, tier)
    table = Table(title=f"ledger check ({tier or 'all tiers'})")
    for col in ("entry", "expected ACC", "observed ACC", "forgetting", "s/seed", ""):
        table.add_column(col)
    failures, cache = 0, {}
    for suite in suites:
        outcomes = []
        for entry in suite.entries:
            if only and only not in entry.label:
                continue
            o = run_entry(entry, cache)
            outcomes.append(o)
            failures += not o.passed
            table.add_row(entry.label, f"{entry.acc:.3f} ± {entry.tol:.3f}", f"{o.acc:.3f} ± {o.acc_std:.3f}",
                          f"{o.forgetting:.3f}", f"{o.wall_time_s:.1f}", "[green]ok[/]" if o.passed else "[red]OUT OF BAND[/]")
            err_console.print(f"{entry.label}: {o.acc:.4f} ({'ok' if o.passed else 'out of band'})", highlight=False)
        if record_ and outcomes:
            record(suite, outcomes)
    console.print(table)
    if failures:
        console.print(f"[red]{failures} entr{'y' if failures == 1 else 'ies'} out of band[/]")
        raise typer.Exit(1)





@ledger_app.command("table")
def ledger_table(path: Annotated[Path, typer.Argument(help="a ledger file or directory")] = Path("ledger")) -> None:
    """Print the ledger's expected and last observed values as Markdown."""
    from lifelong.experiments.ledger import find_suites, markdown_table

    for suite in find_suites(path):
        print(markdown_table(suite) + "\n")


# Commands that live beside the code they drive register themselves here.
from lifelong.cli.report import register as _register_report  # noqa: E402
from lifelong.cli.serve import register as _register_serve  # noqa: E402
from lifelong.experiments.sweep import register as _register_sweep  # noqa: E402

for _register in (_register_report, _register_sweep, _register_serve):
    _register(app)


def main(argv: list[str] | None = None) -> None:
    run_app(app, argv)


def run_app(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run a typer app with lifelong's error contract: one line on stderr and exit 2 for user errors."""
    try:
        code = app(args=argv, standalone_mode=False)  # without standalone mode, typer.Exit(n) returns n
    except LifelongError as e:
        print(f"error: {e}", file=sys.stderr)  # one unwrapped line, whatever the terminal width
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: typer prints them like click does
        e.show() if hasattr(e, "show") else err_console.print(f"error: {e}")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted; a run continues with `lifelong run --resume RUN_DIR`, a sweep with --resume")
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
