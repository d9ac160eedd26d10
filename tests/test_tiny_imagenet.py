"""TinyImageNet-200 from its standard JPEG layout, the decoded-array cache, Split TinyImageNet and
the zip download, on small files the tests write in that layout."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.data.datasets import dataset_available, load_dataset
from lifelong.data.scenarios import build_stream
from lifelong.errors import ConfigError, DataError

from test_cifar import archive_server  # noqa: F401  (the local HTTP server fixture)

Image = pytest.importorskip("PIL.Image", reason="Pillow (lifelong[images]) is not installed")


def _colour(k: int, j: int) -> tuple[int, int, int]:
    return (k * 37 % 256, j * 53 % 256, (k + j) * 11 % 256)


def write_tiny_imagenet(root: Path, n_classes: int = 4, n_train: int = 2, n_val: int = 1, side: int = 64) -> list[str]:
    """Write ``tiny-imagenet-200`` in the official layout: flat-colour JPEGs (so the decoded values
    are known to within JPEG error), one greyscale image, wnids.txt unsorted. Returns the wnids."""
    wnids = [f"n{9000 - k:08d}" for k in range(n_classes)]  # reverse-sorted: the loader must sort
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tthing {w}, other name\n" for w in wnids) + "n00000001\tunused\n")
    lines = []
    for w in wnids:
        k = sorted(wnids).index(w)
        folder = root / "train" / w / "images"
        folder.mkdir(parents=True)
        for j in range(n_train):
            mode = "L" if (k, j) == (0, 1) else "RGB"
            Image.new(mode, (side, side), _colour(k, j)[0] if mode == "L" else _colour(k, j)).save(folder / f"{w}_{j}.JPEG")
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
        for j in range(n_val):
            name = f"val_{len(lines)}.JPEG"
            Image.new("RGB", (side, side), _colour(k, 100 + j)).save(root / "val" / "images" / name)
            lines.append(f"{name}\t{w}\t0\t0\t{side - 1}\t{side - 1}")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return wnids


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("LIFELONG_CACHE", str(path))
    return path


def test_tiny_imagenet_from_the_standard_layout(tmp_path, cache):
    wnids = write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    assert dataset_available("tiny_imagenet", tmp_path)
    ds = load_dataset("tiny_imagenet", data_dir=tmp_path)  # the parent directory is searched too
    assert ds.input_shape == (3, 64, 64) and ds.n_classes == 4 and len(ds.y_train) == 8 and len(ds.y_test) == 4
    # class k is the k-th wnid in sorted order, not in wnids.txt's order
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and ds.y_test.tolist() == [3, 2, 1, 0]  # val: the annotations' order
    assert ds.class_names == tuple(f"thing {w}" for w in sorted(wnids))
    for k, j in [(0, 0), (1, 1), (3, 0)]:
        row = 2 * k + j
        want = torch.tensor(_colour(k, j), dtype=torch.float32) / 255
        assert torch.allclose(ds.x_train[row].mean(dim=(1, 2)), want, atol=3 / 255), (k, j)
    grey = ds.x_train[1]  # the greyscale JPEG, converted to three equal channels
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])
    assert torch.allclose(ds.x_test[2].mean(dim=(1, 2)), torch.tensor(_colour(1, 100), dtype=torch.float32) / 255,
                          atol=3 / 255)
    flat = load_dataset("tiny_imagenet", data_dir=tmp_path, flatten=True, normalize=True)
    from lifelong.data.datasets.tiny_imagenet import MEAN, STD

    want = (ds.x_test - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert flat.input_shape == (12288,) and torch.allclose(flat.x_test, want.flatten(1), atol=1e-5)


def test_decoded_arrays_are_cached_and_a_changed_file_list_is_decoded_again(tmp_path, cache, monkeypatch):
    root = tmp_path / "tiny-imagenet-200"
    write_tiny_imagenet(root)
    first = load_dataset("tiny_imagenet", data_dir=root)
    cached = list((cache / "tiny_imagenet").glob("decoded-*.npz"))
    assert len(cached) == 1
    from lifelong.data.datasets import images

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds the arrays")

    monkeypatch.setattr(images, "decode", no_decoding)
    again = load_dataset("tiny_imagenet", data_dir=root)  # read from the cache, nothing decoded
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_test, first.y_test)
    with pytest.raises(AssertionError, match="decoded although"):
        load_dataset("tiny_imagenet", data_dir=root, cache=False)
    monkeypatch.undo()
    monkeypatch.setenv("LIFELONG_CACHE", str(cache))
    w = sorted((root / "train").iterdir())[0].name
    Image.new("RGB", (64, 64), (255, 0, 0)).save(root / "train" / w / "images" / f"{w}_9.JPEG")
    grown = load_dataset("tiny_imagenet", data_dir=root)
    assert len(grown.y_train) == 9 and len(list((cache / "tiny_imagenet").glob("decoded-*.npz"))) == 2


def test_tiny_imagenet_errors(tmp_path, cache):
    assert not dataset_available("tiny_imagenet", tmp_path)
    with pytest.raises(DataError, match="(?s)no directory holds wnids.txt.*unzip tiny-imagenet-200.zip"):
        load_dataset("tiny_imagenet", data_dir=tmp_path)
    root = tmp_path / "tiny-imagenet-200"
    write_tiny_imagenet(root)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn12345678\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations.txt:1: expected 'file<TAB>wnid...' with a wnid of wnids.txt"):
        load_dataset("tiny_imagenet", data_dir=root)
    w = sorted((root / "train").iterdir())[0].name
    (root / "val" / "val_annotations.txt").write_text(f"val_0.JPEG\t{w}\n")
    (root / "val" / "images" / "val_0.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot decode .*val_0.JPEG"):
        load_dataset("tiny_imagenet", data_dir=root, cache=False)
    with pytest.raises(ConfigError, match="sha256 must be 64 hexadecimal digits"):
        load_dataset("tiny_imagenet", data_dir=root, sha256="abc")


def test_a_missing_pillow_is_a_clear_error(tmp_path, cache, monkeypatch):
    import builtins

    write_tiny_imagenet(tmp_path / "tiny-imagenet-200", n_classes=2, n_train=1)
    real_import = builtins.__import__

    def without_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_pil)
    with pytest.raises(DataError, match=r"needs Pillow, which is not installed; run pip install 'lifelong\[images\]'"):
        load_dataset("tiny_imagenet", data_dir=tmp_path)


def test_split_tinyimagenet_is_ten_chunks_of_twenty_classes_in_the_natural_order(tmp_path, cache):
    write_tiny_imagenet(tmp_path / "tiny-imagenet-200", n_classes=200, n_train=1, n_val=1, side=8)  # resized to 64
    ds = load_dataset("tiny_imagenet", data_dir=tmp_path)
    assert ds.input_shape == (3, 64, 64)
    s = build_stream("split_tinyimagenet", ds, seed=0)
    assert s.name == "split_tinyimagenet" and len(s.chunks) == 10
    assert [c.classes for c in s.chunks] == [tuple(range(20 * i, 20 * i + 20)) for i in range(10)]
    assert s.info["setting"] == "class-IL" and s.task_classes is None
    assert build_stream("split_tinyimagenet", ds, seed=0, task_il=True).task_classes[1] == tuple(range(20, 40))
    with pytest.raises(ConfigError, match=r"200-class dataset \(tiny_imagenet\), but 'blobs' has 4 .*use dataset 'tiny_imagenet'"):
        build_stream("split_tinyimagenet", load_dataset("blobs", n_classes=4, n_per_class=5, n_test_per_class=2), seed=0)


def test_the_tiny_imagenet_recipe_is_the_der_protocol(tmp_path, cache):
    from lifelong.experiments.config import from_dict
    from lifelong.experiments.runner import build_run

    write_tiny_imagenet(tmp_path / "tiny-imagenet-200", n_classes=200, n_train=1, n_val=1, side=8)
    cfg = from_dict({"dataset": {"name": "tiny_imagenet", "data_dir": str(tmp_path)},
                     "scenario": {"name": "split_tinyimagenet"},
                     "model": {"kind": "cnn", "channels": [2], "hidden": 4}, "learner": {"name": "derpp"}})
    assert cfg.scenario == {"name": "split_tinyimagenet"}  # no default n_chunks added
    t = build_run(cfg, seed=0).train
    assert (t["epochs"], t["batch_size"], t["lr"], t["augment"]) == (100, 32, 0.03, "crop_flip")


def _zip_of(source: Path, path: Path, top: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(source.rglob("*")):
            if f.is_file():
                zf.write(f, f"{top}/{f.relative_to(source).as_posix()}")
        zf.writestr("../evil.txt", b"evil")
        link = zipfile.ZipInfo(f"{top}/link")
        link.external_attr = (0o120777 << 16)  # a symbolic link
        zf.writestr(link, "/etc/passwd")


def test_download_verifies_the_zip_and_extracts_only_its_files(tmp_path, archive_server, cache, monkeypatch):  # noqa: F811
    from lifelong.data.datasets import tiny_imagenet

    base, served = archive_server
    source = tmp_path / "source"
    write_tiny_imagenet(source, n_classes=2, n_train=1)
    archive = served / "tiny-imagenet-200.zip"
    _zip_of(source, archive, "tiny-imagenet-200")
    url = base + archive.name
    target = tmp_path / "data" / "target"
    with pytest.raises(DataError, match=rf"tiny_imagenet: {url} has MD5 .* but {tiny_imagenet.MD5} was expected.*Nothing was kept"):
        load_dataset("tiny_imagenet", data_dir=target, download=True, url=url)
    assert not target.exists() or not any(target.rglob("*"))
    wrong = "0" * 64
    with pytest.raises(DataError, match=rf"has SHA-256 .* but {wrong} was expected"):
        load_dataset("tiny_imagenet", data_dir=target, download=True, url=url, sha256=wrong)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    ds = load_dataset("tiny_imagenet", data_dir=target, download=True, url=url, sha256=digest)
    assert ds.n_classes == 2 and (target / "tiny-imagenet-200" / "wnids.txt").is_file()
    assert not (target / "tiny-imagenet-200" / "link").exists() and not (tmp_path / "data" / "evil.txt").exists()
    assert not list(target.glob("*.zip"))  # the archive is removed after extraction
    monkeypatch.setattr(tiny_imagenet, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    other = tmp_path / "other"
    assert load_dataset("tiny_imagenet", data_dir=other, download=True, url=url).n_classes == 2  # the default check
    assert tiny_imagenet.URL == "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
