"""Devices: :func:`resolve_device` turns ``[train] device`` / ``--device`` into a ``torch.device``.

``cpu``, ``cuda`` (the current CUDA device), ``cuda:N``, ``mps`` and ``auto`` (the default: the
first of CUDA and MPS that is available, else the CPU). An unavailable or unknown device is a
:class:`~lifelong.errors.ConfigError` that says what is available.

Where things live: the network, every memory buffer (inputs, labels, task ids, stored logits), the
task masks and the seen-class flags, Fisher and importance tensors, and the weight averages are on
the run's device. The datasets and streams stay on the CPU; the loop moves each batch (and each
evaluation batch) once. Every ``torch.Generator`` stays on the CPU, so that the same seed draws the
same replay indices, shuffles and augmentations on every device; the drawn indices (a few hundred
bytes a step) are the only host-to-device copies besides the batch itself.

Examples
--------
>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device("tpu")
Traceback (most recent call last):
...
lifelong.errors.ConfigError: unknown device 'tpu'; use cpu, cuda, cuda:N, mps or auto
"""

from __future__ import annotations

import re

import torch

from lifelong.errors import ConfigError

__all__ = ["DEVICE_CHOICES", "available_devices", "check_device_spec", "resolve_device"]

DEVICE_CHOICES = "cpu, cuda, cuda:N, mps or auto"
_SPEC = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The devices this machine offers, CPU last (``["cuda:0", "cuda:1", "cpu"]``)."""
    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if _mps_available():
        out.append("mps")
    return [*out, "cpu"]


def check_device_spec(spec: object, *, where: str = "[train] device") -> str:
    """``spec`` if it is a well-formed device name (whether or not this machine has it)."""
    if not isinstance(spec, str) or not _SPEC.match(spec.strip().lower()):
        raise ConfigError(f"unknown device {spec!r}; use {DEVICE_CHOICES}" if where == "" else
                          f"{where}: unknown device {spec!r}; use {DEVICE_CHOICES}")
    return spec.strip().lower()


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``spec``; ``None`` and ``"auto"`` pick CUDA, then MPS, then CPU.

    Raises :class:`ConfigError` when the device is unknown or not available here.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = check_device_spec("auto" if spec is None else spec, where="")
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    have = ", ".join(available_devices())
    if spec == "mps":
        if not _mps_available():
            raise ConfigError(f"device 'mps' is not available here (torch {torch.__version__} finds no Apple GPU); "
                              f"available: {have}. Use --device auto or cpu")
        return torch.device("mps")
    if not torch.cuda.is_available():
        why = "built without CUDA" if torch.version.cuda is None else "finds no CUDA GPU"
        raise ConfigError(f"device {spec!r} is not available here (torch {torch.__version__} {why}); available: "
                          f"{have}. Use --device auto or cpu")
    index = int(spec.split(":")[1]) if ":" in spec else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s); available: {have}")
    return torch.device("cuda", index)
