"""``lifelong sweep`` (a grid of runs) and ``lifelong tune`` (a hyper-parameter search), with the sweep's progress display.

The work is :mod:`lifelong.experiments.sweep` and :mod:`lifelong.experiments.tune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lifelong.cli.common import err_console
from lifelong.experiments.sweep import open_sweep, run_sweep, status_line
from lifelong.experiments.tune import load_tune, run_tune

app = typer.Typer()


class SweepDisplay:
    """A rich progress bar (runs done / running / failed, elapsed, ETA) and one line per finished run.

    Pass it as ``on_event`` to :func:`~lifelong.experiments.sweep.run_sweep`, inside ``with``. The
    bar is drawn only on a terminal; the per-run lines are always printed.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.total = self.n_finished = self.n_failed = self.n_running = 0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("done {task.fields[done]} · running {task.fields[running]} · failed {task.fields[failed]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False, disable=not console.is_terminal,
        )
        self.task: Any = None

    def __enter__(self) -> SweepDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "start":
            self.total, self.n_finished = info["total"], info["skipped"]
            self.task = self.progress.add_task(info["title"], total=self.total, completed=self.n_finished,
                                               done=self.n_finished, running=0, failed=0)
            if info["skipped"]:
                self.console.print(f"resume: {info['skipped']} of {self.total} runs already finished, skipped",
                                   highlight=False)
        elif kind == "finished":
            self.n_finished += 1
            self.n_failed += info.get("status") != "done"
            self.n_running = max(0, self.n_running - 1)
            self.console.print(f"[{self.n_finished}/{self.total}] {status_line(info)}", highlight=False, markup=False,
                               soft_wrap=True)
        else:
            self.n_running = info["running"]
        if self.task is not None:
            self.progress.update(self.task, completed=self.n_finished, done=self.n_finished - self.n_failed,
                                 running=self.n_running, failed=self.n_failed)


@app.command("sweep")
def sweep(
    sweep_file: Annotated[Optional[Path], typer.Argument(help="sweep file (TOML): a run config plus [axes]")] = None,
    out: Annotated[Path, typer.Option(help="parent directory: the sweep goes to OUT/<name>/")] = Path("sweeps"),
    backend: Annotated[Optional[str], typer.Option(help="ray (default) or local (in sequence, no Ray)")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)")] = None,
    num_cpus: Annotated[Optional[int], typer.Option("--num-cpus", help="CPUs of the local Ray (default: all)")] = None,
    cpus_per_run: Annotated[Optional[int], typer.Option("--cpus-per-run", help="Ray CPUs per run (default 1)")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads per run (default: one per Ray CPU)")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="continue the sweep in this directory, skipping finished runs")] = None,
    force: Annotated[bool, typer.Option("--force", help="start over in an existing sweep directory")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the runs and exit")] = False,
) -> None:
    """Run a grid of experiments (axes × seeds) on Ray or locally; write a mean ± std table per cell."""
    plan, text, sweep_dir = open_sweep(sweep_file, resume=resume, out=out)
    if dry_run:
        for r in plan.runs:
            extra = f"  (dropped {', '.join(r.dropped)})" if r.dropped else ""
            typer.echo(f"{r.name}{extra}")
        typer.echo(f"{len(plan.runs)} runs -> {sweep_dir}/")
        return
    console = err_console()
    with SweepDisplay(console) as display:
        result = run_sweep(plan, sweep_dir, text=text, backend=backend, address=address, num_cpus=num_cpus,
                           cpus_per_run=cpus_per_run, threads=threads, resume=resume is not None, force=force,
                           on_event=display)
    typer.echo(result.summary_path.read_text(encoding="utf-8"))
    console.print(f"{len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} skipped "
                  f"in {result.wall_time_s:.1f}s; wrote {result.summary_path}", highlight=False)
    if result.failed:
        console.print(f"some runs failed; fix them and run `lifelong sweep --resume {sweep_dir}`", highlight=False)
        raise SystemExit(1)  # not typer.Exit: cli.main runs the app with standalone_mode=False, which returns its code


@app.command("tune")
def tune(
    tune_file: Annotated[Path, typer.Argument(help="tune file (TOML): a run config plus [search] and [tune]")],
    out: Annotated[Path, typer.Option(help="parent directory: results go to OUT/<name>/")] = Path("tunes"),
    algorithm: Annotated[Optional[str], typer.Option(help="random or asha")] = None,
    num_samples: Annotated[Optional[int], typer.Option("--num-samples", help="number of sampled configurations")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="first-chunks (default) or full-stream (leaky)")] = None,
    first_chunks: Annotated[Optional[int], typer.Option("--first-chunks", help="chunks to tune on (first-chunks protocol)")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)")] = None,
    num_cpus: Annotated[Optional[int], typer.Option("--num-cpus", help="CPUs of the local Ray (default: all)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing result directory")] = False,
) -> None:
    """Search hyper-parameters with Ray Tune (random search or ASHA), then evaluate the choice on the full stream."""
    console = err_console()
    spec = load_tune(tune_file, algorithm=algorithm, num_samples=num_samples, protocol=protocol, first_chunks=first_chunks)
    result = run_tune(spec, out / spec.name, address=address, num_cpus=num_cpus, force=force, console=console)
    typer.echo(result.summary_path.read_text(encoding="utf-8"))
    console.print(f"wrote {result.out_dir}/ (best.json, history.json, history.csv, best_config.toml, final/)", highlight=False)
