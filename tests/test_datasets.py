"""Tests of lifelong.data.datasets: every source, the IDX reader, the download path and the registry."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.data.datasets import DATASETS, dataset_available, fashion_mnist, load_dataset
from lifelong.data.datasets import mnist1d as mnist1d_source
from lifelong.data.datasets.idx import IDX_FILES, read_idx, write_idx
from lifelong.errors import ConfigError, DataError

SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Keep every test away from the user's LIFELONG_DATA, cache and the real system copy."""
    monkeypatch.delenv("LIFELONG_DATA", raising=False)
    monkeypatch.delenv("LIFELONG_FASHION_MNIST_URL", raising=False)
    monkeypatch.delenv("LIFELONG_NO_SYSTEM_DATA", raising=False)  # these tests set SYSTEM_DIR themselves
    monkeypatch.setenv("LIFELONG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-copy")


def write_mnist_dir(directory: Path, n_train: int = 6, n_test: int = 4, *, gz: bool = True, fill: int = 0) -> dict:
    """Write the four MNIST-style files with random pixels; return the arrays written."""
    rng = np.random.default_rng(n_train + fill)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    arrays["train_images"][:, 0, 0] = fill  # a marker telling directories apart
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


# --------------------------------------------------------------------------------------------
# Registry


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'") as info:
        load_dataset("imagenet")
    for name in ("digits", "fashion_mnist", "blobs", "file"):
        assert name in str(info.value)
    with pytest.raises(ConfigError):
        dataset_available("imagenet")


def test_unknown_option_and_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="unknown option.*bogus.*test_fraction"):
        load_dataset("digits", bogus=1)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.5)
    with pytest.raises(ConfigError, match="seed"):
        load_dataset("blobs", seed=-1)
    with pytest.raises(ConfigError, match="flatten"):
        load_dataset("fashion_mnist", flatten="no")


def test_registry_entries_are_described():
    assert set(DATASETS) == {"digits", "fashion_mnist", "mnist", "kmnist", "cifar10", "cifar100", "tiny_imagenet", "core50",
                             "mnist1d", "file",
                             "blobs"}
    for name, info in DATASETS.items():
        assert info.name == name
        assert info.description and "\n" not in info.description
    assert load_dataset("Blobs", n_per_class=2, n_test_per_class=1).name == "blobs"  # case-insensitive
    assert dataset_available("fashion-mnist") is False  # hyphen alias; no copy in the isolated env


def test_import_does_no_work(tmp_path):
    code = (
        "import sys, lifelong.data.datasets\n"
        "print(sorted(m for m in ('sklearn', 'pandas', 'mnist1d') if m in sys.modules))\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "LIFELONG_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []  # nothing written to cwd, HOME or the cache


# --------------------------------------------------------------------------------------------
# digits and blobs


def test_digits_shapes_range_and_determinism():
    ds = load_dataset("digits", seed=3)
    assert ds.input_shape == (64,) and ds.n_classes == 10
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert abs(len(ds.y_test) / 1797 - 0.25) < 0.01
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    assert set(ds.y_test.tolist()) == set(range(10))  # stratified: every class in test
    again = load_dataset("digits", seed=3)
    assert torch.equal(ds.x_test, again.x_test) and torch.equal(ds.y_test, again.y_test)
    other = load_dataset("digits", seed=4)
    assert not torch.equal(ds.x_test, other.x_test)
    assert len(load_dataset("digits", test_fraction=0.5).y_test) in range(890, 910)


def test_blobs_deterministic_and_linearly_learnable():
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset("blobs", seed=0)
    assert ds.input_shape == (20,) and ds.n_classes == 10
    assert (len(ds.y_train), len(ds.y_test)) == (1000, 500)
    assert torch.bincount(ds.y_train).tolist() == [100] * 10
    assert torch.equal(ds.x_train, load_dataset("blobs", seed=0).x_train)
    assert not torch.equal(ds.x_train, load_dataset("blobs", seed=1).x_train)
    model = LogisticRegression(max_iter=2000).fit(ds.x_train.numpy(), ds.y_train.numpy())
    accuracy = model.score(ds.x_test.numpy(), ds.y_test.numpy())
    assert 0.8 < accuracy < 0.97  # learnable, not trivial
    small = load_dataset("blobs", n_classes=3, dim=5, n_per_class=7, n_test_per_class=2)
    assert small.x_train.shape == (21, 5) and small.x_test.shape == (6, 5)


# --------------------------------------------------------------------------------------------
# IDX reader


def test_idx_reader_matches_a_hand_written_file(tmp_path):
    values = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 2, 3) + values.tobytes()
    (tmp_path / "plain").write_bytes(raw)
    (tmp_path / "packed.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), values)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.gz"), values)
    ints = np.array([-5, 70000, 3], dtype=np.int32)
    write_idx(tmp_path / "ints", ints)
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), ints)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc", "magic"),
        (b"\x00\x00\x42\x01" + struct.pack(">I", 3) + b"abc", "type code"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"abc", "truncated"),
        (gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"abc")[:-6], "corrupt"),
    ],
)
def test_idx_reader_rejects_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST


@pytest.mark.slow
@pytest.mark.skipif(
    not all((SYSTEM_FASHION / f"{stem}.gz").is_file() for stem in IDX_FILES.values()),
    reason="Fashion-MNIST is not at /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_the_system_package(monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", SYSTEM_FASHION)
    assert dataset_available("fashion_mnist")
    ds = load_dataset("fashion_mnist")
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    # stored as the file's uint8 pixels (a quarter of float32's memory), read as float32 in [0, 1]
    assert ds.x_train.dtype == torch.uint8 and ds.scale == 1 / 255 and ds.y_train.dtype == torch.int64
    rows = ds.train_inputs(torch.arange(0, 60000, 7))
    assert rows.dtype == torch.float32 and float(rows.min()) == 0.0 and float(rows.max()) == 1.0
    assert ds.max_abs_input() == 1.0
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_fashion_mnist_search_order(tmp_path, monkeypatch):
    explicit, env_root, system = tmp_path / "explicit", tmp_path / "env", tmp_path / "system"
    write_mnist_dir(explicit, fill=1)
    write_mnist_dir(env_root / "fashion-mnist", fill=2)  # the sub-directory form
    write_mnist_dir(system, fill=3)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    monkeypatch.setenv("LIFELONG_DATA", str(env_root))

    def marker(**kwargs) -> int:
        return round(float(load_dataset("fashion_mnist", **kwargs).train_inputs()[0, 0]) * 255)

    assert marker(data_dir=explicit) == 1  # data_dir beats LIFELONG_DATA
    assert marker() == 2  # LIFELONG_DATA beats the system copy
    assert marker(data_dir=tmp_path / "empty") == 2  # a data_dir without the files falls through
    monkeypatch.delenv("LIFELONG_DATA")
    assert marker() == 3
    ds = load_dataset("fashion_mnist", flatten=False)
    assert ds.input_shape == (1, 28, 28) and len(ds.y_train) == 6


def test_fashion_mnist_missing_says_where_and_how(tmp_path):
    assert not dataset_available("fashion_mnist", tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    for fix in ("--data-dir", "LIFELONG_DATA", "apt-get install dataset-fashion-mnist", "--download"):
        assert fix in message
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "no-system-copy") in message


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def file_server(tmp_path, monkeypatch):
    """Serve generated Fashion-MNIST-style files from a local HTTP server; patch the digests to match."""
    served = tmp_path / "served"
    arrays = write_mnist_dir(served, fill=7)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in served.iterdir()}
    monkeypatch.setattr(fashion_mnist, "SHA256", digests)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served, arrays
    server.shutdown()
    server.server_close()
    thread.join()


def test_fashion_mnist_download_verifies_and_stores(tmp_path, file_server):
    url, served, arrays = file_server
    target = tmp_path / "target"
    ds = load_dataset("fashion_mnist", data_dir=target, download=True, url=url)
    expected = arrays["train_images"].reshape(6, -1) / np.float32(255)
    np.testing.assert_array_equal(ds.train_inputs().numpy(), expected)  # x / 255, bit for bit
    assert sorted(p.name for p in target.iterdir()) == sorted(fashion_mnist.SHA256)
    for p in target.iterdir():
        assert p.read_bytes() == (served / p.name).read_bytes()
    assert dataset_available("fashion_mnist", target)


def test_fashion_mnist_download_to_cache_from_env_url(tmp_path, file_server, monkeypatch):
    url, _, _ = file_server
    monkeypatch.setenv("LIFELONG_FASHION_MNIST_URL", url)
    assert not dataset_available("fashion_mnist")
    load_dataset("fashion_mnist", download=True)
    assert len(list((tmp_path / "cache" / "fashion-mnist").iterdir())) == 4
    assert dataset_available("fashion_mnist")  # the cache is searched next time


def test_fashion_mnist_corrupt_download_leaves_nothing(tmp_path, file_server):
    url, served, _ = file_server
    victim = served / "train-labels-idx1-ubyte.gz"
    victim.write_bytes(b"tampered" + victim.read_bytes())  # the served bytes no longer match the digest
    target = tmp_path / "target"
    with pytest.raises(DataError, match="SHA-256"):
        load_dataset("fashion_mnist", data_dir=target, download=True, url=url)
    assert not (target / victim.name).exists()
    assert not [p for p in target.iterdir() if p.name.endswith(".part")]


def test_fashion_mnist_download_http_error_is_data_error(tmp_path, file_server):
    url, served, _ = file_server
    (served / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="could not download.*t10k-images"):
        load_dataset("fashion_mnist", data_dir=tmp_path / "target", download=True, url=url)
    with pytest.raises(ConfigError, match="http"):
        load_dataset("fashion_mnist", data_dir=tmp_path / "target", download=True, url="file:///etc/")


# --------------------------------------------------------------------------------------------
# MNIST and KMNIST


@pytest.mark.parametrize("name", ["mnist", "kmnist"])
def test_mnist_style_from_local_files(tmp_path, monkeypatch, name):
    arrays = write_mnist_dir(tmp_path / "direct", n_train=12, n_test=5, gz=False)
    ds = load_dataset(name, data_dir=tmp_path / "direct")
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784)
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train_labels"])
    np.testing.assert_allclose(ds.test_inputs().numpy() * 255, arrays["test_images"].reshape(5, -1), atol=1e-4)
    assert load_dataset(name, data_dir=tmp_path / "direct", flatten=False).input_shape == (1, 28, 28)

    write_mnist_dir(tmp_path / "root" / name, n_train=8)
    monkeypatch.setenv("LIFELONG_DATA", str(tmp_path / "root"))
    assert dataset_available(name)
    assert len(load_dataset(name).y_train) == 8


@pytest.mark.parametrize("name", ["mnist", "kmnist"])
def test_mnist_style_missing_directory(tmp_path, name):
    assert not dataset_available(name, tmp_path)
    with pytest.raises(DataError, match="--data-dir") as info:
        load_dataset(name, data_dir=tmp_path / "missing")
    assert str(tmp_path / "missing") in str(info.value)


def test_mnist_mismatched_files_are_rejected(tmp_path):
    write_mnist_dir(tmp_path, n_train=6)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="6 images.*5 labels"):
        load_dataset("mnist", data_dir=tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(6, dtype=np.uint8))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not an idx file")
    with pytest.raises(DataError, match="t10k-images"):
        load_dataset("mnist", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# CIFAR-10


def write_cifar_dir(directory: Path, per_batch: int = 4, protocol: int = 2) -> dict:
    """Write batches in the layout of cifar-10-batches-py (dicts with bytes keys)."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    written = {}
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{j}.png".encode() for j in range(per_batch)]}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (data, labels)
    meta = {b"label_names": [f"name{c}".encode() for c in range(10)], b"num_cases_per_batch": per_batch}
    (directory / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_from_python_batches(tmp_path, protocol):
    written = write_cifar_dir(tmp_path / "cifar-10-batches-py", protocol=protocol)
    ds = load_dataset("cifar10", data_dir=tmp_path)  # the parent directory is searched too
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.class_names == tuple(f"name{c}" for c in range(10))
    data, labels = written["test_batch"]
    assert ds.y_test.tolist() == labels
    # channel-major layout: value (c, i, j) of an image is data[c*1024 + i*32 + j]
    assert float(ds.x_test[1, 2, 5, 7]) == pytest.approx(data[1, 2 * 1024 + 5 * 32 + 7] / 255)
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    flat = load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py", flatten=True)
    assert flat.input_shape == (3072,)
    np.testing.assert_allclose(flat.x_test.numpy() * 255, data, atol=1e-4)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_rejects_a_malicious_pickle(tmp_path):
    directory = tmp_path / "cifar"
    write_cifar_dir(directory)
    marker = tmp_path / "pwned"
    (directory / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="refusing to unpickle") as info:
        load_dataset("cifar10", data_dir=directory)
    assert "data_batch_3" in str(info.value)
    assert not marker.exists()


def test_cifar10_missing_directory(tmp_path):
    assert not dataset_available("cifar10", tmp_path)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# MNIST-1D


def test_mnist1d_generates_caches_and_keeps_global_rng(tmp_path, monkeypatch):
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    ds = load_dataset("mnist1d", data_dir=tmp_path, num_samples=100)
    assert np.random.rand() == expected_next  # make_dataset's global seeding was undone
    assert ds.x_train.shape == (80, 40) and ds.x_test.shape == (20, 40)
    assert ds.n_classes == 10
    cached = list(tmp_path.glob("*.npz"))
    assert len(cached) == 1

    import mnist1d.data

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(mnist1d.data, "make_dataset", fail)
    again = load_dataset("mnist1d", data_dir=tmp_path, num_samples=100)
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)
    with pytest.raises(AssertionError, match="cache"):
        load_dataset("mnist1d", data_dir=tmp_path, num_samples=120)  # other args, other cache key


def test_mnist1d_default_cache_dir_follows_env(tmp_path):
    load_dataset("mnist1d", num_samples=50)
    assert len(list((tmp_path / "cache" / "mnist1d").glob("*.npz"))) == 1
    assert mnist1d_source.cache_dir() == tmp_path / "cache" / "mnist1d"


# --------------------------------------------------------------------------------------------
# User files


def test_file_npz_single_and_explicit_splits(tmp_path):
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    y = np.arange(20) % 2
    np.savez(tmp_path / "one.npz", x=x, y=y)
    ds = load_dataset("file", path=tmp_path / "one.npz", seed=1)
    assert ds.name == "one" and (len(ds.y_train), len(ds.y_test)) == (14, 6)  # 2.5 per class rounds up
    assert torch.equal(ds.x_test, load_dataset("file", path=tmp_path / "one.npz", seed=1).x_test)
    rows = sorted(ds.x_train[:, 0].tolist() + ds.x_test[:, 0].tolist())
    assert rows == x[:, 0].tolist()  # a partition of the rows

    np.savez(tmp_path / "two.npz", x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
    ds = load_dataset("file", path=tmp_path / "two.npz")
    assert (len(ds.y_train), len(ds.y_test)) == (20, 3)

    np.savez(tmp_path / "named.npz", x=x, target=y)
    assert len(load_dataset("file", path=tmp_path / "named.npz", label="target").y_train) == 14
    with pytest.raises(DataError, match="no array 'y'"):
        load_dataset("file", path=tmp_path / "named.npz")


def test_file_csv_and_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.arange(12.0), "b": np.ones(12), "label": np.arange(12) % 3})
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset("file", path=tmp_path / "t.csv")
    assert ds.input_shape == (2,) and len(ds.y_train) + len(ds.y_test) == 12
    pytest.importorskip("pyarrow")
    frame.rename(columns={"label": "cls"}).to_parquet(tmp_path / "t.parquet")
    ds = load_dataset("file", path=tmp_path / "t.parquet", label="cls")
    assert ds.input_shape == (2,) and set(ds.y_test.tolist()) == {0, 1, 2}
    frame.assign(label=frame["label"].astype(float)).to_csv(tmp_path / "f.csv", index=False)
    assert load_dataset("file", path=tmp_path / "f.csv").y_train.dtype == torch.int64  # 1.0 is a fine label


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("a", [0.0, 1.0, np.nan, 3.0], "NaN or inf.*row 2"),
        ("a", [0.0, 1.0, 2.0, np.inf], "NaN or inf.*row 3"),
        ("label", [0, 1.5, 0, 1], "labels must be integer class ids.*1.5"),
        ("label", ["cat", "dog", "cat", "dog"], "labels must be integer class ids"),
        ("label", [0, -1, 0, 1], "non-negative"),
        ("a", ["x", "y", "z", "w"], "must be numeric.*'a'"),
    ],
)
def test_file_csv_rejects_bad_values(tmp_path, column, values, message):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "label": [0, 1, 0, 1]})
    frame[column] = values
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("file", path=tmp_path / "bad.csv")
    assert "bad.csv" in str(info.value)


def test_file_npz_rejects_bad_values(tmp_path):
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0], [np.nan], [1.0], [2.0]]), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="nan.npz.*row 1"):
        load_dataset("file", path=tmp_path / "nan.npz")
    np.savez(tmp_path / "float.npz", x=np.zeros((4, 1)), y=np.array([0, 0.5, 1, 1]))
    with pytest.raises(DataError, match="labels must be integer class ids"):
        load_dataset("file", path=tmp_path / "float.npz")
    np.savez(tmp_path / "text.npz", x=np.zeros((2, 1)), y=np.array(["a", "b"]))
    with pytest.raises(DataError, match="labels must be integer class ids"):
        load_dataset("file", path=tmp_path / "text.npz")


def test_file_missing_things(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="path is required"):
        load_dataset("file")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("file", path=tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="suffix"):
        load_dataset("file", path=tmp_path / "data.xlsx")
    (tmp_path / "t.csv").write_text("f1,f2,y\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match=r"no label column 'label'.*\['f1', 'f2', 'y'\]"):
        load_dataset("file", path=tmp_path / "t.csv")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if the extra were not installed
    with pytest.raises(DataError, match=r"pip install 'lifelong\[files\]'"):
        load_dataset("file", path=tmp_path / "t.csv", label="y")


@pytest.mark.parametrize("row", [0, 9, 10, 11, 99])
def test_nonfinite_rows_are_found_in_every_block(row):
    """The finiteness check runs in blocks (the whole-tensor check doubled peak memory); a bad value
    in any block, at a block's edge included, is reported at its row."""
    from lifelong.data.core import Dataset, first_nonfinite_row

    x = torch.zeros(100, 7)
    assert first_nonfinite_row(x, block=70) is None
    x[row, 6] = float("nan") if row % 2 else float("-inf")
    assert first_nonfinite_row(x, block=70) == row  # 10 rows per block
    with pytest.raises(DataError, match=f"row {row}"):
        Dataset("toy", x, torch.zeros(100, dtype=torch.int64), torch.zeros(2, 7), torch.zeros(2, dtype=torch.int64))


def test_a_dataset_of_uint8_codes_builds_the_same_streams_as_its_float_copy():
    """The image loaders keep uint8 pixels with ``scale = 1/255``; every scenario converts the rows
    it takes. The chunks and eval sets must be, bit for bit, those of the float32 dataset."""
    from lifelong.data import scenarios
    from lifelong.data.core import Dataset

    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 256, (120, 16), generator=g, dtype=torch.uint8)
    test = torch.randint(0, 256, (40, 16), generator=g, dtype=torch.uint8)
    y, yt = torch.arange(120) % 4, torch.arange(40) % 4
    packed = Dataset("p", codes, y, test, yt, scale=1 / 255)
    plain = Dataset("p", torch.from_numpy(codes.numpy().astype(np.float32) / np.float32(255)), y,
                    torch.from_numpy(test.numpy().astype(np.float32) / np.float32(255)), yt)
    assert packed.max_abs_input() == plain.max_abs_input()
    builds = [
        lambda ds: scenarios.class_incremental(ds, n_chunks=2, seed=1),
        lambda ds: scenarios.domain_incremental(ds, n_chunks=2, seed=1, train_per_chunk=50),
        lambda ds: scenarios.domain_incremental(ds, n_chunks=2, seed=1, transform="rotation"),
        lambda ds: scenarios.label_permuted(ds, n_chunks=2, seed=1),
    ]
    for build in builds:
        a, b = build(packed), build(plain)
        for pa, pb in zip([*a.chunks, *a.eval_sets], [*b.chunks, *b.eval_sets], strict=True):
            assert pa.x.dtype == torch.float32
            assert torch.equal(pa.x, pb.x) and torch.equal(pa.y, pb.y)


def test_a_dataset_scale_must_match_its_inputs():
    from lifelong.data.core import Dataset

    y = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(DataError, match="uint8 codes"):
        Dataset("p", torch.zeros(3, 2), y, torch.zeros(3, 2), y, scale=1 / 255)  # float inputs with a scale
    with pytest.raises(DataError, match="positive finite"):
        Dataset("p", torch.zeros(3, 2, dtype=torch.uint8), y, torch.zeros(3, 2, dtype=torch.uint8), y, scale=-1.0)
    with pytest.raises(DataError, match="float32"):
        Dataset("p", torch.zeros(3, 2, dtype=torch.uint8), y, torch.zeros(3, 2, dtype=torch.uint8), y)
