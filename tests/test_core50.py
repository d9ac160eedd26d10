"""CORe50 from its standard PNG layout (sessions s1..s11, objects o1..o50), the usual session split,
and the NI and NC scenarios, on small files the tests write in that layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lifelong.data.datasets import dataset_available, load_dataset
from lifelong.data.scenarios import build_stream
from lifelong.errors import ConfigError, DataError

Image = pytest.importorskip("PIL.Image", reason="Pillow (lifelong[images]) is not installed")


def _colour(s: int, m: int) -> tuple[int, int, int]:
    return (s * 20 % 256, m * 5 % 256, 128)


def write_core50(root: Path, n_objects: int = 4, frames: int = 2, side: int = 16) -> None:
    """``core50_128x128/s<s>/o<m>/C_<ss>_<mm>_<fff>.png``: flat colours that encode the session
    and the object."""
    for s in range(1, 12):
        for m in range(1, n_objects + 1):
            folder = root / f"s{s}" / f"o{m}"
            folder.mkdir(parents=True)
            for f in range(frames):
                Image.new("RGB", (side, side), _colour(s, m)).save(folder / f"C_{s:02d}_{m:02d}_{f:03d}.png")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFELONG_CACHE", str(tmp_path / "cache"))


def test_core50_from_the_png_layout_with_the_usual_session_split(tmp_path):
    write_core50(tmp_path / "core50_128x128")
    assert dataset_available("core50", tmp_path)
    ds = load_dataset("core50", data_dir=tmp_path, image_size=8)
    assert ds.input_shape == (3, 8, 8) and ds.n_classes == 4
    assert len(ds.y_train) == 8 * 4 * 2 and len(ds.y_test) == 3 * 4 * 2
    assert sorted(set(ds.session_train.tolist())) == [1, 2, 4, 5, 6, 8, 9, 11]
    assert sorted(set(ds.session_test.tolist())) == [3, 7, 10]
    # each frame's pixels are its session's and object's colour (PNG is lossless)
    for i in (0, 9, len(ds.y_train) - 1):
        s, m = int(ds.session_train[i]), int(ds.y_train[i]) + 1
        assert torch.allclose(ds.x_train[i, :, 0, 0], torch.tensor(_colour(s, m), dtype=torch.float32) / 255)
    cat = load_dataset("core50", data_dir=tmp_path, image_size=8, labels="category")
    assert cat.y_train.tolist() == [m // 5 for m in ds.y_train.tolist()] and cat.class_names[0] == "plug_adapter"
    assert load_dataset("core50", data_dir=tmp_path, image_size=8, normalize=True).x_train.mean().abs() < 1e-4


def test_core50_ni_is_one_chunk_per_training_session(tmp_path):
    write_core50(tmp_path / "core50_128x128")
    ds = load_dataset("core50", data_dir=tmp_path, image_size=8)
    s = build_stream("core50_ni", ds, seed=0)
    assert [c.name for c in s.chunks] == ["s1_0", "s2_0", "s4_0", "s5_0", "s6_0", "s8_0", "s9_0", "s11_0"]
    assert all(c.classes == (0, 1, 2, 3) and len(c) == 8 for c in s.chunks)
    for c, session in zip(s.chunks, (1, 2, 4, 5, 6, 8, 9, 11)):  # the chunk holds that session's frames
        assert torch.allclose(c.x[:, 0, 0, 0], torch.full((len(c),), _colour(session, 1)[0] / 255))
    assert len(s.eval_sets) == 1 and len(s.eval_sets[0].y) == 24  # the test sessions s3, s7, s10
    shuffled = build_stream("core50_ni", ds, seed=0, shuffle_sessions=True)
    assert sorted(shuffled.info["sessions"]) == [1, 2, 4, 5, 6, 8, 9, 11] != shuffled.info["sessions"]
    with pytest.raises(ConfigError, match="core50_ni needs the sessions of CORe50's samples: use dataset 'core50'"):
        build_stream("core50_ni", load_dataset("blobs", n_classes=4, n_per_class=5, n_test_per_class=2), seed=0)


def test_core50_nc_is_ten_then_five_new_objects_per_chunk(tmp_path):
    write_core50(tmp_path / "core50_128x128", n_objects=50, frames=1, side=4)
    ds = load_dataset("core50", data_dir=tmp_path, image_size=4)
    s = build_stream("core50_nc", ds, seed=0)
    sizes = [len(c.classes) for c in s.chunks]
    assert sizes == [10] + [5] * 8
    seen = [k for c in s.chunks for k in c.classes]
    assert sorted(seen) == list(range(50)) and seen != list(range(50))  # a seeded order by default
    for c, e in zip(s.chunks, s.eval_sets):
        assert set(c.y.tolist()) == set(c.classes) == set(e.y.tolist()) and len(c) == 8 * len(c.classes)
    assert build_stream("core50_nc", ds, seed=0, class_order="natural").chunks[1].classes == (10, 11, 12, 13, 14)
    t = build_stream("core50_nc", ds, seed=0, task_il=True)
    assert t.task_classes[0] == s.chunks[0].classes and t.chunks[3].task is not None
    with pytest.raises(ConfigError, match="50 classes do not split into a first chunk of 10 and chunks of 7"):
        build_stream("core50_nc", ds, seed=0, classes_per_chunk=7)


def test_a_core50_run_trains_end_to_end(tmp_path):
    from lifelong.evaluate import classic_metrics
    from lifelong.experiments.config import from_dict
    from lifelong.experiments.runner import build_run, iter_seed

    write_core50(tmp_path / "core50_128x128", frames=1)
    cfg = from_dict({"dataset": {"name": "core50", "data_dir": str(tmp_path), "image_size": 8},
                     "scenario": {"name": "core50_ni"}, "model": {"kind": "cnn", "channels": [2], "hidden": 4},
                     "train": {"epochs": 1, "batch_size": 4}, "learner": {"name": "er", "mem_size": 8}})
    records = list(iter_seed(build_run(cfg, seed=0)))
    assert sum(r.kind == "chunk_end" for r in records) == 8 and 0.0 <= classic_metrics(records, 0)["acc"] <= 1.0


def test_core50_errors(tmp_path):
    assert not dataset_available("core50", tmp_path)
    with pytest.raises(DataError, match="(?s)no directory holds the session folders s1 .. s11.*extract core50_128x128.zip"):
        load_dataset("core50", data_dir=tmp_path)
    with pytest.raises(DataError, match="core50 has no --download"):
        load_dataset("core50", data_dir=tmp_path, download=True)
    write_core50(tmp_path / "core50_128x128", n_objects=1, frames=1)
    with pytest.raises(ConfigError, match="labels must be 'object' or 'category'"):
        load_dataset("core50", data_dir=tmp_path, labels="instance")
    with pytest.raises(ConfigError, match="image_size must be a positive integer"):
        load_dataset("core50", data_dir=tmp_path, image_size=0)
