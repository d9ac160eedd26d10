"""Mixed precision (``[train] precision``): bf16 autocast runs on the CPU and stays within noise of
fp32; fp16 needs CUDA (its gradient scaler); methods with an update rule of their own refuse it."""

from __future__ import annotations

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.experiments.config import from_dict
from lifelong.experiments.runner import build_run, iter_seed
from lifelong.evaluate import classic_metrics

BASE = {"dataset": {"name": "blobs", "n_per_class": 40, "n_test_per_class": 20},
        "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [32]},
        "train": {"epochs": 2, "batch_size": 16, "device": "cpu"}, "learner": {"name": "er", "mem_size": 40}}


def _run(precision: str, learner: dict | None = None):
    cfg = from_dict({**BASE, "train": {**BASE["train"], "precision": precision}, "learner": learner or BASE["learner"]})
    run = build_run(cfg, seed=0)
    records = list(iter_seed(run))
    return run, records, classic_metrics(records, 0)


def test_bf16_on_the_cpu_runs_under_autocast_and_stays_within_noise_of_fp32():
    seen: list[torch.dtype] = []
    run, records, bf16 = _run("bf16")
    assert run.learner.precision == "bf16" and run.learner.scaler is None
    hook = run.learner.model.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    logits = run.learner.forward(torch.randn(4, *run.stream.input_shape))
    hook.remove()
    assert seen == [torch.bfloat16] and logits.dtype == torch.float32  # autocast inside, float32 out
    _, fp32_records, fp32 = _run("fp32")
    assert all(r.loss_sum is not None and r.loss_sum == r.loss_sum for r in records if r.kind == "train")
    assert fp32["acc"] > 0.5  # the stream is learnable, so "close" means something
    assert abs(bf16["acc"] - fp32["acc"]) <= 0.1
    loss = lambda rs: sum(r.loss_sum for r in rs if r.kind == "train") / sum(r.n for r in rs if r.kind == "train")  # noqa: E731
    assert loss(records) == pytest.approx(loss(fp32_records), rel=0.1)


def test_fp32_is_the_default_and_adds_no_autocast():
    run = build_run(from_dict(BASE), seed=0)
    assert run.learner.precision == "fp32" and run.learner._amp_dtype is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_fp16_on_the_cpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="precision = 'fp16' needs a CUDA device.*use precision = 'bf16'"):
        _run("fp16")


def test_an_unknown_precision_and_a_method_with_its_own_update_are_refused():
    with pytest.raises(ConfigError, match="precision must be one of 'fp32', 'bf16', 'fp16'"):
        from_dict({**BASE, "train": {"precision": "fp8"}})
    with pytest.raises(ConfigError, match="agem: .*precision = 'bf16' applies to the composable methods"):
        _run("bf16", {"name": "agem", "mem_size": 40})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast with a gradient scaler needs CUDA")
def test_fp16_on_cuda_uses_a_gradient_scaler_and_stays_within_noise_of_fp32():
    cfg = {**BASE, "train": {**BASE["train"], "device": "cuda"}}
    runs = {}
    for p in ("fp32", "fp16"):
        c = from_dict({**cfg, "train": {**cfg["train"], "precision": p}})
        run = build_run(c, seed=0)
        runs[p] = (run, classic_metrics(list(iter_seed(run)), 0))
    assert runs["fp16"][0].learner.scaler is not None
    assert abs(runs["fp16"][1]["acc"] - runs["fp32"][1]["acc"]) <= 0.1


def test_the_precision_flag_sets_the_train_key():
    from lifelong.experiments.config import override

    assert override(from_dict(BASE), precision="bf16").train["precision"] == "bf16"
