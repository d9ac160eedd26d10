"""Comparisons people can trust: the stability gap in metrics.json, stars only where a difference
survives the seeds (paired 95% t-intervals), the comparability banner, verdicts that know when a
learner never learned, and the CSV / LaTeX export of ``lifelong compare``.

Every run here is a hand-built log whose metrics are known, passed through the real
``write_outputs``, so the numbers in metrics.json and in the reports are the pipeline's own.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.experiments.run import write_outputs
from lifelong.log import Record, RunLog
from lifelong.report import compare_runs, html_report
from lifelong.report.compare import comparability_banner, forgetting_verdict
from lifelong.report.view import beats, load_run, mean_interval, paired_interval, significant_best, t_quantile

CONFIG = """name = "{name}"
seeds = {seeds}

[dataset]
name = "{dataset}"

[scenario]
name = "class_incremental"
n_chunks = 2

[model]
kind = "mlp"

[train]
epochs = {epochs}
batch_size = 8
lr = 0.1
eval_every = 4

[learner]
name = "{learner}"
"""


def make_run(root: Path, name: str, learner: str, rows: dict[int, tuple[float, float, float]], *,
             periodic: float | None = 0.3, n_classes: int = 4, dataset: str = "blobs", epochs: int = 1) -> Path:
    """A two-chunk class-incremental run: per seed ``(R[0][0] = R[1][1], R[1][0], periodic)``.

    ``R[0][1] = 0``. ``periodic`` is task 0's accuracy at one evaluation inside chunk 1 (None: no
    periodic evaluations). So acc = (R10 + R11)/2, learning accuracy = R00, forgetting = R00 - R10,
    stability gap = R00 - min(periodic, R10).
    """
    d = root / name
    d.mkdir(parents=True)
    seeds = list(rows)
    (d / "config.toml").write_text(CONFIG.format(name=name, seeds=seeds, dataset=dataset, epochs=epochs, learner=learner))
    with RunLog(d / "log.jsonl") as log:
        for seed, (diag, old) in ((s, rows[s][:2]) for s in seeds):
            p = rows[seed][2] if len(rows[seed]) > 2 else periodic
            log.write(Record("meta", seed=seed, extra={
                "learner": learner, "scenario": "class_incremental", "dataset": dataset, "n_classes": n_classes,
                "n_eval": 2, "chunk_classes": [[0, 1], [2, 3]], "n_chunks": 2}))
            evals = [(0, 0, diag, 10, True), (0, 1, 0.0, 10, True)]
            if p is not None:
                evals.append((1, 0, p, 12, False))
            evals += [(1, 0, old, 20, True), (1, 1, diag, 20, True)]
            for chunk, task, a, step, boundary in evals:
                log.write(Record("eval", seed=seed, chunk=chunk, task=task, step=step, n=1000,
                                 n_correct=round(a * 1000), boundary=boundary))
    write_outputs(d)
    return d


# ---------------------------------------------------------------- 1. stability gap in metrics.json


def test_stability_gap_per_seed_and_summary_from_a_hand_built_log(tmp_path):
    # seed 0: 0.9 - min(0.3, 0.5) = 0.6; seed 1: 0.8 - min(0.6, 0.7) = 0.2
    run = make_run(tmp_path, "r", "naive", {0: (0.9, 0.5, 0.3), 1: (0.8, 0.7, 0.6)})
    m = json.loads((run / "metrics.json").read_text())
    assert m["per_seed"]["0"]["stability_gap"] == pytest.approx(0.6)
    assert m["per_seed"]["1"]["stability_gap"] == pytest.approx(0.2)
    mean, std = m["summary"]["stability_gap"]
    assert mean == pytest.approx(0.4) and std == pytest.approx(math.sqrt(0.08))
    md = (run / "report.md").read_text()
    # shown with its 95% interval: 12.706 * sqrt(0.08) / sqrt(2) = 2.5412
    assert re.search(r"\| Stability gap[^|]*\| 0\.4000 ± 2\.5412 \|", md)
    page = html_report(run, out_dir=tmp_path / "html").read_text()
    assert "Stability gap" in page and "0.4000 ± 2.5412" in page


def test_stability_gap_is_nan_without_periodic_evaluations_and_the_report_says_why(tmp_path):
    run = make_run(tmp_path, "r", "naive", {0: (0.9, 0.5), 1: (0.8, 0.7)}, periodic=None)
    m = json.loads((run / "metrics.json").read_text())
    assert math.isnan(m["per_seed"]["0"]["stability_gap"]) and math.isnan(m["summary"]["stability_gap"][0])
    assert m["summary"]["forgetting"][0] == pytest.approx(0.25)  # the other metrics are unaffected
    md = (run / "report.md").read_text()
    assert "no periodic evaluations" in md and "eval_every" in md
    assert "no periodic evaluations" in html_report(run, out_dir=tmp_path / "html").read_text()
    with_gap = make_run(tmp_path, "g", "naive", {0: (0.9, 0.5), 1: (0.8, 0.7)})
    assert "no periodic evaluations" not in (with_gap / "report.md").read_text()


# ---------------------------------------------------------------- 2. stars only where the difference survives the seeds


def test_t_quantiles_and_intervals():
    assert t_quantile(1) == pytest.approx(12.706) and t_quantile(2) == pytest.approx(4.303)
    assert t_quantile(30) == pytest.approx(2.042) and t_quantile(45) >= 2.014  # never narrower than exact
    mean, half, n = mean_interval([0.1, 0.2, 0.3])
    assert (mean, n) == (pytest.approx(0.2), 3) and half == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert math.isnan(mean_interval([0.5])[1]) and mean_interval([])[2] == 0
    # paired on the common seeds only
    m, h, n = paired_interval({"0": 0.9, "1": 0.7, "2": 0.1}, {"0": 0.5, "1": 0.4})
    assert n == 2 and m == pytest.approx(0.35)


def test_noise_gets_no_star_a_consistent_difference_gets_one_ties_never():
    noisy_a = {"0": 0.70, "1": 0.52, "2": 0.61}
    noisy_b = {"0": 0.60, "1": 0.58, "2": 0.57}  # a is ahead on the mean (0.61 vs 0.583) but not per seed
    assert significant_best([noisy_a, noisy_b], "acc") == set()
    steady_a = {"0": 0.71, "1": 0.64, "2": 0.69}
    steady_b = {"0": 0.61, "1": 0.55, "2": 0.58}  # a ahead by 0.10, 0.09, 0.11: the interval excludes 0
    assert significant_best([steady_a, steady_b], "acc") == {0}
    assert significant_best([steady_a, steady_b], "forgetting") == {1}  # lower is better there
    assert significant_best([steady_a, dict(steady_a)], "acc") == set()  # identical: a tie
    assert significant_best([steady_a, steady_b, dict(steady_a)], "acc") == set()  # tied at the top
    assert beats(steady_a, steady_a, "acc") is False
    # unmatched seeds and single seeds are ties, however large the gap
    assert significant_best([{"0": 0.9, "1": 0.9}, {"2": 0.1, "3": 0.1}], "acc") == set()
    assert significant_best([{"0": 0.9}, {"0": 0.1}], "acc") == set()
    assert beats({"0": 0.9}, {"0": 0.1}, "acc") is None


def test_compare_stars_follow_the_paired_interval(tmp_path):
    # the same 0.3 lead in final accuracy on every seed; learning accuracy identical on every seed
    steady = make_run(tmp_path, "er", "er", {0: (0.9, 0.6), 1: (0.8, 0.55), 2: (0.85, 0.62)})
    base = make_run(tmp_path, "naive", "naive", {0: (0.9, 0.3), 1: (0.8, 0.25), 2: (0.85, 0.32)})
    result = compare_runs([steady, base], tmp_path / "cmp")
    col = {c[1]: j for j, c in enumerate(result.columns)}
    assert result.best[col["acc"]] == {0} and result.best[col["forgetting"]] == {0}
    assert result.best[col["learning_accuracy"]] == set()  # identical values: never starred
    mean, half = result.values[0][col["acc"]]
    assert mean == pytest.approx(0.72) and half == pytest.approx(mean_interval([0.75, 0.675, 0.735])[1])
    md = result.md_path.read_text()
    row = next(line for line in md.splitlines() if line.startswith("| er |"))
    assert row.count("★") == sum(0 in b for b in result.best)
    assert f"{mean:.4f} ± {half:.4f} ★" in row
    page = result.html_path.read_text()
    assert page.count("★</td>") == sum(len(b) for b in result.best)

    # two seeds, noisy: the means differ but no star
    a = make_run(tmp_path, "a", "er", {0: (0.9, 0.60), 1: (0.8, 0.30)})
    b = make_run(tmp_path, "b", "naive", {0: (0.9, 0.35), 1: (0.8, 0.45)})
    noisy = compare_runs([a, b], tmp_path / "noisy")
    assert not any(noisy.best) and "★" not in noisy.md_path.read_text().split("| run |")[1]
    # unmatched seeds: a tie however large the gap
    c = make_run(tmp_path, "c", "er", {5: (0.9, 0.9), 6: (0.8, 0.8), 7: (0.9, 0.9)})
    assert not any(compare_runs([c, base], tmp_path / "unmatched").best)


# ---------------------------------------------------------------- 3. the comparability banner


def test_banner_lists_every_difference(tmp_path):
    a = make_run(tmp_path, "a", "naive", {0: (0.9, 0.5), 1: (0.8, 0.5)}, dataset="digits", epochs=1)
    b = make_run(tmp_path, "b", "er", {0: (0.9, 0.5), 2: (0.8, 0.5)}, dataset="fashion_mnist", epochs=20)
    result = compare_runs([a, b], tmp_path / "cmp")
    assert result.banner == "runs differ in: dataset (digits vs fashion_mnist), epochs (1 vs 20), seeds ([0, 1] vs [0, 2])"
    assert result.md_path.read_text().splitlines()[2] == f"> **{result.banner}**"  # at the top
    page = result.html_path.read_text()
    assert page.index('id="comparability"') < page.index('class="glance"')
    same = make_run(tmp_path, "c", "er", {0: (0.9, 0.5), 1: (0.8, 0.5)}, dataset="digits")
    assert compare_runs([a, same], tmp_path / "same").banner.startswith("runs agree on:")
    # the memory budget, the scenario's options and the training protocol are compared too
    text = (same / "config.toml").read_text()
    (same / "config.toml").write_text(text.replace("n_chunks = 2", "n_chunks = 5").replace("lr = 0.1", "lr = 0.01")
                                      .replace('name = "er"', 'name = "er"\nmem_size = 200'))
    other = make_run(tmp_path, "d", "der", {0: (0.9, 0.5), 1: (0.8, 0.5)}, dataset="digits")
    (other / "config.toml").write_text((other / "config.toml").read_text().replace('name = "der"', 'name = "der"\nmem_size = 500'))
    banner = compare_runs([same, other], tmp_path / "mem").banner
    assert banner == "runs differ in: scenario.n_chunks (5 vs 2), lr (0.01 vs 0.1), mem_size (200 vs 500)"


def test_cli_prints_the_banner_first(tmp_path, capsys):
    a = make_run(tmp_path, "a", "naive", {0: (0.9, 0.5), 1: (0.8, 0.5)}, epochs=1)
    b = make_run(tmp_path, "b", "er", {0: (0.9, 0.5), 1: (0.8, 0.5)}, epochs=20)
    main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")])
    out = capsys.readouterr().out
    assert out.lstrip().startswith("runs differ in: epochs (1 vs 20)")


# ---------------------------------------------------------------- 4. verdicts that know when nothing was learned


def test_a_learner_near_chance_never_learned_and_is_not_called_the_least_forgetful(tmp_path):
    # 4 classes: chance 0.25, near chance below 0.25 + 0.1 * 0.75 = 0.325
    flat = make_run(tmp_path, "flat", "si", {0: (0.27, 0.27), 1: (0.26, 0.26)})  # forgetting 0: nothing to forget
    real = make_run(tmp_path, "real", "er", {0: (0.9, 0.6), 1: (0.85, 0.5)})
    naive = make_run(tmp_path, "naive", "naive", {0: (0.9, 0.2), 1: (0.85, 0.1)})
    result = compare_runs([flat, real, naive], tmp_path / "cmp")
    assert result.verdict.startswith("er forgets least (forgetting 0.325, final accuracy 0.713")
    assert "si never learned (learning accuracy 0.265 near chance 0.250)" in result.verdict
    assert "si forgets least" not in result.verdict
    views = [load_run(d) for d in (flat, real)]
    assert forgetting_verdict(["si", "er"], views).startswith("er forgets least")
    only = forgetting_verdict(["si"], [views[0]])
    assert only.startswith("no run learned enough to judge forgetting") and "forgets least" not in only
    page = html_report(flat, out_dir=tmp_path / "html").read_text()
    assert "never learned (learning accuracy 0.265 near chance 0.250)" in page and "keeps" not in page.split("glance")[1][:400]


def test_the_verdict_says_when_the_lead_is_noise_or_another_run_ends_more_accurate(tmp_path):
    # forgetting 0.10, 0.14, 0.11 against 0.35, 0.38, 0.36: ewc's lead holds on every seed
    stable = make_run(tmp_path, "s", "ewc", {0: (0.6, 0.5), 1: (0.62, 0.48), 2: (0.61, 0.5)})  # learns little
    sharp = make_run(tmp_path, "p", "er", {0: (0.95, 0.6), 1: (0.9, 0.52), 2: (0.92, 0.56)})
    v = compare_runs([stable, sharp], tmp_path / "cmp").verdict
    assert v.startswith("ewc forgets least (forgetting 0.117, final accuracy 0.552") and "er ends more accurate (0.742)" in v
    assert "seeds' noise" not in v
    # forgetting 0.05, 0.5, 0.3: less than er's on the mean, not per seed
    noisy = make_run(tmp_path, "n", "naive", {0: (0.9, 0.85), 1: (0.9, 0.4), 2: (0.9, 0.6)})
    v = compare_runs([sharp, noisy], tmp_path / "noisy").verdict
    assert "not by more than the seeds' noise against" in v


# ---------------------------------------------------------------- 5. CSV and LaTeX export


def test_csv_and_latex_export(tmp_path, capsys):
    a = make_run(tmp_path, "a", "er", {0: (0.9, 0.6), 1: (0.8, 0.55), 2: (0.85, 0.62)})
    b = make_run(tmp_path, "b", "naive", {0: (0.9, 0.3), 1: (0.8, 0.25), 2: (0.85, 0.32)})
    c = make_run(tmp_path, "c_x", "lwf", {0: (0.9, 0.4), 1: (0.8, 0.4), 2: (0.85, 0.4)})
    csv_path, tex_path = tmp_path / "t.csv", tmp_path / "t.tex"
    main(["compare", str(a), str(b), str(c), "--out", str(tmp_path / "cmp"), "--csv", str(csv_path), "--latex", str(tex_path)])
    assert "wrote " + str(csv_path) in capsys.readouterr().out.replace("\n", "")
    rows = list(csv.DictReader(csv_path.open(newline="")))
    assert [r["run"] for r in rows] == ["er", "naive", "lwf"] and [r["n_seeds"] for r in rows] == ["3", "3", "3"]
    assert float(rows[0]["acc"]) == pytest.approx(0.72) and float(rows[1]["acc"]) == pytest.approx(0.57)
    assert float(rows[0]["acc_ci95"]) == pytest.approx(mean_interval([0.75, 0.675, 0.735])[1])
    assert rows[0]["acc_best"] == "1" and rows[1]["acc_best"] == "0" and rows[0]["learning_accuracy_best"] == "0"
    assert rows[0]["fwt"] == "" and "stability_gap" in rows[0]
    tex = tex_path.read_text()
    body = tex.split("\\begin{tabular}{l")[1].split("\\end{tabular}")[0]
    lines = [ln for ln in body.splitlines() if ln.endswith("\\\\")]
    assert len(lines) == 1 + 3  # the header, then one row per run
    assert [ln.split(" & ")[0] for ln in lines[1:]] == ["er", "naive", "lwf"]
    assert all(ln.count(" & ") == lines[0].count(" & ") for ln in lines)
    assert "\\textbf{0.7200 $\\pm$" in lines[1] and "\\textbf" not in lines[2]


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    a = make_run(tmp_path, "a", "er", {0: (0.9, 0.6), 1: (0.8, 0.55)})
    for argv in (["compare", str(a), str(tmp_path / "nope")],
                 ["compare", str(a), str(a), "--csv", str(tmp_path / "missing" / "t.csv")],
                 ["compare", str(a), str(a), "--latex", str(tmp_path)]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err
    assert not (tmp_path / "cmp").exists()


# ---------------------------------------------------------------- the sweep summary follows the same rules


def fake_sweep(tmp_path: Path, rows: dict[str, dict[int, tuple[float, float]]], failed: dict[str, int] | None = None):
    """A sweep directory whose runs are hand-built logs: ``rows[learner][seed]`` as in :func:`make_run`."""
    from lifelong.experiments.sweep import parse_sweep

    seeds = sorted({s for r in rows.values() for s in r})
    plan = parse_sweep({"name": "t", "seeds": seeds, "dataset": {"name": "blobs"},
                        "scenario": {"name": "class_incremental", "n_chunks": 2},
                        "learner": {"name": "naive"}, "axes": {"learner.name": list(rows)}})
    root = tmp_path / "sweep"
    for spec in plan.runs:
        learner = spec.values["learner.name"]
        if (failed or {}).get(learner) == spec.seed:
            (root / spec.name).mkdir(parents=True)
            (root / spec.name / "status.json").write_text(json.dumps({"status": "failed", "error": "boom", "error_type": "X"}))
            continue
        run = make_run(root, spec.name, learner, {spec.seed: rows[learner][spec.seed]})
        (run / "status.json").write_text(json.dumps({"status": "done", "wall_time_s": 1.0}))
    return root, plan


def test_a_learner_near_chance_only_at_its_boundaries_learns_late_and_is_not_the_least_forgetful(tmp_path):
    # learning accuracy 0.27 (near chance 0.25) but task 0 ends at 0.9: final 0.585, forgetting -0.63
    late = make_run(tmp_path, "late", "cls_er", {0: (0.27, 0.9), 1: (0.27, 0.9)})
    real = make_run(tmp_path, "real", "er", {0: (0.9, 0.6), 1: (0.85, 0.5)})
    result = compare_runs([late, real], tmp_path / "cmp")
    assert result.verdict.startswith("er forgets least")
    assert "cls_er learns late (learning accuracy 0.270 near chance 0.250, final accuracy 0.585" in result.verdict
    assert "never learned" not in result.verdict and "cls_er forgets least" not in result.verdict
    from lifelong.evaluate.health import run_warnings
    view = load_run(late)
    warnings = run_warnings([], view.metrics, view.meta, 0.25)
    assert any(w.startswith("cls_er learns late") for w in warnings) and not any("never learned" in w for w in warnings)


def test_sweep_summary_stars_intervals_banner_and_verdict(tmp_path):
    from lifelong.experiments.sweep.summary import write_summary

    root, plan = fake_sweep(tmp_path, {
        "er": {0: (0.9, 0.6), 1: (0.8, 0.55), 2: (0.85, 0.62)},
        "naive": {0: (0.9, 0.3), 1: (0.8, 0.25), 2: (0.85, 0.32)},
        "lwf": {0: (0.27, 0.27), 1: (0.26, 0.26), 2: (0.28, 0.27)},  # near chance (0.25)
    })
    md = write_summary(root, plan, compare=False).read_text()
    er = next(line for line in md.splitlines() if line.startswith("| er |"))
    half = mean_interval([0.75, 0.675, 0.735])[1]
    assert f"| 0.7200 ± {half:.4f} ★ |" in er  # acc: a consistent lead over both other cells
    assert "★" not in next(line for line in md.splitlines() if line.startswith("| naive |"))
    assert "stability_gap" in md.split("| er |")[0]
    assert "learner=lwf never learned (learning accuracy 0.270 near chance 0.250)" in md
    assert "learner=lwf forgets least" not in md and "learner=er forgets least" in md
    assert "runs agree on:" in md
    cells = {c["cell"]: c for c in json.loads((root / "summary.json").read_text())["cells"]}
    assert "acc" in cells["learner=er"]["best"] and cells["learner=er"]["ci95"]["acc"] == pytest.approx(half)

    # a failed seed: the banner says the cells ran different seeds, and nothing is starred against that cell
    root2, plan2 = fake_sweep(tmp_path / "2", {
        "er": {0: (0.9, 0.6), 1: (0.8, 0.55), 2: (0.85, 0.62)},
        "naive": {0: (0.9, 0.3), 1: (0.8, 0.25), 2: (0.85, 0.32)},
    }, failed={"naive": 2})
    md = write_summary(root2, plan2, compare=True).read_text()
    assert md.splitlines()[2].startswith("> **runs differ in: seeds ([0, 1, 2] vs [0, 1])** (the sweep's axes: learner)")
    table = md.split("| learner |")[1].split("\n\n")[0]
    assert "★" not in table
    assert (root2 / "compare.md").read_text().splitlines()[2].startswith("> **runs differ in: seeds")


def test_the_verdict_says_when_seeds_do_not_match(tmp_path):
    a = make_run(tmp_path, "a", "er", {0: (0.9, 0.8), 1: (0.9, 0.8)})
    b = make_run(tmp_path, "b", "naive", {2: (0.9, 0.2), 3: (0.9, 0.2)})
    v = compare_runs([a, b], tmp_path / "cmp").verdict
    assert v.startswith("er forgets least") and "untested against naive (not the same two or more seeds)" in v
