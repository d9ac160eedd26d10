"""Devices: ``--device`` / ``[train] device`` resolution and errors, where the learner's state is
placed, and the loop's one move per batch. Everything here runs on the CPU; the placement checks
use the ``meta`` device, which has no data but keeps every tensor's device."""

from __future__ import annotations

import subprocess

import pytest
import torch

import lifelong.learn.loop as loop_module
from lifelong.data import Batch
from lifelong.data.scenarios import class_incremental
from lifelong.device import resolve_device
from lifelong.errors import ConfigError
from lifelong.experiments.config import from_dict, override
from lifelong.experiments.runner import build_learner, build_run, iter_seed
from lifelong.learn.loop import LoopConfig, iter_run, to_device
from lifelong.learn.memory import ClassBalancedMemory, ReservoirMemory
from lifelong.learn.methods import builtin_learners, make_learner
from lifelong.learn.nets import mlp

from conftest import cli, cli_env, tiny_dataset

META = torch.device("meta")


def test_auto_is_the_cpu_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == resolve_device("CPU") == torch.device("cpu")


def test_auto_picks_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="device 'cuda:2' does not exist: this machine has 2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device("mps") == torch.device("mps")


def test_unavailable_and_unknown_devices_are_config_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=rf"device '{spec}' is not available here .*available: cpu. Use --device auto or cpu"):
            resolve_device(spec)
    with pytest.raises(ConfigError, match="device 'mps' is not available here"):
        resolve_device("mps")
    for bad in ("gpu", "cuda:x", "tpu:0", 3):
        with pytest.raises(ConfigError, match="unknown device"):
            resolve_device(bad)


def test_device_in_the_config_and_the_flag():
    assert from_dict({"train": {"device": "cuda:1"}}).train["device"] == "cuda:1"  # checked for form, not presence
    with pytest.raises(ConfigError, match=r"\[train\] device: unknown device 'gpu'; use cpu, cuda, cuda:N, mps or auto"):
        from_dict({"train": {"device": "gpu"}})
    assert override(from_dict({}), device="cpu").train["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_cuda_without_cuda_exits_2_with_the_fix(tmp_path):
    (tmp_path / "c.toml").write_text('[dataset]\nname = "blobs"\n[learner]\nname = "er"\n')
    proc = subprocess.run(cli("run", "c.toml", "--device", "cuda"), cwd=tmp_path, env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert "device 'cuda' is not available here" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before a run directory is made


def test_a_run_builds_on_the_resolved_device_and_logs_it():
    cfg = from_dict({"dataset": {"name": "blobs", "n_per_class": 10, "n_test_per_class": 4},
                     "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [8]},
                     "train": {"device": "auto"}, "learner": {"name": "er", "mem_size": 20}})
    run = build_run(cfg, seed=0)
    assert run.learner.device == resolve_device("auto")
    assert run.learner.memory.device == run.learner.device
    records = list(iter_seed(run))
    assert records[0].extra["device"] == str(run.learner.device)
    again = list(iter_seed(build_run(cfg, seed=0)))
    assert [r.to_json() for r in records] == [r.to_json() for r in again]  # same seed, same device: same log


def nested_tensors(state, path=""):
    if isinstance(state, torch.Tensor):
        yield path, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from nested_tensors(v, f"{path}/{k}")
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from nested_tensors(v, f"{path}/{i}")


#: State that is host bookkeeping by design: read as Python numbers every step (or kept as
#: Python containers and written as tensors only in the state dict).
HOST_BOOKKEEPING = {
    "drift_experts": ("/detector_losses", "/drift_steps"),  # the river detector's inputs, Python lists
    "gdumb": ("/extra/memory/class_count", "/extra/memory/class_seen"),  # Python dicts of counts
    "powerlaw": ("/extra/last_met", "/extra/replay_counts"),  # the replay schedule's clocks, drawn on the host
    "error_memory": ("/store/steps",),  # moved to the keys' device with the first stored row
    "cls": ("/extra/errors/steps",),  # its error memory's store, as error_memory's
    "gss": ("/extra/memory/scores",),  # GSS-greedy's admission scores, read one by one on the host
}


@pytest.mark.parametrize("name", sorted(builtin_learners()))
def test_every_learner_keeps_its_state_on_the_models_device(name):
    """Built around a model on the ``meta`` device, every tensor of a learner's state (model,
    memories, masks, flags, penalties, weight averages) is on that device, except generator states,
    which stay on the CPU by design."""
    net = mlp((12,), 6, hidden=(8,), seed=0).to(META)
    learner = make_learner(name, net, seed=0, task_classes=[(0, 1, 2), (3, 4, 5)])
    assert learner.device == META
    misplaced = [p for p, t in nested_tensors(learner.state_dict())
                 if t.device != META and "generator" not in p.split("/")[-1] and p.split("/")[-1] != "state"
                 and p not in HOST_BOOKKEEPING.get(name, ())]
    assert not misplaced, f"{name}: on the CPU: {misplaced}"
    assert learner.allowed_classes(None, 3).device == META


def test_memories_store_on_their_device_and_draw_on_the_host():
    assert ClassBalancedMemory(4, seed=0, device=META).y.device == META
    mem = ReservoirMemory(4, seed=0, device=META)
    g = torch.Generator().manual_seed(0)
    mem.add(Batch(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 2, 2]), torch.zeros(6, dtype=torch.int64)),
            logits=torch.zeros(6, 5))
    assert {mem.x.device, mem.y.device, mem.task.device, mem.fields["logits"].device} == {META}
    b = mem.sample(2, g)
    assert b.x.device == META and b.extras["logits"].shape == (2, 5)
    assert mem.generator.device.type == "cpu" and len(mem) == 4


def test_to_device_moves_every_field_once_and_is_a_no_op_in_place():
    b = Batch(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64),
              {"logits": torch.zeros(2, 4)})
    moved = to_device(b, META)
    assert {moved.x.device, moved.y.device, moved.task.device, moved.extras["logits"].device} == {META}
    assert to_device(b, torch.device("cpu")) is b and to_device(b, None) is b


def test_the_loop_moves_each_batch_to_the_learners_device_once(monkeypatch):
    calls = []
    real = loop_module.to_device

    def spy(batch, device):
        calls.append(device)
        return real(batch, device)

    monkeypatch.setattr(loop_module, "to_device", spy)
    stream = class_incremental(tiny_dataset(), n_chunks=2)
    learner = make_learner("er", mlp((12,), 6, hidden=(8,), seed=0), mem_size=10, seed=0)
    records = list(iter_run(stream, learner, LoopConfig(batch_size=16), seed=0))
    n_train = sum(r.kind == "train" for r in records)
    assert calls == [torch.device("cpu")] * n_train


def test_the_network_starts_from_the_same_weights_whatever_the_device():
    cpu = build_learner({"name": "naive"}, {"kind": "mlp", "hidden": [8]}, input_shape=(12,), n_classes=6, seed=3,
                        device="cpu")
    meta_model = mlp((12,), 6, hidden=(8,), seed=3)
    assert all(torch.equal(p, q) for p, q in zip(cpu.model.parameters(), meta_model.parameters()))
