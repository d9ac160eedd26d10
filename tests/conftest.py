"""Shared fixtures: a tiny synthetic stream that runs end to end in well under a second."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from lifelong.data import Dataset
from lifelong.data.scenarios import class_incremental, domain_incremental, task_incremental

ROOT = Path(__file__).resolve().parents[1]
# Small tensors, many processes (servers, Ray workers, CLI subprocesses): one thread each avoids
# OpenMP spin-waiting when the suite's processes outnumber the cores.
torch.set_num_threads(1)
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def tiny_dataset(n_classes: int = 6, dim: int = 12, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Dataset:
    """Gaussian classes with well-separated means: learnable in a few SGD steps."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, dim, generator=g) * 3

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n_classes).repeat_interleave(n)
        return means[y] + torch.randn(len(y), dim, generator=g), y

    xtr, ytr = split(n_train)
    xte, yte = split(n_test)
    return Dataset("tiny", xtr, ytr, xte, yte)


@pytest.fixture(scope="session")
def tiny() -> Dataset:
    return tiny_dataset()


@pytest.fixture(params=["class", "task", "domain"])
def tiny_stream(request, tiny):
    if request.param == "class":
        return class_incremental(tiny, n_chunks=3)
    if request.param == "task":
        return task_incremental(tiny, n_chunks=3)
    return domain_incremental(tiny, n_chunks=3)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("LIFELONG_DATA", None)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lifelong.cli", *args]
