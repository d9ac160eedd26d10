"""Run the official ``l2metrics`` 3.1.0 package in a throwaway virtual environment.

``l2metrics`` needs NumPy < 2 (it uses ``np.NaN``) while our environment has NumPy 2, so it lives in
its own venv, cached at ``<repo>/.cache/l2metrics-venv`` (``.cache/`` is git-ignored) and reused
across runs. The versions below are known to work together.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / ".cache"
VENV_DIR = CACHE_DIR / "l2metrics-venv"
PINS = (
    "l2metrics==3.1.0",
    "numpy==1.26.4",
    "pandas==2.1.4",
    "scipy==1.13.1",
    "matplotlib==3.8.4",
    "pyarrow==14.0.2",
)
STAMP = VENV_DIR / "lifelong-pins.txt"


class ReferenceUnavailable(RuntimeError):
    """The l2metrics venv cannot be built (typically: no access to PyPI)."""


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _base_python() -> str:
    found = shutil.which("python3.11")
    if found:
        return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise ReferenceUnavailable("python3.11 not found; the pinned l2metrics stack needs Python 3.11")


def _ready() -> bool:
    python = VENV_DIR / "bin" / "python"
    return python.exists() and STAMP.is_file() and STAMP.read_text() == "\n".join(PINS)


def ensure_venv(timeout: float = 1200) -> Path:
    """Return the python of the cached l2metrics venv, building it first if needed.

    Raises
    ------
    ReferenceUnavailable
        If the venv cannot be created or the pinned packages cannot be installed.
    """
    python = VENV_DIR / "bin" / "python"
    if _ready():
        return python
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "l2metrics-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it
        if _ready():
            return python
        if VENV_DIR.exists():
            shutil.rmtree(VENV_DIR)
        env = _clean_env()
        made = subprocess.run([_base_python(), "-m", "venv", str(VENV_DIR)], capture_output=True, text=True, env=env)
        if made.returncode != 0:
            shutil.rmtree(VENV_DIR, ignore_errors=True)
            raise ReferenceUnavailable(f"python3.11 -m venv failed:\n{_tail(made.stderr)}")
        try:
            pip = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
                capture_output=True, text=True, env=env, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(VENV_DIR, ignore_errors=True)
            raise ReferenceUnavailable(f"pip install of {' '.join(PINS)} timed out after {timeout:.0f} s") from None
        if pip.returncode != 0:
            shutil.rmtree(VENV_DIR, ignore_errors=True)
            raise ReferenceUnavailable(
                f"pip install of {' '.join(PINS)} failed (no access to PyPI?):\n{_tail(pip.stderr + pip.stdout)}"
            )
        STAMP.write_text("\n".join(PINS))
    return python


def _clean_env(l2data: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["MPLBACKEND"] = "Agg"
    if l2data is not None:
        env["L2DATA"] = str(l2data)
    return env


def start(python: Path, args: Sequence[str], *, l2data: Path, cwd: Path) -> subprocess.Popen:
    """Start ``python <args>`` in the l2metrics venv with ``L2DATA`` set."""
    return subprocess.Popen(
        [str(python), *args], cwd=cwd, env=_clean_env(l2data),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(proc: subprocess.Popen, what: str, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{what} failed with status {proc.returncode}:\n{_tail(out, 40)}")
    return out


def store_ste_args(ste_parent: Path) -> list[str]:
    """l2metrics arguments that store every STE log below ``ste_parent`` into ``$L2DATA/taskinfo``
    (append mode, so several runs of one task are all kept)."""
    return ["-m", "l2metrics", "-R", "-l", str(ste_parent), "-s", "a", "--no-plot"]


def metrics_args(log_dir: Path, out_dir: Path, *extra: str) -> list[str]:
    """``python -m l2metrics -l LOG_DIR -p performance --no-plot -O OUT_DIR`` plus all maintenance
    and transfer variants (``-m both -t both``; the defaults would give only mrlep and ratio)."""
    return ["-m", "l2metrics", "-l", str(log_dir), "-p", "performance", "--no-plot", "-O", str(out_dir),
            "-m", "both", "-t", "both", *extra]


def read_metrics(log_dir: Path, out_dir: Path, output: str) -> dict:
    """Read ``<run>_metrics.json``; l2metrics exits 0 even when it fails, so a missing file is an error."""
    path = out_dir / f"{log_dir.name}_metrics.json"
    if not path.is_file():
        raise AssertionError(f"l2metrics wrote no {path.name}; its output:\n{_tail(output, 40)}")
    return json.loads(path.read_text())
