"""Optional ``torch.compile`` (``[train] compile``, ``--compile``): off by default, the step's forward
pass compiled when on, results equal to eager's, and a clear error where it cannot run."""

from __future__ import annotations

import shutil

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.evaluate import classic_metrics
from lifelong.experiments.config import from_dict, override
from lifelong.experiments.runner import build_run, iter_seed

BASE = {"dataset": {"name": "blobs", "n_per_class": 30, "n_test_per_class": 10},
        "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [16]},
        "train": {"epochs": 1, "batch_size": 20, "device": "cpu"}, "learner": {"name": "er", "mem_size": 40}}

try:
    import torch._dynamo

    DYNAMO = torch._dynamo.is_dynamo_supported()
except Exception:  # pragma: no cover - an unusual torch build
    DYNAMO = False
needs_dynamo = pytest.mark.skipif(not DYNAMO, reason="TorchDynamo (torch.compile) is not supported on this Python")


def _records(compile_: bool, backend: str | None = None):
    run = build_run(from_dict({**BASE, "train": {**BASE["train"], "compile": compile_ and backend is None}}), seed=0)
    if backend is not None:
        run.learner.set_compile(True, backend=backend)
    return run, [r for r in iter_seed(run)]


def test_compile_is_off_by_default_and_the_flag_sets_the_train_key():
    run = build_run(from_dict(BASE), seed=0)
    assert run.learner.compiled is False and run.learner._forward_model is run.learner.model
    assert override(from_dict(BASE), compile=True).train["compile"] is True
    with pytest.raises(ConfigError, match="compile must be true or false"):
        from_dict({**BASE, "train": {"compile": "yes"}})
    with pytest.raises(ConfigError, match="agem: .*compile = true applies to the composable methods"):
        build_run(from_dict({**BASE, "train": {**BASE["train"], "compile": True},
                             "learner": {"name": "agem", "mem_size": 40}}), seed=0)


@needs_dynamo
def test_a_compiled_step_gives_the_eager_log():
    """TorchDynamo traces the step's forward pass into graphs that AOTAutograd runs
    (``aot_eager``: the compile stack without inductor's code generation, so it is fast and exact);
    the log equals eager's record for record."""
    from torch._dynamo.utils import counters

    counters.clear()
    run, compiled = _records(True, backend="aot_eager")
    assert run.learner.compiled and run.learner._forward_model is not run.learner.model
    assert counters["stats"]["unique_graphs"] >= 1  # the forward really went through torch.compile
    _, eager = _records(False)
    assert [r.to_dict() for r in compiled] == [r.to_dict() for r in eager]
    torch._dynamo.reset()


@needs_dynamo
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="inductor on the CPU needs a C++ compiler (g++), and none is on the PATH")
def test_compile_true_with_inductor_matches_eager_within_1e_4():
    """``[train] compile = true``: inductor compiles the forward into C++ kernels; its fused
    arithmetic may differ from eager in the last bits, so the final ACC is compared to 1e-4."""
    run, compiled = _records(True)
    assert run.learner.compiled
    _, eager = _records(False)
    acc = classic_metrics(compiled, 0)["acc"], classic_metrics(eager, 0)["acc"]
    assert abs(acc[0] - acc[1]) <= 1e-4
    torch._dynamo.reset()


def test_a_backend_that_cannot_run_is_a_clear_error(monkeypatch):
    run = build_run(from_dict(BASE), seed=0)
    if DYNAMO:
        with pytest.raises(ConfigError, match="unknown torch.compile backend 'nope'"):
            run.learner.set_compile(True, backend="nope")
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(ConfigError, match=r"(needs a C\+\+ compiler for the CPU.*\$CXX|not supported on this Python)"):
        build_run(from_dict({**BASE, "train": {**BASE["train"], "compile": True}}), seed=0)
