"""CIFAR-100 from its python pickles, the CIFAR normalisation, the Split CIFAR-10/100 scenarios
and the CIFAR recipe's protocol, on small files the tests write in the official layouts."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.data.datasets import dataset_available, load_dataset
from lifelong.data.datasets.cifar10 import MEAN
from lifelong.data.scenarios import build_stream
from lifelong.errors import ConfigError, DataError
from lifelong.experiments.config import from_dict
from lifelong.experiments.runner import build_run

from test_datasets import write_cifar_dir


def write_cifar100_dir(directory: Path, n_train: int = 200, n_test: int = 100, protocol: int = 2) -> dict:
    """Write ``train``, ``test`` and ``meta`` in the layout of cifar-100-python (bytes keys)."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    written = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [j % 100 for j in range(n)]
        batch = {b"filenames": [f"{j}.png".encode() for j in range(n)], b"batch_label": name.encode(),
                 b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine], b"data": data}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (data, fine)
    meta = {b"fine_label_names": [f"fine{c}".encode() for c in range(100)],
            b"coarse_label_names": [f"coarse{c}".encode() for c in range(20)]}
    (directory / "meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar100_from_python_pickles(tmp_path, protocol):
    written = write_cifar100_dir(tmp_path / "cifar-100-python", protocol=protocol)
    assert dataset_available("cifar100", tmp_path)
    ds = load_dataset("cifar100", data_dir=tmp_path)  # the parent directory is searched too
    assert ds.input_shape == (3, 32, 32) and ds.n_classes == 100 and len(ds.y_train) == 200 and len(ds.y_test) == 100
    data, fine = written["train"]
    # channel-major rows: the first 1024 values are the red plane, row-major
    assert torch.equal(ds.x_train[3, 0].flatten(), torch.tensor(data[3, :1024] / 255.0, dtype=torch.float32))
    assert ds.y_train.tolist() == fine and ds.class_names[7] == "fine7"
    coarse = load_dataset("cifar100", data_dir=tmp_path, labels="coarse", flatten=True)
    assert coarse.n_classes == 20 and coarse.input_shape == (3072,) and coarse.class_names[0] == "coarse0"
    assert coarse.y_train.tolist() == [f // 5 for f in fine]


def test_cifar100_errors(tmp_path):
    assert not dataset_available("cifar100", tmp_path)
    with pytest.raises(DataError, match="(?s)cifar100: no directory holds train and test.*extract cifar-100-python.tar.gz"):
        load_dataset("cifar100", data_dir=tmp_path)
    d = tmp_path / "cifar-100-python"
    write_cifar100_dir(d)
    with pytest.raises(ConfigError, match="labels must be 'fine' or 'coarse'"):
        load_dataset("cifar100", data_dir=d, labels="superclass")
    (d / "train").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"fine_labels": [0, 1]}))
    with pytest.raises(DataError, match=r"'data' must be a uint8 array of shape \(N, 3072\)"):
        load_dataset("cifar100", data_dir=d)
    (d / "train").write_bytes(pickle.dumps(print))
    with pytest.raises(DataError, match="refusing to unpickle builtins.print"):
        load_dataset("cifar100", data_dir=d)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_normalize_standardises_each_channel(tmp_path, name):
    if name == "cifar10":
        write_cifar_dir(tmp_path / "cifar-10-batches-py")
    else:
        write_cifar100_dir(tmp_path / "cifar-100-python")
    raw = load_dataset(name, data_dir=tmp_path)
    norm = load_dataset(name, data_dir=tmp_path, normalize=True)
    from lifelong.data.datasets import cifar10, cifar100

    mean, std = (cifar10.MEAN, cifar10.STD) if name == "cifar10" else (cifar100.MEAN, cifar100.STD)
    want = (raw.x_test - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(norm.x_test, want, atol=1e-6)
    assert MEAN == (0.4914, 0.4822, 0.4465)  # the DER paper's Seq-CIFAR-10 normalisation


def test_split_cifar10_is_five_chunks_of_two_classes_in_the_natural_order(tmp_path):
    write_cifar_dir(tmp_path / "cifar-10-batches-py", per_batch=20)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    s = build_stream("split_cifar10", ds, seed=0)
    assert s.name == "split_cifar10" and [c.classes for c in s.chunks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert s.task_classes is None and s.info["setting"] == "class-IL"
    t = build_stream("split_cifar10", ds, seed=0, task_il=True)
    assert t.task_classes == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)] and t.chunks[2].task is not None
    with pytest.raises(ConfigError, match=r"split_cifar10 splits a 10-class dataset \(cifar10\), but 'blobs' has 4"):
        build_stream("split_cifar10", load_dataset("blobs", n_classes=4, n_per_class=5, n_test_per_class=2), seed=0)


def test_split_cifar100_ten_by_ten_and_twenty_by_five(tmp_path):
    write_cifar100_dir(tmp_path / "cifar-100-python")
    ds = load_dataset("cifar100", data_dir=tmp_path)
    s = build_stream("split_cifar100", ds, seed=0)
    assert len(s.chunks) == 10 and s.chunks[0].classes == tuple(range(10)) and s.chunks[9].classes == tuple(range(90, 100))
    assert len(build_stream("split_cifar100", ds, seed=0, n_chunks=20).chunks[0].classes) == 5
    with pytest.raises(ConfigError, match="n_chunks must be 10 .10x10 classes. or 20 .20x5."):
        build_stream("split_cifar100", ds, seed=0, n_chunks=5)


def test_the_cifar_recipe_augments_where_the_learner_and_inputs_take_it(tmp_path):
    write_cifar_dir(tmp_path / "cifar-10-batches-py", per_batch=10)

    def train(learner: str, model=None, **dataset) -> dict:
        cfg = from_dict({"dataset": {"name": "cifar10", "data_dir": str(tmp_path), **dataset},
                         "scenario": {"name": "split_cifar10"},
                         "model": model or {"kind": "cnn", "channels": [2], "hidden": 4},
                         "learner": {"name": learner}})
        return build_run(cfg, seed=0).train

    assert from_dict({"scenario": {"name": "split_cifar100"}}).scenario == {"name": "split_cifar100"}
    t = train("derpp")
    assert (t["epochs"], t["batch_size"], t["lr"], t["augment"]) == (50, 32, 0.03, "crop_flip")  # the DER protocol
    assert "augment" not in train("agem")  # its own update rule: left out, not an error
    assert "augment" not in train("er", model={"kind": "mlp", "hidden": [4]}, flatten=True)


# -- --download: the official archive, verified by SHA-256, from a local HTTP server -------------

import functools  # noqa: E402
import hashlib  # noqa: E402
import http.server  # noqa: E402
import io  # noqa: E402
import tarfile  # noqa: E402
import threading  # noqa: E402


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def make_archive(path: Path, source: Path, top: str) -> None:
    """A .tar.gz of ``source`` under ``top/``, plus members that must never be extracted."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=top)
        evil = tarfile.TarInfo("../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
        link = tarfile.TarInfo(f"{top}/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)


@pytest.fixture
def archive_server(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_download_verifies_the_archive_and_extracts_only_its_files(tmp_path, archive_server, monkeypatch, name):
    from lifelong.data.datasets import cifar10, cifar100

    module, top = (cifar10, "cifar-10-batches-py") if name == "cifar10" else (cifar100, "cifar-100-python")
    base, served = archive_server
    source = tmp_path / "source" / top
    if name == "cifar10":
        write_cifar_dir(source, per_batch=10)
    else:
        write_cifar100_dir(source)
    archive = served / f"{top}.tar.gz"
    make_archive(archive, source, top)
    url = base + archive.name
    target = tmp_path / "data" / "target"
    with pytest.raises(DataError, match=rf"{name}: {url} has SHA-256 .* was expected.*Nothing was kept"):
        load_dataset(name, data_dir=target, download=True, url=url)  # the official digest does not match
    assert not target.exists() or not any(target.rglob("*"))
    monkeypatch.setattr(module, "SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    ds = load_dataset(name, data_dir=target, download=True, url=url)
    assert ds.name == name and (target / top).is_dir()
    assert not (target / "link").exists() and not (target / top / "link").exists()
    assert not (tmp_path / "data" / "evil.txt").exists() and not list(target.glob("*.tar.gz"))  # archive removed
    again = load_dataset(name, data_dir=target)  # the extracted copy is found without a download
    assert torch.equal(again.x_test, ds.x_test)
    with pytest.raises(DataError, match="could not download"):
        load_dataset(name, data_dir=tmp_path / "other", download=True, url=base + "missing.tar.gz")
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        load_dataset(name, data_dir=tmp_path / "other", download=True, url="file:///etc/passwd")
    assert module.URL.startswith("https://www.cs.toronto.edu/~kriz/") and len(module.SHA256) == 64
