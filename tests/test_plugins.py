"""Plugins from outside the package.

The example plugin package (``examples/plugin``: a pyproject with an entry point in the group
``lifelong.plugins`` and a 30-line learner) is installed with pip into a temporary directory, offline,
and put on ``PYTHONPATH``; it then runs through ``lifelong run``, a real Ray sweep (whose workers
find it by its entry point) and ``lifelong serve``, and through its own test suite
(``lifelong.testing.check_learner``). The ``plugins = [...]`` config key, the error messages and
the convenience registration functions are tested in-process, with the registries restored after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lifelong.plugins as plugins
from lifelong.data.datasets import DATASETS
from lifelong.data.scenarios import SCENARIOS
from lifelong.errors import ConfigError
from lifelong.experiments.config import from_dict
from lifelong.learn.methods import LEARNERS
from lifelong.learn.nets import MODELS
from lifelong.serve.config import config_from_dict
from tests.conftest import cli, cli_env

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "examples" / "plugin"
BLOBS = {"name": "blobs", "n_classes": 4, "dim": 8, "n_per_class": 20, "n_test_per_class": 10}


def run_config(learner: dict, **top) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in {"name": "plug", "seeds": [0], "threads": 1, **top}.items()]
    for section, table in (("dataset", BLOBS), ("scenario", {"name": "class_incremental", "n_chunks": 2}),
                           ("model", {"hidden": [16]}), ("train", {"batch_size": 10}), ("learner", learner)):
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# -- the installed example package ------------------------------------------------------------------
@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The example package pip-installed (no deps, no index, no build isolation) into a fresh
    directory; built from a copy so the source tree stays clean."""
    src = tmp_path_factory.mktemp("plugin-src") / "lifelong-example-plugin"
    shutil.copytree(FIXTURE, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = tmp_path_factory.mktemp("plugin-site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    eps = list(site.glob("lifelong_example_plugin-*.dist-info/entry_points.txt"))
    assert eps and "lifelong.plugins" in eps[0].read_text()
    return site


def env_with(*paths: Path) -> dict[str, str]:
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT)])
    return env


def test_the_installed_plugin_is_found_by_its_entry_point_only_when_asked(plugin_site):
    script = textwrap.dedent("""
        import lifelong.plugins as p
        from lifelong.learn.methods import LEARNERS
        assert "weighted_er" not in LEARNERS, "registered at import time"
        assert p.load_plugins() == ["lifelong_example_plugin"]
        assert p.load_plugins() == ["lifelong_example_plugin"]  # idempotent
        print(LEARNERS["weighted_er"].__module__)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=env_with(plugin_site), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "lifelong_example_plugin"


@pytest.mark.slow
def test_the_plugins_own_suite_runs_lifelong_testing(plugin_site, tmp_path):
    tests = tmp_path / "tests"
    shutil.copytree(FIXTURE / "tests", tests)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], cwd=tmp_path,
                          env=env_with(plugin_site), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


@pytest.mark.slow
def test_lifelong_run_with_the_installed_plugin(plugin_site, tmp_path):
    (tmp_path / "plug.toml").write_text(run_config({"name": "weighted_er", "mem_size": 40, "replay_weight": 0.25}))
    proc = subprocess.run(cli("run", "plug.toml"), cwd=tmp_path, env=env_with(plugin_site), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "plug"
    meta = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert meta["kind"] == "meta" and meta["extra"]["learner"] == "weighted_er"
    acc = json.loads((run / "metrics.json").read_text())["summary"]["acc"][0]
    assert 0.3 < acc <= 1.0  # replay keeps some of chunk 0 (naive fine-tuning would sit near 0.5)


@pytest.mark.slow
def test_a_ray_sweep_with_the_installed_plugin(plugin_site, tmp_path):
    pytest.importorskip("ray")
    sweep = run_config({"name": "weighted_er", "mem_size": 40}) + '[axes]\n"learner.replay_weight" = [0.25, 1.0]\n'
    (tmp_path / "sweep.toml").write_text(sweep)
    env = {**env_with(plugin_site), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(cli("sweep", "sweep.toml", "--backend", "ray", "--num-cpus", "2", "--out", "sweeps"),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    statuses = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweeps" / "plug").rglob("status.json"))]
    assert len(statuses) == 2, statuses
    for s in statuses:
        assert s["status"] == "done", s
        assert s.get("node_id") and s["pid"] != os.getpid()  # ran in a Ray worker, which loaded the plugin itself


@pytest.mark.slow
def test_lifelong_serve_with_the_installed_plugin(plugin_site, tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from tests.serve import conftest as serve

    monkeypatch.setattr(serve, "server_env", lambda token=serve.TOKEN: {
        **env_with(plugin_site), "LIFELONG_SERVE_TOKEN": token})
    config = serve.write_config(tmp_path, learner={"name": "weighted_er", "mem_size": 50}, serve={"snapshot_every": 10})
    server = serve.Server(config)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            rows = [[float(i % 4 == j) for j in range(8)] for i in range(16)]
            r = http.post("/feedback", json={"inputs": rows, "labels": [i % 4 for i in range(16)]}, headers=server.auth())
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 60
            while (h := http.get("/health").json())["applied_seq"] < h["logged_seq"]:
                assert time.monotonic() < deadline and h["status"] == "ok", h
                time.sleep(0.05)
            r = http.post("/predict", json={"inputs": rows[:3]})
            assert r.status_code == 200, r.text
            assert len(r.json()["labels"]) == 3 and len(r.json()["probabilities"][0]) == 4
            health = http.get("/health").json()
            assert health["learner"] == "weighted_er" and health["applied_seq"] == 16, health
    finally:
        server.kill()
    assert "Traceback" not in server.output()


# -- the `plugins` config key through the CLI --------------------------------------------------------
KEYED = '''
from lifelong.learn.methods.naive import Naive
from lifelong.plugins import register_learner


@register_learner
class Keyed(Naive):
    name = "keyed_naive"
'''


@pytest.mark.slow
def test_the_plugins_key_loads_a_module_on_pythonpath(tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "keyed_plugin.py").write_text(KEYED)
    (tmp_path / "keyed.toml").write_text(run_config({"name": "keyed_naive"}, plugins=["keyed_plugin"]))
    proc = subprocess.run(cli("run", "keyed.toml"), cwd=tmp_path, env=env_with(mods), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "runs" / "plug" / "log.jsonl").read_text().splitlines()[0])
    assert meta["extra"]["learner"] == "keyed_naive"


def test_a_missing_plugin_module_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad.toml").write_text(run_config({"name": "naive"}, plugins=["no_such_plugin_xyz"]))
    proc = subprocess.run(cli("run", "bad.toml"), cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_plugin_xyz" in lines[0] and "PYTHONPATH" in lines[0], proc.stderr


# -- in-process: errors, idempotence, entry points, helpers ------------------------------------------
@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A clean plugin state (no entry points, nothing loaded) and ``tmp_path`` on sys.path; the
    registries and sys.modules are restored afterwards."""
    saved = [(r, dict(r)) for r in (LEARNERS, DATASETS, SCENARIOS, MODELS)]
    monkeypatch.setattr(plugins, "_loaded", [])
    monkeypatch.setattr(plugins, "_entry_points", [])
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for registry, items in saved:
        registry.clear()
        registry.update(items)
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write_module(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))


def test_the_plugins_key_is_loaded_by_from_dict(isolated):
    write_module(isolated, "keyed_plugin", KEYED)
    cfg = from_dict({"plugins": ["keyed_plugin"], "learner": {"name": "keyed_naive"}})
    assert cfg.plugins == ("keyed_plugin",) and LEARNERS["keyed_naive"].__module__ == "keyed_plugin"
    assert plugins.load_plugins(["keyed_plugin"]) == ["keyed_plugin"]  # idempotent: no clash on a second load


def test_the_plugins_key_of_a_serve_file_is_loaded(isolated):
    write_module(isolated, "keyed_plugin", KEYED)
    cfg = config_from_dict({"plugins": ["keyed_plugin"], "learner": {"name": "keyed_naive"},
                            "model": {"input_shape": [4], "n_classes": 3}})
    assert cfg.learner["name"] == "keyed_naive" and "keyed_naive" in LEARNERS
    with pytest.raises(ConfigError, match="no_such_plugin_xyz"):
        config_from_dict({"plugins": ["no_such_plugin_xyz"], "model": {"input_shape": [4], "n_classes": 3}})


def test_a_name_clash_names_the_plugin_and_the_fix(isolated):
    write_module(isolated, "clashing_plugin", """
        from lifelong.learn.methods import LEARNERS
        from lifelong.learn.methods.naive import Naive

        class Mine(Naive):
            name = "er"

        LEARNERS.register("er", Mine)
    """)
    with pytest.raises(ConfigError) as e:
        plugins.load_plugins(["clashing_plugin"])
    msg = str(e.value)
    assert "clashing_plugin" in msg and "learner 'er' is already registered" in msg and "choose another name" in msg
    assert LEARNERS["er"].__module__ == "lifelong.learn.methods.er"


@pytest.mark.parametrize("body,words", [
    ("import not_installed_dependency_xyz\n", ["failed to import", "not_installed_dependency_xyz", "install what it needs"]),
    ("raise RuntimeError('bad plugin state')\n", ["raised RuntimeError on import", "bad plugin state", "fix the plugin"]),
])
def test_a_plugin_that_fails_to_import_is_named(isolated, body, words):
    write_module(isolated, "failing_plugin", body)
    with pytest.raises(ConfigError) as e:
        plugins.load_plugins(["failing_plugin"])
    for w in ["'failing_plugin'", *words]:
        assert w in str(e.value)


def fake_distribution(directory: Path, entry_points: str) -> None:
    dist = directory / "fake_plugin_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lifelong.plugins]\n" + entry_points)


def test_entry_points_are_discovered_once_and_imported(isolated, monkeypatch):
    fake_distribution(isolated, "keyed = keyed_plugin\n")
    write_module(isolated, "keyed_plugin", KEYED)
    monkeypatch.setattr(plugins, "_entry_points", None)
    assert plugins.load_plugins() == ["keyed_plugin"]
    assert "keyed_naive" in LEARNERS
    (isolated / "fake_plugin_dist-1.0.dist-info" / "entry_points.txt").write_text("[lifelong.plugins]\nx = gone_xyz\n")
    assert plugins.load_plugins() == ["keyed_plugin"]  # discovered once per process: no new lookup


@pytest.mark.parametrize("entry,words", [
    ("missing = not_there_plugin_xyz\n", ["entry point 'missing' of distribution 'fake-plugin-dist'", "cannot be imported"]),
    ("obj = keyed_plugin:setup\n", ["names an object", "use 'keyed_plugin'"]),
])
def test_a_bad_entry_point_names_its_distribution(isolated, monkeypatch, entry, words):
    fake_distribution(isolated, entry)
    monkeypatch.setattr(plugins, "_entry_points", None)
    with pytest.raises(ConfigError) as e:
        plugins.load_plugins()
    for w in words:
        assert w in str(e.value)


def test_the_registration_helpers(isolated):
    def load_tiny(*, data_dir=None, download=False, seed=0):
        """Tiny data."""

    def build_tiny(ds, *, seed):
        """Tiny stream."""

    def tiny_net(input_shape, n_classes, *, seed):
        return None

    info = plugins.register_dataset("tiny_plugin_data", load_tiny)
    assert DATASETS["tiny_plugin_data"] is info and info.description == "Tiny data." and info.loader is load_tiny
    assert plugins.register_dataset("tiny_plugin_data", load_tiny) is info  # re-importing the module: a no-op
    with pytest.raises(ConfigError, match="already registered"):
        plugins.register_dataset("tiny_plugin_data", build_tiny)
    assert plugins.register_scenario("tiny_plugin_stream", build_tiny).build is build_tiny
    assert plugins.register_model("tiny_plugin_net", tiny_net) is tiny_net and MODELS["tiny_plugin_net"] is tiny_net
    with pytest.raises(ConfigError, match="needs a `name`"):
        plugins.register_learner(type("Nameless", (), {}))
