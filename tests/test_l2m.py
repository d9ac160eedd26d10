"""Unit tests of the L2M metrics and the l2logger format, against hand-computed values.

The cross-check against the official l2metrics package is in ``test_l2m_crosscheck.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lifelong.errors import DataError
from lifelong.evaluate.l2logger import (
    FIXED_COLUMNS,
    read_l2logger,
    read_logger_info,
    records_to_l2rows,
    write_l2logger,
)
from lifelong.log import Record
from lifelong.evaluate.l2m import (
    LIFETIME_METRICS,
    l2m_metrics,
    moving_average,
    normalize_task,
    recovery_time,
    saturation,
    smoothing_window,
    terminal_performance,
    theil_sen_slope,
    transfer_contrast,
    transfer_ratio,
)

RAW = {"normalize": False, "smooth": False}


class Lifetime:
    """Hand-built rows: ``.test(a=0.1, b=0.2)``, ``.train("a", [0.3, 0.5])``; one block per call."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.block = 0

    def _add(self, block_type: str, task: str, value: float, subtype: str = "wake") -> None:
        self.rows.append({"block_num": self.block, "exp_num": len(self.rows), "block_type": block_type,
                          "block_subtype": subtype, "task_name": task, "performance": value})

    def train(self, task: str, values: list[float], subtype: str = "wake") -> Lifetime:
        for v in values:
            self._add("train", task, v, subtype)
        self.block += 1
        return self

    def test(self, subtype: str = "wake", **values: float) -> Lifetime:
        for task, v in values.items():
            self._add("test", task, v, subtype)
        self.block += 1
        return self


def tiny() -> Lifetime:
    """Two tasks, alternating learning and evaluation blocks (values chosen for hand computation)."""
    return (Lifetime().test(a=0.1, b=0.2)
            .train("a", [0.3, 0.5, 0.7]).test(a=0.8, b=0.25)
            .train("b", [0.4, 0.6, 0.9]).test(a=0.6, b=0.85)
            .train("a", [0.5, 0.65, 0.75]).test(a=0.7, b=0.5))


# --------------------------------------------------------------------------------------------
# pre-processing


def test_normalisation_to_1_101():
    assert normalize_task([-100, 0, 100], -100, 100).tolist() == [1, 51, 101]
    assert normalize_task([0.2, 0.55, 0.9], 0.2, 0.9) == pytest.approx([1, 51, 101])
    assert normalize_task([0.4, 0.4], 0.4, 0.4).tolist() == [1, 1]  # constant task


def test_normalisation_range_is_per_task_and_includes_ste():
    rows = Lifetime().test(a=0.5, b=0.0).train("a", [0.2, 0.6]).test(a=0.4, b=2.0).rows
    m = l2m_metrics(rows, smooth=False)
    assert m["normalization_data_range"] == {"a": {"min": 0.2, "max": 0.6}, "b": {"min": 0.0, "max": 2.0}}
    assert m["task_metrics"]["a"]["avg_eval_perf_vals"] == pytest.approx([76, 51])
    m = l2m_metrics(rows, smooth=False, ste={"a": [[0.0, 1.0]]})  # STE training values widen a's range
    assert m["normalization_data_range"]["a"] == {"min": 0.0, "max": 1.0}
    assert m["task_metrics"]["a"]["avg_eval_perf_vals"] == pytest.approx([51, 41])
    assert l2m_metrics(rows, normalize=False, smooth=False)["normalization_data_range"] is None


def test_smoothing_window_rule():
    assert [smoothing_window(n) for n in (0, 14, 15, 19, 20, 499, 500, 5000)] == [0, 2, 3, 3, 4, 99, 100, 100]
    x = np.sin(np.arange(14.0))
    assert np.array_equal(moving_average(x), x)  # window 2 < 3: unchanged
    # window 3 (n = 15): y[i] = mean(x[i-2..i]) with mirrored ends: y[0] = mean(x2, x1, x0)
    x = np.arange(15.0)
    assert moving_average(x) == pytest.approx([1, 2 / 3] + [i - 1 for i in range(2, 15)])
    # window 4 (n = 20): y[i] = mean(x[i-2..i+1]) inside; y[0] = mean(x2, x1, x0, x1)
    x = np.arange(20.0)
    assert moving_average(x) == pytest.approx([1, 1] + [i - 0.5 for i in range(2, 19)] + [18.0])
    # the window is capped at 100: a unit impulse spreads over exactly 100 values of 1/100
    x = np.zeros(1000)
    x[500] = 1.0
    y = moving_average(x)
    assert y.max() == pytest.approx(0.01) and np.count_nonzero(y > 1e-12) == 100
    assert moving_average(np.arange(1.0, 11.0), window=3)[:2] == pytest.approx([2, 5 / 3])  # l2metrics' own test


def test_only_training_regimes_are_smoothed():
    lt = Lifetime().train("a", list(np.linspace(0, 1, 20) ** 2)).test(a=0.3)
    m = l2m_metrics(lt.rows + [dict(r, exp_num=r["exp_num"] + 21, block_num=2, block_type="test")
                               for r in lt.rows[:20]], normalize=False)
    train, test = m["regime_metrics"][0], m["regime_metrics"][2]
    x = np.linspace(0, 1, 20) ** 2
    assert train["avg_perf"] == pytest.approx(moving_average(x).mean())
    assert test["avg_perf"] == pytest.approx(x.mean())  # the same values in a test block: raw


def test_terminal_performance():
    assert terminal_performance(np.arange(1.0, 21.0), "train") == 19.5  # the last 10%: 2 of 20
    assert terminal_performance([1, 2, 3, 4, 5, 6, 7, 8, 9], "train") == 9  # int(8.1): the last one
    assert terminal_performance([1.0, 2.0, 6.0], "test") == 3.0
    # rows sharing an exp_num are averaged first: experiences (1), (2, 4) -> mean(1, 3)
    assert terminal_performance([1.0, 2.0, 4.0], "test", exp=[0, 1, 1]) == 2.0
    assert math.isnan(terminal_performance([], "test"))


def test_saturation_and_recovery_time():
    assert saturation([0.1, 0.5, 0.9, 0.4]) == (0.9, 2)
    assert saturation(np.ones(20)) == (pytest.approx(1.0), 0)
    assert recovery_time([0.2, 0.5, 0.7], 0.5) == 1
    assert recovery_time([0.2, 0.3], 0.5) == 3  # never recovers: n + 1


def test_theil_sen_slope_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (2, 3, 7, 20):
        y = rng.integers(0, 30, n).astype(float)
        assert theil_sen_slope(y) == pytest.approx(stats.theilslopes(y)[0])
    assert theil_sen_slope([3, 1, 0]) == -1.5
    with pytest.raises(DataError):
        theil_sen_slope([1.0])


def test_transfer_ratio_and_contrast():
    assert transfer_ratio(0.2, 0.25) == pytest.approx(1.25)
    assert transfer_contrast(0.2, 0.25) == pytest.approx(1 / 9)
    assert math.isnan(transfer_ratio(0.0, 1.0)) and math.isnan(transfer_contrast(0.0, 0.0))


# --------------------------------------------------------------------------------------------
# the suite on hand-computed lifetimes


def test_performance_maintenance_on_tiny_lifetime():
    m = l2m_metrics(tiny().rows, **RAW)
    # a: reference tests are the first after each learning block (blocks 2 and 6); block 4 is
    # compared with block 2 (mrlep: 0.6 - 0.8) and with a's last learning block (mrtlp: 0.6 - 0.7).
    # b: block 6 against block 4 (0.5 - 0.85) and against b's learning block (0.5 - 0.9).
    assert m["task_metrics"]["a"]["maintenance_val_mrlep"] == pytest.approx([-0.2])
    assert m["task_metrics"]["b"]["maintenance_val_mrtlp"] == pytest.approx([-0.4])
    assert m["perf_maintenance_mrlep"] == pytest.approx((-0.2 - 0.35) / 2)
    assert m["perf_maintenance_mrtlp"] == pytest.approx((-0.1 - 0.4) / 2)


def test_transfer_on_tiny_lifetime():
    m = l2m_metrics(tiny().rows, **RAW)
    # forward a -> b: b's evaluations around a's first learning block: 0.2 -> 0.25
    assert m["task_metrics"]["a"]["forward_transfer_ratio"] == {"b": [pytest.approx(1.25)]}
    assert m["forward_transfer_ratio"] == pytest.approx(1.25)
    assert m["forward_transfer_contrast"] == pytest.approx(0.05 / 0.45)
    # backward a -> b: 0.85 -> 0.5 around a's second block; b -> a: 0.8 -> 0.6 around b's block
    assert m["backward_transfer_ratio"] == pytest.approx((0.5 / 0.85 + 0.6 / 0.8) / 2)
    assert m["backward_transfer_contrast"] == pytest.approx((-0.35 / 1.35 - 0.2 / 1.4) / 2)


def test_mean_performance_and_recovery_on_tiny_lifetime():
    m = l2m_metrics(tiny().rows, **RAW)
    assert m["task_metrics"]["a"]["avg_train_perf_vals"] == pytest.approx([0.5, 0.6333333333])
    assert m["avg_train_perf"] == pytest.approx(((0.5 + 0.6333333333) / 2 + 0.6333333333) / 2)
    assert m["avg_eval_perf"] == pytest.approx((0.55 + 0.45) / 2)
    # a's second block reaches P(first block) = 0.7 (its last 10%) at index 2
    assert m["task_metrics"]["a"]["recovery_times"] == [2.0]
    assert math.isnan(m["perf_recovery"])  # one recovery time is not enough
    assert (m["num_lx"], m["num_ex"]) == (9, 8)
    assert set(LIFETIME_METRICS) <= set(m)


def test_performance_recovery():
    lt = (Lifetime().train("a", [0.2, 0.4, 0.6]).train("a", [0.1, 0.3, 0.5, 0.7])
          .train("a", [0.65, 0.7, 0.72]).train("a", [0.8, 0.8]))
    m = l2m_metrics(lt.rows, **RAW)
    # recovery times 3, 1, 0; pairwise slopes -2, -1.5, -1; PR = -median = 1.5
    assert m["task_metrics"]["a"]["recovery_times"] == [3.0, 1.0, 0.0]
    assert m["perf_recovery"] == pytest.approx(1.5)


def test_relative_performance_and_sample_efficiency():
    rows = Lifetime().test(a=0.1).train("a", [0.2, 0.4, 0.6, 0.8]).test(a=0.7).rows
    ste = {"a": [[0.1, 0.3, 0.5, 0.7, 0.9, 0.9]]}
    m = l2m_metrics(rows, ste=ste, **RAW)
    assert m["ste_rel_perf"] == pytest.approx(2.0 / 1.6)  # first 4 experiences of each
    # saturation 0.8 after 3 experiences; STE 0.9 after 4 (no smoothing below 15 values)
    assert m["sample_efficiency"] == pytest.approx((0.8 / 0.9) * (4 / 3))
    # a downward learning curve gives 0; a curve that peaks at once has no value
    down = Lifetime().train("a", [0.5, 0.9, 0.4, 0.3]).rows
    assert l2m_metrics(down, ste=ste, **RAW)["sample_efficiency"] == 0
    peak = Lifetime().train("a", [0.9, 0.5, 0.6]).rows
    assert math.isnan(l2m_metrics(peak, ste=ste, **RAW)["sample_efficiency"])
    # STE given as l2logger rows (training rows only; its evaluation rows are ignored)
    ste_rows = Lifetime().test(a=0.0).train("a", ste["a"][0]).test(a=0.95).rows
    assert l2m_metrics(rows, ste={"a": [ste_rows]}, **RAW)["sample_efficiency"] == pytest.approx(m["sample_efficiency"])
    assert math.isnan(l2m_metrics(rows, **RAW)["ste_rel_perf"])
    with pytest.raises(DataError, match="exactly the task"):
        l2m_metrics(rows, ste={"b": [ste_rows]})


def test_sleep_evaluation_blocks_replace_wake_ones():
    base = (Lifetime().test(a=0.1).test(subtype="sleep", a=0.2).train("a", [0.5, 0.6])
            .test(a=0.9).test(subtype="sleep", a=0.8))
    m = l2m_metrics(base.rows, **RAW)
    assert m["task_metrics"]["a"]["avg_eval_perf_vals"] == [0.2, 0.8]  # wake evaluations dropped
    # sleep *learning* with wake evaluations keeps the evaluations (l2metrics would drop them all)
    lt = Lifetime().test(a=0.1).train("a", [0.5, 0.6]).train("a", [0.7], subtype="sleep").test(a=0.9)
    m = l2m_metrics(lt.rows, **RAW)
    assert m["avg_eval_perf"] == pytest.approx(0.5)
    assert m["task_metrics"]["a"]["avg_train_perf_vals"] == pytest.approx([0.55, 0.7])


def test_transfer_keeps_every_source_of_a_shared_interval():
    lt = (Lifetime().test(a=0.1, b=0.1, c=0.2).train("a", [0.5]).train("b", [0.5])
          .test(a=0.5, b=0.5, c=0.3))
    m = l2m_metrics(lt.rows, **RAW)
    # l2metrics would keep only b -> c
    assert m["task_metrics"]["a"]["forward_transfer_ratio"]["c"] == [pytest.approx(1.5)]
    assert m["task_metrics"]["b"]["forward_transfer_ratio"]["c"] == [pytest.approx(1.5)]


def test_missing_values_and_incomplete_experiences_are_dropped():
    rows = tiny().rows
    extra = [dict(rows[3], performance=math.nan), dict(rows[3], performance=None),
             dict(rows[3], performance=0.0, exp_status="incomplete")]
    noisy = rows[:4] + extra + rows[4:]
    assert l2m_metrics(noisy, **RAW)["avg_train_perf"] == pytest.approx(l2m_metrics(rows, **RAW)["avg_train_perf"])


def test_task_names_are_case_insensitive():
    rows = [dict(r, task_name=r["task_name"].upper()) for r in tiny().rows]
    assert list(l2m_metrics(rows, **RAW)["task_metrics"]) == ["a", "b"]


@pytest.mark.parametrize("bad, match", [
    ({"block_type": "eval"}, "block_type"),
    ({"block_subtype": "nap"}, "block_subtype"),
    ({"exp_num": -1}, "exp_num"),
    ({"performance": "high"}, "number"),
])
def test_bad_rows_raise_data_error(bad, match):
    rows = tiny().rows
    rows[2] = dict(rows[2], **bad)
    with pytest.raises(DataError, match=match):
        l2m_metrics(rows)


def test_empty_or_unscored_lifetime_raises():
    with pytest.raises(DataError, match="no complete experience"):
        l2m_metrics([])
    with pytest.raises(DataError, match="lacks"):
        l2m_metrics(tiny().rows, perf_column="reward")
    rows = [dict(r, block_num=10 - r["block_num"]) for r in tiny().rows]
    with pytest.raises(DataError, match="decreases"):
        l2m_metrics(rows)


# --------------------------------------------------------------------------------------------
# l2logger files


def _rows() -> list[dict]:
    rows = tiny().rows
    for r in rows:
        r["task_name"] = f"{r['task_name']}_0"
        r["task_params"] = {"block": r["block_num"]} if r["block_type"] == "train" else {}
        r["loss"] = 1.0 - r["performance"]
    rows[3]["loss"] = math.nan
    return rows


def test_write_layout_and_columns(tmp_path):
    run = write_l2logger(_rows(), tmp_path, "tiny.scenario", metric_columns=["performance", "loss"],
                         scenario_info={"author": "me", "scenario_type": "custom"})
    assert run == tmp_path / "tiny-1577836800-0"
    assert json.loads((run / "logger_info.json").read_text()) == {
        "metrics_columns": ["performance", "loss"], "log_format_version": "1.1"}
    assert (run / "scenario_info.json").read_text() == '{\n  "author": "me",\n  "scenario_type": "custom"\n}'
    dirs = sorted(p.parent.name for p in run.rglob("data-log.tsv"))
    assert dirs == ["0-test", "1-train", "2-test", "3-train", "4-test", "5-train", "6-test"]
    lines = (run / "worker-0" / "1-train" / "data-log.tsv").read_text().split("\n")
    assert lines[0].split("\t") == list(FIXED_COLUMNS) + ["loss", "performance"]
    assert lines[1].split("\t") == ["1", "2", "worker-0", "train", "wake", "a_0", '"{""block"": 1}"', "complete",
                                    "20200101T000000.000002", "0.7", "0.3"]
    assert lines[2].split("\t")[-2:] == ["nan", "0.5"] and lines[-1] == ""


def test_write_is_deterministic_and_guards_existing_dirs(tmp_path):
    kw = {"metric_columns": ["performance", "loss"], "scenario_info": {}}
    a = write_l2logger(_rows(), tmp_path / "a", "s", **kw)
    b = write_l2logger(_rows(), tmp_path / "b", "s", **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    with pytest.raises(DataError, match="already exists"):
        write_l2logger(_rows(), tmp_path / "a", "s", **kw)
    rows = _rows()[:2]
    again = write_l2logger(rows, tmp_path / "a", "s", overwrite=True, **kw)
    assert len(read_l2logger(again)) == 2
    assert write_l2logger(rows, tmp_path / "a", "s", timestamp=1.5e9, **kw).name == "s-1500000000-0"


def test_round_trip(tmp_path):
    rows = _rows()
    rows[0]["task_name"] = "A_0"  # read lower-cases task names, as l2logger does
    run = write_l2logger(rows, tmp_path, "rt", metric_columns=["performance", "loss"], scenario_info={},
                         worker_id="w.1")
    back = read_l2logger(run)
    assert len(back) == len(rows)
    for r, b in zip(rows, back):
        assert list(b) == list(FIXED_COLUMNS) + ["loss", "performance"]
        assert b["worker_id"] == "w.1" and b["exp_status"] == "complete"
        assert b["timestamp"] == f"20200101T000000.{r['exp_num']:06d}"
        for k in ("block_num", "exp_num", "block_type", "block_subtype", "task_params", "performance"):
            assert b[k] == r[k]
        assert b["task_name"] == r["task_name"].lower()
    assert math.isnan(back[3]["loss"]) and back[4]["loss"] == rows[4]["loss"]
    info, scenario = read_logger_info(run)
    assert info["metrics_columns"] == ["performance", "loss"] and scenario == {}
    assert l2m_metrics(back)["avg_train_perf"] == pytest.approx(l2m_metrics(rows)["avg_train_perf"])


@pytest.mark.parametrize("bad, match", [
    ({"block_type": "eval"}, "block_type"),
    ({"exp_num": 0}, "exp_num 0 < 4"),
    ({"worker_id": "a b"}, "worker_id"),
    ({"task_params": [1]}, "task_params"),
    ({"extra_col": 1}, "columns"),
    ({"timestamp": "yesterday"}, "timestamp"),
])
def test_write_rejects_malformed_rows(tmp_path, bad, match):
    rows = _rows()
    rows[5] = dict(rows[5], **bad)
    with pytest.raises(DataError, match=match):
        write_l2logger(rows, tmp_path, "bad", metric_columns=["performance", "loss"], scenario_info={})
    assert not (tmp_path / "bad-1577836800-0").exists()  # nothing is written on error


def test_write_rejects_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="lack"):
        write_l2logger(_rows(), tmp_path, "s", metric_columns=["accuracy"], scenario_info={})
    with pytest.raises(DataError, match="non-empty"):
        write_l2logger(_rows(), tmp_path, "s", metric_columns=[], scenario_info={})
    with pytest.raises(DataError, match="scenario_type"):
        write_l2logger(_rows(), tmp_path, "s", metric_columns=["loss"], scenario_info={"scenario_type": "odd"})
    with pytest.raises(DataError, match="no rows"):
        write_l2logger([], tmp_path, "s", metric_columns=["loss"], scenario_info={})


def _tsv(run, name="0-test"):
    return run / "worker-0" / name / "data-log.tsv"


def test_read_rejects_malformed_directories(tmp_path):
    with pytest.raises(DataError, match="logger_info.json"):
        read_l2logger(tmp_path)
    kw = {"metric_columns": ["performance", "loss"], "scenario_info": {}}
    run = write_l2logger(_rows(), tmp_path / "x", "s", **kw)
    (run / "logger_info.json").write_text('{"metrics_columns": ["performance", "reward"]}')
    with pytest.raises(DataError, match="reward"):
        read_l2logger(run)

    run = write_l2logger(_rows(), tmp_path / "y", "s", **kw)
    text = _tsv(run).read_text()
    _tsv(run).write_text(text.replace("\t0.9\t", "\tlots\t", 1).replace("0.9\n", "lots\n", 1))
    with pytest.raises(DataError, match="not a number"):
        read_l2logger(run)

    run = write_l2logger(_rows(), tmp_path / "z", "s", **kw)
    path = _tsv(run, "6-test")
    path.write_text(path.read_text().replace("\n6\t", "\n0\t"))  # block 0 after block 5
    with pytest.raises(DataError, match="block_num decreases"):
        read_l2logger(run)

    run = write_l2logger(_rows(), tmp_path / "w", "s", **kw)
    _tsv(run).write_text(_tsv(run).read_text().replace("\twake\t", "\tawake\t"))
    with pytest.raises(DataError, match="block_subtype"):
        read_l2logger(run)

    (run / "logger_info.json").write_text("{not json")
    with pytest.raises(DataError, match="JSON"):
        read_l2logger(run)


def test_read_other_systems_logs(tmp_path):
    """No block_subtype column (older logs), empty task_params, an extra non-metric column."""
    run = tmp_path / "other-1"
    (run / "w0" / "0-train").mkdir(parents=True)
    (run / "logger_info.json").write_text('{"metrics_columns": ["reward"], "log_format_version": "1.0"}')
    (run / "scenario_info.json").write_text("{}")
    (run / "w0" / "0-train" / "data-log.tsv").write_text(
        "block_num\texp_num\tworker_id\tblock_type\ttask_name\ttask_params\texp_status\ttimestamp\tepisode\treward\n"
        "0\t1\tw0\ttrain\tCartPole_1\t\tcomplete\t20210101T000000.000001\te1\t2.5\n"
        "0\t0\tw0\ttrain\tCartPole_1\t\tcomplete\t20210101T000000.000000\te0\t\n")
    rows = read_l2logger(run)
    assert [r["exp_num"] for r in rows] == [0, 1]  # sorted by exp_num
    assert rows[1] == {"block_num": 0, "exp_num": 1, "worker_id": "w0", "block_type": "train", "block_subtype": "wake",
                       "task_name": "cartpole_1", "task_params": {}, "exp_status": "complete",
                       "timestamp": "20210101T000000.000001", "episode": "e1", "reward": 2.5}
    assert math.isnan(rows[0]["reward"])
    assert l2m_metrics(rows, perf_column="reward")["avg_train_perf"] == 1.0  # one value, normalised


# --------------------------------------------------------------------------------------------
# our run log -> L2M rows


def _records() -> list[Record]:
    return [
        Record("meta", seed=0, extra={"chunk_tasks": ["Digits_0", "digits_1"]}),
        Record("meta", seed=1),
        Record("eval", seed=0, chunk=-1, task=1, step=0, n=10, n_correct=2, loss_sum=20.0, boundary=True),
        Record("eval", seed=0, chunk=-1, task=0, step=0, n=10, n_correct=1, loss_sum=23.0, boundary=True),
        Record("train", seed=0, chunk=0, epoch=0, step=1, n=4, n_correct=1, loss_sum=8.0),
        Record("train", seed=1, chunk=0, epoch=0, step=1, n=4, n_correct=4, loss_sum=0.0),
        Record("eval", seed=0, chunk=0, task=0, step=1, n=10, n_correct=5, boundary=False),
        Record("train", seed=0, chunk=0, epoch=1, step=2, n=4, n_correct=3, loss_sum=4.0),
        Record("train", seed=0, chunk=0, epoch=1, step=3, n=4, n_correct=2, extra={"subtype": "sleep"}),
        Record("eval", seed=0, chunk=0, task=0, step=3, n=10, n_correct=9, loss_sum=3.0, boundary=True),
        Record("eval", seed=0, chunk=0, task=1, step=3, n=10, n_correct=3, loss_sum=19.0, boundary=True),
        Record("chunk_end", seed=0, chunk=0, step=3),
        Record("train", seed=0, chunk=1, epoch=0, step=4, n=5, n_correct=4, loss_sum=2.5),
        Record("eval", seed=0, chunk=1, task=0, step=4, n=10, n_correct=7, loss_sum=6.0, boundary=True),
        Record("eval", seed=0, chunk=1, task=1, step=4, n=10, n_correct=8, loss_sum=5.0, boundary=True),
        Record("chunk_end", seed=0, chunk=1, step=4),
    ]


def test_records_to_l2rows_mapping():
    rows = records_to_l2rows(_records(), seed=0)
    view = [(r["block_num"], r["exp_num"], r["block_type"], r["block_subtype"], r["task_name"], r["performance"])
            for r in rows]
    assert view == [
        (0, 0, "test", "wake", "task0_0", 0.1),  # initial evaluation, sets in task order
        (0, 1, "test", "wake", "task1_0", 0.2),
        (1, 2, "train", "wake", "digits_0", 0.25),  # chunk 0: names from meta.chunk_tasks, lower-cased
        (1, 3, "train", "wake", "digits_0", 0.75),
        (1, 4, "train", "sleep", "digits_0", 0.5),
        (2, 5, "test", "wake", "task0_0", 0.9),  # the periodic evaluation is skipped
        (2, 6, "test", "wake", "task1_0", 0.3),
        (3, 7, "train", "wake", "digits_1", 0.8),
        (4, 8, "test", "wake", "task0_0", 0.7),
        (4, 9, "test", "wake", "task1_0", 0.8),
    ]
    assert rows[2]["loss"] == 2.0 and math.isnan(rows[4]["loss"])
    assert rows[0]["task_params"] == {"chunk": -1} and rows[4]["task_params"] == {"chunk": 0}
    assert {r["exp_status"] for r in rows} == {"complete"}


def test_records_to_l2rows_names_and_seeds():
    recs = _records()
    recs[0] = Record("meta", seed=0, extra={"eval_tasks": ["x_0", "y_0"]})
    rows = records_to_l2rows(recs, seed=0)
    assert [r["task_name"] for r in rows if r["block_type"] == "test"][:2] == ["x_0", "y_0"]
    assert [r["task_name"] for r in rows if r["block_type"] == "train"] == ["task0_0"] * 3 + ["task1_0"]
    other = records_to_l2rows(recs, seed=1)
    assert [(r["block_type"], r["performance"]) for r in other] == [("train", 1.0)]
    with pytest.raises(DataError, match="seed 7"):
        records_to_l2rows(recs, seed=7)
    with pytest.raises(DataError, match="chunk_tasks"):
        records_to_l2rows([Record("meta", extra={"chunk_tasks": "ab"}), Record("train", chunk=0, n=1, n_correct=1)], 0)


def test_records_to_l2logger_to_metrics(tmp_path):
    rows = records_to_l2rows(_records(), seed=0)
    run = write_l2logger(rows, tmp_path, "run", metric_columns=["loss", "performance"],
                         scenario_info={"scenario_type": "custom"})
    back = read_l2logger(run)
    assert [(r["block_num"], r["task_name"], r["performance"]) for r in back] == [
        (r["block_num"], r["task_name"], r["performance"]) for r in rows]
    m = l2m_metrics(back, **RAW)
    # task1_0 is evaluated around the learning block of digits_0: forward transfer 0.2 -> 0.3;
    # the eval tasks differ from the trained tasks here, so only evaluation-side values exist
    assert m["avg_eval_perf"] == pytest.approx(((0.1 + 0.9 + 0.7) / 3 + (0.2 + 0.3 + 0.8) / 3) / 2)
    assert m["task_metrics"]["digits_0"]["forward_transfer_ratio"] == {
        "task0_0": [pytest.approx(9.0)], "task1_0": [pytest.approx(1.5)]}
