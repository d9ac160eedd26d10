"""The online, blurry, concept-drift and river streams, and near-future online accuracy."""

from __future__ import annotations

import pytest
import torch

from lifelong.experiments.config import from_dict
from lifelong.errors import ConfigError
from lifelong.learn.methods import make_learner
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.evaluate.classic import near_future_accuracy
from lifelong.learn.nets import mlp
from lifelong.data.scenarios import blurry, build_stream, concept_drift, online, river_drift
from tests.conftest import tiny_dataset

SMALL_RIVER = {"chunk_size": 150, "test_size": 60}
CASES = [
    ("online", {"n_chunks": 3}),
    ("blurry", {}),
    ("concept_drift", {}),
    ("river_drift", SMALL_RIVER),
    ("river_drift", {**SMALL_RIVER, "generator": "rbf", "change_speed": 0.01}),
]


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset(n_train=60)


def flat(stream):
    parts = [t for c in stream.chunks for t in (c.x.flatten(), c.y.float())]
    parts += [t for e in stream.eval_sets for t in (e.x.flatten(), e.y.float())]
    return torch.cat(parts)


@pytest.mark.parametrize(("name", "opts"), CASES)
def test_streams_are_deterministic_by_seed(ds, name, opts):
    a, b = build_stream(name, ds, seed=1, **opts), build_stream(name, ds, seed=1, **opts)
    assert torch.equal(flat(a), flat(b)) and a.describe() == b.describe()
    c = build_stream(name, ds, seed=2, **opts)
    if name != "online":  # online's class split is seed-free with the natural class order
        assert not (flat(a).shape == flat(c).shape and torch.equal(flat(a), flat(c)))
    assert a.task_free


class SpyNaive:
    """Wraps a learner and counts boundary calls."""

    def __init__(self, inner):
        self.inner, self.end_chunks = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def end_chunk(self):
        self.end_chunks += 1
        self.inner.end_chunk()


@pytest.mark.parametrize(("name", "opts"), CASES[:3])
def test_task_free_streams_never_announce_a_boundary(ds, name, opts):
    stream = build_stream(name, ds, seed=0, **opts)
    learner = SpyNaive(make_learner("naive", mlp(stream.input_shape, stream.n_classes, hidden=(8,)), seed=0))
    records = list(iter_run(stream, learner, LoopConfig(batch_size=10), seed=0))
    assert learner.end_chunks == 0
    assert sum(r.kind == "chunk_end" for r in records) == len(stream.chunks)  # still evaluated at each
    meta = records[0]
    assert meta.extra["task_free"] is True and meta.extra["scenario"] == name


def test_online_defaults_to_the_class_incremental_split(ds):
    s = online(ds, n_chunks=3)
    assert [c.classes for c in s.chunks] == [(0, 1), (2, 3), (4, 5)] and s.task_classes is None
    assert all(c.task is None for c in s.chunks)
    assert online(ds, n_chunks=2, split="domain").chunks[0].classes == tuple(range(6))


def test_blurry_chunks_share_classes_and_vary_in_length():
    ds = tiny_dataset(n_classes=10, n_train=100, n_test=10)
    s = blurry(ds, n_chunks=4, disjoint_ratio=0.5, blurry_ratio=0.3, seed=0)
    homes = [set(h) for h in s.info["home_classes"]]
    assert sorted(c for h in homes for c in h) == list(range(10))  # every class has one home
    assert len({len(h) for h in homes}) > 1 or len({len(c) for c in s.chunks}) > 1
    present = [set(c.classes) for c in s.chunks]
    for i in range(3):
        assert present[i] & present[i + 1], f"chunks {i} and {i + 1} share no class"
    blurry_set = set(s.info["blurry_classes"])
    assert len(blurry_set) == 5
    for i, c in enumerate(s.chunks):
        for cls in present[i] - homes[i]:
            assert cls in blurry_set  # only blurry classes leave home
        for cls in homes[i] - blurry_set:  # a disjoint class keeps all its samples at home
            assert int((c.y == cls).sum()) == 100
    for cls in blurry_set:  # 30% of a blurry class leaves home
        home = next(i for i, h in enumerate(homes) if cls in h)
        assert int((s.chunks[home].y == cls).sum()) == 70
    assert sum(len(c) for c in s.chunks) == 1000
    assert [set(e.classes) for e in s.eval_sets] == homes


def test_concept_drift_relabels_by_permutations_that_recur(ds):
    s = concept_drift(ds, n_chunks=7, n_concepts=3, seed=0)
    schedule, perms = s.info["concepts"], [torch.tensor(p) for p in s.info["permutations"]]
    assert schedule[:3] == [0, 1, 2] and len(schedule) == 7
    assert all(a != b for a, b in zip(schedule, schedule[1:], strict=False))  # every boundary is a shift
    assert len(set(schedule[3:]) & {0, 1, 2}) >= 1  # an old mapping recurs
    assert torch.equal(perms[0], torch.arange(6)) and not torch.equal(perms[1], perms[2])
    for chunk, c in zip(s.chunks, schedule, strict=True):
        # recover each sample's original label by its (unique) input row
        idx = (chunk.x[:, None, :] == ds.x_train[None, :, :]).all(-1).float().argmax(1)
        assert torch.equal(chunk.y, perms[c][ds.y_train[idx]])
        assert chunk.name == f"concept{c}_0"
    assert [e.name for e in s.eval_sets] == ["concept0_0", "concept1_0", "concept2_0"]
    for e in s.eval_sets:
        assert torch.equal(e.y, perms[e.index][ds.y_test])
    sizes = [len(c) for c in s.chunks]
    assert sum(sizes) == len(ds.y_train) and len(set(sizes)) > 1  # random segment lengths
    assert s.info["drift_points"] == torch.tensor(sizes).cumsum(0)[:-1].tolist()


def test_river_sea_labels_follow_each_variants_threshold(ds):
    s = river_drift(ds, generator="sea", n_chunks=5, chunk_size=200, test_size=50, seed=3)
    thresholds = [8.0, 9.0, 7.0, 9.5]  # SEA (Street & Kim 2001) as river has it: y = [x0 + x1 > θ_variant]
    assert s.info["concepts"] == [0, 1, 2, 3, 0] and s.n_classes == 2 and s.input_shape == (3,)
    for chunk, v in zip(s.chunks, s.info["concepts"], strict=True):
        x = chunk.x * 10
        assert torch.equal(chunk.y, (x[:, 0] + x[:, 1] > thresholds[v]).long())
        assert float(chunk.x.min()) >= 0 and float(chunk.x.max()) <= 1
    assert [e.name for e in s.eval_sets] == ["sea0_0", "sea1_0", "sea2_0", "sea3_0"]  # recurring concept: one set
    assert s.info["drift_points"] == [200, 400, 600, 800]


def test_river_rbf_concepts_differ_and_recur(ds):
    s = river_drift(ds, generator="rbf", n_chunks=3, concepts=[0, 1, 0], n_classes=3, n_features=4,
                    chunk_size=100, test_size=40, seed=0)
    assert s.input_shape == (4,) and s.n_classes == 3 and len(s.eval_sets) == 2
    assert not torch.equal(s.chunks[0].x, s.chunks[2].x)  # fresh samples, same concept
    assert s.chunks[0].name == s.chunks[2].name == "rbf0_0"


@pytest.mark.parametrize(
    ("name", "opts", "match"),
    [
        ("online", {"n_chunks": 3, "split": "task"}, "split must be"),
        ("blurry", {"n_chunks": 7}, "n_chunks must lie"),
        ("blurry", {"blurry_ratio": 1.5}, "blurry_ratio"),
        ("concept_drift", {"n_chunks": 3, "n_concepts": 3}, "must exceed n_concepts"),
        ("concept_drift", {"n_concepts": 1}, "n_concepts >= 2"),
        ("concept_drift", {"n_train": 3}, "n_train"),
        ("river_drift", {"generator": "hyperplane"}, "generator must be"),
        ("river_drift", {"concepts": [0, 1]}, "2 concepts given for 4 chunks"),
        ("river_drift", {"concepts": [0, 1, 2, 5]}, "variants"),
        ("river_drift", {"noise": 2.0}, "noise"),
        ("concept_drift", {"n_chunk": 4}, r"scenario 'concept_drift': has no option 'n_chunk'; it accepts: n_chunks, "),
        # a wrong-typed option is our message, naming the option and the type it needs
        ("concept_drift", {"n_chunks": "8"}, r"scenario 'concept_drift': n_chunks must be an integer, got '8'"),
        ("blurry", {"blurry_ratio": "high"}, r"scenario 'blurry': blurry_ratio must be a number, got 'high'"),
        ("river_drift", {"concepts": [0.5, 1]}, r"scenario 'river_drift': concepts must be a list of integers \(or omitted\)"),
        ("online", {"task_free": True}, "has no option 'task_free'"),
    ],
)
def test_bad_requests_are_refused_with_a_config_error(ds, name, opts, match):
    with pytest.raises(ConfigError, match=match):
        build_stream(name, ds, seed=0, **opts)


def test_near_future_scores_the_batch_ahead_without_training(ds):
    stream = online(ds, n_chunks=3)
    model = mlp(stream.input_shape, stream.n_classes, hidden=(8,), seed=0)
    records = list(iter_run(stream, make_learner("naive", model, seed=0), LoopConfig(batch_size=10, near_future=2), seed=0))
    train = [r for r in records if r.kind == "train"]
    per_chunk = len(stream.chunks[0]) // 10  # 12 batches per chunk
    for k in range(3):
        rows = train[k * per_chunk : (k + 1) * per_chunk]
        assert all(r.extra == {"nf_n": 10, "nf_correct": r.extra["nf_correct"]} for r in rows[:-2])
        assert all(r.extra == {} for r in rows[-2:])  # nothing two batches ahead in this chunk
    acc = near_future_accuracy(records)
    assert 0.0 <= acc <= 1.0
    plain = list(iter_run(stream, make_learner("naive", mlp(stream.input_shape, stream.n_classes, hidden=(8,), seed=0),
                                               seed=0), LoopConfig(batch_size=10), seed=0))
    # scoring ahead does not train: the same learner trains identically with and without it
    strip = [(r.kind, r.n_correct, r.loss_sum) for r in records]
    assert strip == [(r.kind, r.n_correct, r.loss_sum) for r in plain]
    assert all("nf_n" not in r.extra for r in plain)


def test_near_future_is_a_train_config_key():
    assert from_dict({"train": {"near_future": 1}}).train["near_future"] == 1
    assert from_dict({"train": {"near_future": 0}}).train["near_future"] == 0
    with pytest.raises(ConfigError, match="near_future"):
        from_dict({"train": {"near_future": -1}})
