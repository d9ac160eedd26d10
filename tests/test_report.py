"""HTML reports and run comparisons: page content, PNGs, best-value marking, multi-seed ± and the
verdict line."""

from __future__ import annotations

import base64
import html
import json
import re

import pytest

from lifelong.cli import main
from lifelong.experiments.config import from_dict
from lifelong.errors import DataError
from lifelong.evaluate.curves import accuracy_curves
from lifelong.report import best_runs, compare, compare_runs, html_report, load_run
from lifelong.report.view import significant_best
from lifelong.experiments.run import execute

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def config(run, learner, seeds, **scenario):
    return from_dict({
        "name": run, "seeds": seeds,
        "dataset": {"name": "blobs", "n_classes": 4, "n_per_class": 30, "n_test_per_class": 10},
        "scenario": {"name": "class_incremental", "n_chunks": 2, **scenario},
        "model": {"kind": "mlp", "hidden": [16]}, "train": {"batch_size": 8, "lr": 0.1, "eval_every": 4},
        "learner": {"name": learner, **({"mem_size": 20} if learner == "er" else {})},
    })


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, learner, seeds in (("naive", "naive", [0, 1]), ("er", "er", [0, 1]), ("single", "naive", [3])):
        out[name] = root / name
        execute(config(name, learner, seeds), out[name])
    out["l2m"] = root / "l2m"
    execute(config("l2m", "er", [0], name="l2m_dispersed", repeats=2, sleep=True, sleep_size=8), out["l2m"])
    return out


def images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_html_report_is_self_contained_with_config_tables_and_plots(runs, tmp_path):
    path = html_report(runs["naive"], out_dir=tmp_path)
    page = path.read_text()
    assert path == tmp_path / "report.html"
    assert html.escape('name = "naive"') in page and "[scenario]" in page  # the run's config
    assert 'id="classic-metrics"' in page and 'id="l2m-metrics"' in page
    assert "Performance maintenance (MRLEP)" in page and "ACC (final average accuracy)" in page
    # two plots, inlined, byte-identical to the PNGs written next to the page
    pngs = images(page)
    assert len(pngs) == 2 and all(p.startswith(PNG_MAGIC) for p in pngs)
    assert pngs == [(tmp_path / "accuracy_matrix.png").read_bytes(), (tmp_path / "accuracy_curves.png").read_bytes()]
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing external to fetch


def test_user_pages_carry_no_script(runs, tmp_path):
    # the browser test brings its own probe (tests/test_report_browser.py); users get none
    pages = [html_report(runs["naive"], out_dir=tmp_path / "r"), compare_runs([runs["naive"], runs["er"]], tmp_path / "c").html_path]
    for page in pages:
        text = page.read_text()
        assert "<script" not in text.lower() and "console" not in text and "<style>" in text


def test_multi_seed_reports_mean_and_std_and_per_seed_columns(runs, tmp_path):
    multi = html_report(runs["er"], out_dir=tmp_path / "multi").read_text()
    summary = json.loads((runs["er"] / "metrics.json").read_text())["summary"]
    mean, std = summary["acc"]
    assert f"{mean:.4f} ± {std:.4f}" in multi
    assert "<th>seed 0</th>" in multi and "<th>seed 1</th>" in multi and "mean over 2 seeds" in multi
    single = html_report(runs["single"], out_dir=tmp_path / "single").read_text()
    assert "±" not in single.split('id="classic-metrics"')[1].split("</table>")[0]


def test_report_command_writes_html_next_to_the_run(runs, capsys):
    main(["report", str(runs["single"]), "--html"])
    assert "report.html" in capsys.readouterr().out
    for name in ("report.html", "accuracy_matrix.png", "accuracy_curves.png", "report.md", "metrics.json"):
        assert (runs["single"] / name).is_file()
    assert "## L2M metrics" in (runs["single"] / "report.md").read_text()


def test_l2m_lifetime_report_marks_sleep_blocks(runs, tmp_path):
    view = load_run(runs["l2m"])
    curves = accuracy_curves(view.records)
    assert len(curves.sleep_spans) == 4 and all(a < b for a, b in curves.sleep_spans)
    page = html_report(runs["l2m"], out_dir=tmp_path, view=view).read_text()
    assert "shaded spans sleep blocks" in page and "scenario type dispersed" in page


def test_best_value_per_metric_respects_its_direction():
    assert best_runs([0.3, 0.1, 0.2], "forgetting") == {1}
    assert best_runs([0.3, 0.1, 0.2], "acc") == {0}
    assert best_runs([0.5, float("nan")], "acc") == set()  # one value: nothing to compare
    assert best_runs([-20.0, -5.0], "perf_maintenance_mrlep") == {1}


def test_compare_marks_the_best_per_column_and_names_who_forgets_least(runs, tmp_path, capsys):
    result = compare_runs([runs["naive"], runs["er"]], tmp_path)
    assert result.labels == ["naive", "er"]
    forgetting = [json.loads((runs[n] / "metrics.json").read_text())["summary"]["forgetting"][0] for n in ("naive", "er")]
    least = result.labels[forgetting.index(min(forgetting))]
    assert result.verdict.startswith(f"{least} forgets least")
    j = result.columns.index(("classic", "forgetting"))
    # a star only where the lead survives the seeds (tests/test_compare_trust.py checks the rule itself)
    per_seed = [{k: v["forgetting"] for k, v in json.loads((runs[n] / "metrics.json").read_text())["per_seed"].items()}
                for n in ("naive", "er")]
    assert result.best[j] == significant_best(per_seed, "forgetting")
    assert all(len(b) <= 1 for b in result.best)

    page = (tmp_path / "compare.html").read_text()
    for section in ("classic", "l2m"):
        cols = [k for k, c in enumerate(result.columns) if c[0] == section]
        table = page.split(f'id="compare-{section}"')[1].split("</table>")[0]
        rows = re.findall(r"<tr><th>([^<]+)</th>(.*?)</tr>", table)[1:]  # after the header row
        assert [r[0] for r in rows] == result.labels
        for i, (_, cells) in enumerate(rows):
            classes = re.findall(r'<td class="([^"]+)"', cells)
            assert len(classes) == len(cols)
            assert [k for k, c in zip(cols, classes) if "best" in c] == [k for k in cols if i in result.best[k]]
    assert "±" in page and result.verdict in html.unescape(page)
    assert len(images(page)) == 2
    for name in ("stability_plasticity.png", "curves_overlay.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)
    assert ("★" in (tmp_path / "compare.md").read_text().split("| run |")[1]) == any(result.best)

    main(["compare", str(runs["naive"]), str(runs["er"]), "--out", str(tmp_path / "cli")])
    printed = capsys.readouterr().out
    assert f"{least} forgets least" in printed and "95% t-interval" in printed
    assert (tmp_path / "cli" / "compare.html").is_file()


def test_compare_of_l2m_lifetimes_falls_back_to_l2m_maintenance(runs, tmp_path):
    result = compare_runs([runs["l2m"], runs["naive"]], tmp_path)
    # the classic forgetting of the class-incremental run exists, so it decides
    assert "forgets least (forgetting" in result.verdict
    only_l2m = compare_runs([runs["l2m"]], tmp_path / "one")
    assert "L2M performance maintenance" in only_l2m.verdict


def test_compare_hook_returns_markdown_and_writes_beside_the_runs(runs):
    md = compare([runs["naive"], runs["er"]])  # the signature lifelong.experiments.sweep calls: one positional
    parent = runs["naive"].parent
    assert "forgets least" in md and "95% t-interval" in md and md == (parent / "compare.md").read_text()
    assert (parent / "compare.html").is_file() and (parent / "stability_plasticity.png").is_file()


def test_missing_metrics_is_a_clear_error(tmp_path):
    (tmp_path / "log.jsonl").write_text("")
    with pytest.raises(DataError, match="lifelong report"):
        load_run(tmp_path)


def test_task_series_plot_draws_one_panel_per_series_as_a_png():
    pytest.importorskip("matplotlib")
    import numpy as np

    from lifelong.report.plots import task_series_plot

    mean, std = np.linspace(0.9, 0.1, 20), np.full(20, 0.05)
    p = task_series_plot([("new-task accuracy", {"naive": (mean, std), "redo": (mean[::-1], std)}),
                          ("effective rank", {"naive": (10 * mean, std)})], "plasticity.png")
    assert p.name == "plasticity.png" and p.png.startswith(PNG_MAGIC)
    assert p.alt == "new-task accuracy, effective rank"
