"""Helpers for the serve tests: configs, a real uvicorn server in a subprocess, exact state comparison."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory: Path, *, learner: dict | None = None, serve: dict | None = None, hidden=(16,),
                 input_shape=(8,), n_classes: int = 4, token: str | None = None) -> Path:
    """A small serve.toml in ``directory`` (data under ``directory/data``)."""
    learner = learner or {"name": "er", "mem_size": 100}
    serve = {"data_dir": "data", "batch_size": 16, "snapshot_every": 200, "threads": 1, **(serve or {})}
    if token:
        serve["token"] = token

    def toml_value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(toml_value(i) for i in v) + "]"
        return repr(v)

    lines = ["seed = 0", "[learner]"] + [f"{k} = {toml_value(v)}" for k, v in learner.items()]
    lines += ["[model]", 'kind = "mlp"', f"hidden = {toml_value(list(hidden))}",
              f"input_shape = {toml_value(list(input_shape))}", f"n_classes = {n_classes}", "[serve]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in serve.items()]
    path = directory / "serve.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def server_env(token: str | None = TOKEN) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("LIFELONG_SERVE_TOKEN", None)
    if token is not None:
        env["LIFELONG_SERVE_TOKEN"] = token
    return env


class Server:
    """``python -m lifelong.serve --config CONFIG --port PORT`` as a subprocess on 127.0.0.1."""

    def __init__(self, config: Path, port: int | None = None, token: str | None = TOKEN, **popen: Any) -> None:
        self.config, self.port, self.token = config, port or free_port(), token
        self.popen = popen  # extra subprocess.Popen arguments (preexec_fn, env)
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        log = self.config.parent / f"server-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lifelong.serve", "--config", str(self.config), "--port", str(self.port)],
                stdout=fh, stderr=subprocess.STDOUT, cwd=self.config.parent,
                **{"env": server_env(self.token), **self.popen},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up in {timeout}s:\n{log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def assert_states_equal(a: Any, b: Any, path: str = "state") -> None:
    """Nested state dicts are equal: same keys, and tensors equal element for element (exactly)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            assert_states_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_states_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


class one_thread:
    """Run torch single-threaded (as the server does) and restore the setting afterwards."""

    def __enter__(self) -> None:
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.n)
