"""Cross-check of :mod:`lifelong.evaluate.l2m` and :mod:`lifelong.evaluate.l2logger` against the official
``l2metrics`` 3.1.0 / ``l2logger`` 1.8.2 packages.

The reference runs in its own virtual environment (NumPy < 2), built once under
``<repo>/.cache/l2metrics-venv`` and reused (see ``tests/l2m_tools/reference.py``). For every
lifetime below, the test writes the l2logger log with :func:`write_l2logger`, stores the STE logs
with ``python -m l2metrics -R -l STE_DIR -s a`` (into a private ``$L2DATA``), runs
``python -m l2metrics -l LOG_DIR -p performance --no-plot -O OUT_DIR -m both -t both`` and compares
``<run>_metrics.json`` with :func:`l2m_metrics` on the same directory read back by
:func:`read_l2logger`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from l2m_tools import lifetimes, reference

from lifelong.evaluate.l2logger import read_l2logger, records_to_l2rows, write_l2logger
from lifelong.evaluate.l2m import LIFETIME_METRICS, l2m_metrics

pytestmark = pytest.mark.slow

TOL = 1e-6
# metrics that read evaluation blocks (the ones the sleep rule decides)
EVAL_BASED = (
    "avg_eval_perf",
    "perf_maintenance_mrlep",
    "perf_maintenance_mrtlp",
    "forward_transfer_ratio",
    "backward_transfer_ratio",
    "forward_transfer_contrast",
    "backward_transfer_contrast",
)
TASK_KEYS = (
    "perf_recovery", "avg_train_perf", "avg_eval_perf", "perf_maintenance_mrlep", "perf_maintenance_mrtlp",
    "forward_transfer_ratio", "backward_transfer_ratio", "forward_transfer_contrast", "backward_transfer_contrast",
    "ste_rel_perf", "sample_efficiency", "recovery_times", "avg_train_perf_vals", "avg_eval_perf_vals",
    "ste_rel_perf_vals", "sample_efficiency_vals", "ste_saturation_vals", "ste_exp_to_sat_vals",
    "se_saturation_vals", "se_exp_to_sat_vals", "min", "max", "num_lx", "num_ex",
)


def _lifetimes() -> dict[str, dict[str, Any]]:
    """Every case: rows, STE runs, extra l2metrics options and our matching keyword arguments."""
    sleep_rows = records_to_l2rows(lifetimes.sleep_records(), seed=3)
    sleep_ste = {"task0_0": [lifetimes.ste_run("task0_0", ["task0_0", "task1_0"], [50], 401)]}
    cases: dict[str, dict[str, Any]] = {}
    for name in ("condensed", "dispersed", "sleep_eval", "shared_interval"):
        rows, ste = getattr(lifetimes, name)()
        cases[name] = {"rows": rows, "ste": ste}
    cases["dispersed_raw"] = dict(  # the same log, scored without normalisation and smoothing
        cases["dispersed"], log="dispersed", args=("-n", "none", "-g", "none"),
        kwargs={"normalize": False, "smooth": False},
    )
    cases["sleep_records"] = {"rows": sleep_rows, "ste": sleep_ste, "columns": ["loss", "performance"]}
    cases["sleep_records_relabelled"] = {"rows": lifetimes.relabel_sleep_as_wake_block(sleep_rows), "ste": {},
                                         "columns": ["loss", "performance"]}
    return cases


@pytest.fixture(scope="module")
def l2python() -> Path:
    try:
        return reference.ensure_venv()
    except reference.ReferenceUnavailable as e:
        pytest.skip(f"cannot build the l2metrics 3.1.0 reference venv: {e}")


@pytest.fixture(scope="module")
def results(l2python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict]]:
    """case -> (l2metrics' metrics JSON, our l2m_metrics result)."""
    root = tmp_path_factory.mktemp("l2m_crosscheck")
    cases = _lifetimes()
    written: dict[str, tuple[Path, Path, dict]] = {}  # log name -> (run dir, L2DATA, STE rows)
    stores = []
    for name, case in cases.items():
        log = case.get("log", name)
        if log in written:
            continue
        d = root / log
        run = write_l2logger(case["rows"], d / "logs", log, metric_columns=case.get("columns", ["performance"]),
                             scenario_info={"scenario_type": "custom", "complexity": "1-low", "difficulty": "2-medium"})
        ste_rows = {}
        for task, runs in case["ste"].items():
            for k, ste_log in enumerate(runs):
                ste_dir = write_l2logger(ste_log, d / "ste", f"ste_{task.lower()}_{k}", metric_columns=["performance"],
                                         scenario_info={"scenario_type": "ste"})
                ste_rows.setdefault(task.lower(), []).append(read_l2logger(ste_dir))
        # `-s a` prepends each stored run, so l2metrics holds a task's runs newest first
        written[log] = (run, d / "l2data", {task: runs[::-1] for task, runs in ste_rows.items()})
        if ste_rows:
            proc = reference.start(l2python, reference.store_ste_args(d / "ste"), l2data=d / "l2data", cwd=d)
            stores.append((log, proc))
    for log, proc in stores:
        reference.finish(proc, f"storing the STE data of {log}")

    procs = {}
    for name, case in cases.items():
        run, l2data, _ = written[case.get("log", name)]
        out = root / "out" / name
        procs[name] = (out, reference.start(l2python, reference.metrics_args(run, out, *case.get("args", ())),
                                            l2data=l2data, cwd=root))
    res = {}
    for name, (out, proc) in procs.items():
        case = cases[name]
        run, _, ste_rows = written[case.get("log", name)]
        output = reference.finish(proc, f"l2metrics on {name}")
        ref = reference.read_metrics(run, out, output)
        ours = l2m_metrics(read_l2logger(run), ste=ste_rows or None, **case.get("kwargs", {}))
        res[name] = (ref, ours)
    return res


def _close(ours: Any, ref: Any, where: str) -> None:
    """``ref`` from l2metrics' JSON (None or NaN for missing) against ``ours`` (NaN for missing)."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict) and set(ours) == set(ref), f"{where}: {ours} != {ref}"
        for k in ref:
            _close(ours[k], ref[k], f"{where}[{k!r}]")
    elif isinstance(ref, list):
        assert isinstance(ours, list) and len(ours) == len(ref), f"{where}: {ours} != {ref}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            _close(a, b, f"{where}[{i}]")
    elif ref is None or (isinstance(ref, float) and math.isnan(ref)):
        assert ours is None or math.isnan(ours), f"{where}: l2metrics has no value, we have {ours}"
    else:
        assert ours is not None and not math.isnan(ours), f"{where}: l2metrics has {ref}, we have none"
        assert abs(ours - ref) <= TOL * max(1.0, abs(ref)), f"{where}: ours {ours} vs l2metrics {ref}"


def _task_view(ours_task: dict, ref_task: dict) -> tuple[dict, dict]:
    """The per-task entries both report, with l2metrics' maintenance clumps flattened."""
    a = {k: ours_task[k] for k in TASK_KEYS}
    b = {k: ref_task.get(k, math.nan) for k in TASK_KEYS}
    for k in ("ste_rel_perf_vals", "sample_efficiency_vals", "ste_saturation_vals", "ste_exp_to_sat_vals",
              "se_saturation_vals", "se_exp_to_sat_vals"):
        if not isinstance(b[k], list):
            b[k] = []
    for m in ("mrlep", "mrtlp"):
        a[f"maintenance_val_{m}"] = ours_task[f"maintenance_val_{m}"]
        b[f"maintenance_val_{m}"] = [v for clump in ref_task.get(f"maintenance_val_{m}", []) for v in clump]
    return a, b


# which lifetime metrics each case must define (so that the comparison is not NaN against null)
DEFINED = {
    "condensed": set(LIFETIME_METRICS) - {"perf_recovery"},
    "dispersed": set(LIFETIME_METRICS),
    "dispersed_raw": set(LIFETIME_METRICS),
    "sleep_eval": set(LIFETIME_METRICS),
}


@pytest.mark.parametrize("case", sorted(DEFINED))
def test_lifetime_metrics_match_l2metrics(results, case):
    ref, ours = results[case]
    for name in LIFETIME_METRICS:
        _close(ours[name], ref.get(name), f"{case}.{name}")
    defined = {name for name in LIFETIME_METRICS if not math.isnan(ours[name])}
    assert defined == DEFINED[case]


@pytest.mark.parametrize("case", sorted(DEFINED))
def test_task_metrics_match_l2metrics(results, case):
    ref, ours = results[case]
    assert list(ours["task_metrics"]) == list(ref["task_metrics"])
    for task, ref_task in ref["task_metrics"].items():
        a, b = _task_view(ours["task_metrics"][task], ref_task)
        _close(a, b, f"{case}.task_metrics[{task!r}]")
    _close(ours["normalization_data_range"], ref["normalization_data_range"], f"{case}.normalization_data_range")
    assert (ours["num_lx"], ours["num_ex"]) == (ref["num_lx"], ref["num_ex"])


def test_sleep_learning_blocks_documented_difference(results):
    """A lifetime from our Record log whose chunks end in sleep training and whose evaluations are
    wake: l2metrics drops every evaluation (its sleep test looks at all regimes), we do not. Our
    evaluation-based values equal l2metrics' on the same log with the sleep blocks relabelled wake,
    and every other metric equals l2metrics' on the original log."""
    ref, ours = results["sleep_records"]
    ref_relabelled, ours_relabelled = results["sleep_records_relabelled"]
    for name in EVAL_BASED:
        assert ref.get(name) is None, name  # the l2metrics behaviour we do not copy
        _close(ours[name], ref_relabelled.get(name), f"sleep_records.{name} vs relabelled l2metrics")
        _close(ours[name], ours_relabelled[name], f"sleep_records.{name} vs relabelled ours")
    for name in set(LIFETIME_METRICS) - set(EVAL_BASED):
        _close(ours[name], ref.get(name), f"sleep_records.{name}")
    assert all(not math.isnan(ours[name]) for name in LIFETIME_METRICS)
    # the relabelled log has no sleep label at all, so there everything must match
    for name in LIFETIME_METRICS:
        _close(ours_relabelled[name], ref_relabelled.get(name), f"sleep_records_relabelled.{name}")


def test_shared_interval_transfer_documented_difference(results):
    """Learning blocks of a then b between the same two evaluations of c: l2metrics keeps only
    b -> c (a -> c is overwritten), we keep both; everything else matches."""
    ref, ours = results["shared_interval"]
    for name in set(LIFETIME_METRICS) - {"forward_transfer_ratio", "forward_transfer_contrast"}:
        _close(ours[name], ref.get(name), f"shared_interval.{name}")
    for name in ("forward_transfer_ratio", "forward_transfer_contrast"):
        ours_pairs = {(s, d): v for s, t in ours["task_metrics"].items() for d, v in t[name].items()}
        ref_pairs = {(s, d): v for s, t in ref["task_metrics"].items() for d, v in t[name].items()}
        assert set(ours_pairs) - set(ref_pairs) == {("a_0", "c_0")}
        assert set(ref_pairs) <= set(ours_pairs)
        for pair, values in ref_pairs.items():
            _close(ours_pairs[pair], values, f"shared_interval.{name}{pair}")
        # l2metrics' lifetime value is the mean over the pairs it kept
        kept = [ours_pairs[p][0] for p in ref_pairs]
        _close(sum(kept) / len(kept), ref[name], f"shared_interval.{name} (l2metrics' pairs)")
        everything = [v[0] for v in ours_pairs.values()]
        assert ours[name] == pytest.approx(sum(everything) / len(everything))


def _mask_timestamps(tsv: str) -> list[str]:
    """The TSV lines with the timestamp column (the 9th) blanked: l2logger stamps the wall clock."""
    return ["\t".join(c if i != 8 else "T" for i, c in enumerate(line.split("\t"))) for line in tsv.split("\n")]


def test_files_identical_to_real_l2logger(l2python, tmp_path):
    """The real l2logger.DataLogger writes the same files as write_l2logger (timestamps aside), and
    read_l2logger reads both the same."""
    rows, _ = lifetimes.dispersed()
    rows = [dict(r, worker_id="worker-0") for r in rows]
    spec = {"scenario_name": "dispersed", "metric_columns": ["performance"],
            "scenario_info": {"author": "lifelong", "scenario_type": "dispersed"}, "rows": rows}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    tool = Path(__file__).parent / "l2m_tools" / "write_with_l2logger.py"
    proc = reference.start(l2python, [str(tool), str(tmp_path / "spec.json"), str(tmp_path / "theirs")],
                           l2data=tmp_path / "l2data", cwd=tmp_path)
    theirs = Path(reference.finish(proc, "l2logger.DataLogger").strip().splitlines()[-1])
    ours = write_l2logger(rows, tmp_path / "ours", "dispersed", metric_columns=["performance"],
                          scenario_info=spec["scenario_info"])

    def tree(d: Path) -> dict[str, str]:
        return {str(p.relative_to(d)): p.read_text() for p in sorted(d.rglob("*")) if p.is_file()}

    a, b = tree(ours), tree(theirs)
    assert set(a) == set(b) and len(a) > 20
    for rel in a:
        if rel.endswith(".tsv"):
            assert _mask_timestamps(a[rel]) == _mask_timestamps(b[rel]), rel
        else:
            assert a[rel] == b[rel], rel
    assert '"{""block"": 0}"' in a["worker-0/0-test/data-log.tsv"]  # task_params quoted as csv does

    def strip(rows_: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "timestamp"} for r in rows_]

    ra, rb = strip(read_l2logger(ours)), strip(read_l2logger(theirs))
    assert len(ra) == len(rb) == len(rows)
    for x, y in zip(ra, rb):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == y[k] or (isinstance(x[k], float) and math.isnan(x[k]) and math.isnan(y[k])), k
