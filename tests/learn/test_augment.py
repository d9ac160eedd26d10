"""Batched augmentation: the crop and flip oracle, seeding, and where the learners apply it
(incoming and replay batches; the memory keeps the raw inputs)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lifelong.data import Batch
from lifelong.errors import ConfigError, DataError
from lifelong.experiments.config import from_dict, override
from lifelong.experiments.runner import build_learner
from lifelong.learn.augment import AUGMENTATIONS, Augment
from lifelong.learn.methods import make_learner
from lifelong.learn.methods.cls_er import CLSER
from lifelong.learn.methods.der import DER
from lifelong.learn.methods.er import ER
from lifelong.learn.nets import cnn

SHAPE = (3, 8, 8)


def images(b: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, *SHAPE, generator=torch.Generator().manual_seed(seed))


def batches(n: int, b: int = 4, seed: int = 1) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.rand(b, *SHAPE, generator=g), torch.randint(3, (b,), generator=g)) for _ in range(n)]


def test_crop_and_flip_match_the_per_sample_definition():
    x = images(16)
    p = 2
    out = Augment(padding=p, flip=True)(x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the same draws, in the documented order
    offsets = torch.randint(0, 2 * p + 1, (2, 16), generator=g)
    coins = torch.rand(16, generator=g) < 0.5
    padded = F.pad(x, (p, p, p, p))
    for i in range(16):
        top, left = int(offsets[0, i]), int(offsets[1, i])
        want = padded[i, :, top : top + 8, left : left + 8]
        if coins[i]:
            want = want.flip(2)
        assert torch.equal(out[i], want)
    assert coins.any() and not coins.all() and (offsets != p).any()  # the draws vary across the batch


def test_flip_only_and_crop_only():
    x = images(8)
    flipped = AUGMENTATIONS["flip"](x, torch.Generator().manual_seed(0))
    assert all(torch.equal(f, s) or torch.equal(f, s.flip(2)) for f, s in zip(flipped, x))
    cropped = AUGMENTATIONS["crop"](x, torch.Generator().manual_seed(0))
    assert cropped.shape == x.shape and not torch.equal(cropped, x)
    assert ((cropped == 0) | torch.isin(cropped, x)).all()  # pixels of the image or the zero padding


def test_augmentation_is_seeded_and_leaves_global_random_state_alone():
    x = images(8)
    before = torch.get_rng_state()
    a = AUGMENTATIONS["crop_flip"](x, torch.Generator().manual_seed(3))
    b = AUGMENTATIONS["crop_flip"](x, torch.Generator().manual_seed(3))
    c = AUGMENTATIONS["crop_flip"](x, torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(DataError, match=r"needs image batches \(B, C, H, W\), got shape \(8, 3\)"):
        AUGMENTATIONS["crop_flip"](torch.zeros(8, 3), torch.Generator())


def inputs_seen(model) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    return seen


@pytest.mark.parametrize("cls", [ER, DER])
def test_replay_learners_augment_incoming_and_replay_batches_and_store_raw_inputs(cls):
    learner = cls(cnn(SHAPE, 3, channels=(4,), hidden=8, seed=0), mem_size=100, seed=0, augment="crop_flip")
    seen = inputs_seen(learner.model)
    stream = batches(3)
    for b in stream:
        learner.observe(b)
    raw = torch.cat([b.x for b in stream])
    stored = learner.memory.all().x
    assert torch.equal(stored, raw)  # the memory (capacity 100) holds every raw input, in order
    # step 1: the incoming batch only, augmented (fused forward: incoming and replay in one call after)
    assert len(seen) == 3 and seen[0].shape[0] == 4 and not torch.equal(seen[0], stream[0].x)
    incoming, replay = seen[1][:4], seen[1][4:]
    assert not torch.equal(incoming, stream[1].x) and len(replay) == 4
    assert not any(torch.equal(r, s) for r in replay for s in raw)  # replayed images are augmented too
    plain = cls(cnn(SHAPE, 3, channels=(4,), hidden=8, seed=0), mem_size=100, seed=0)
    seen_plain = inputs_seen(plain.model)
    plain.observe(stream[0])
    assert plain.augmenter is None and torch.equal(seen_plain[0], stream[0].x)  # off by default


def test_cls_er_augments_both_batches_and_keeps_raw_inputs():
    learner = CLSER(cnn(SHAPE, 3, channels=(4,), hidden=8, seed=0), mem_size=100, seed=0, augment="crop_flip")
    seen = inputs_seen(learner.model)
    stream = batches(2)
    for b in stream:
        learner.observe(b)
    assert torch.equal(learner.memory.all().x, torch.cat([b.x for b in stream]))
    assert not torch.equal(seen[1][:4], stream[1].x) and seen[1].shape[0] == 4 + 4


def test_an_augmenting_learner_resumes_exactly():
    stream = batches(6)
    a = ER(cnn(SHAPE, 3, channels=(4,), hidden=8, seed=0), mem_size=10, seed=0, augment="crop_flip")
    for b in stream[:3]:
        a.observe(b)
    b_ = ER(cnn(SHAPE, 3, channels=(4,), hidden=8, seed=0), mem_size=10, seed=0, augment="crop_flip")
    b_.load_state_dict(copy.deepcopy(a.state_dict()))
    for batch in stream[3:]:
        sa, sb = a.observe(batch), b_.observe(batch)
        assert sa == sb
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b_.model.parameters()))


def test_augment_in_the_config_and_its_errors():
    cfg = from_dict({"train": {"augment": "crop_flip"}, "learner": {"name": "er"}})
    assert cfg.train["augment"] == "crop_flip"
    learner = build_learner(cfg.learner, {"kind": "cnn", "channels": [4], "hidden": 8}, input_shape=SHAPE, n_classes=3,
                            seed=0, train=cfg.train)
    assert learner.augment == "crop_flip"
    assert override(from_dict({}), augment="crop").train["augment"] == "crop"
    with pytest.raises(ConfigError, match=r"\[train\] augment must be one of 'none', 'crop_flip'"):
        from_dict({"train": {"augment": "jitter"}})
    with pytest.raises(ConfigError, match=r"\[learner\] augment: data augmentation is set in one place, \[train\] augment"):
        from_dict({"learner": {"name": "er", "augment": "crop_flip"}})
    with pytest.raises(ConfigError, match=r"needs image inputs \(C, H, W\), but the stream's inputs have shape \(12,\)"):
        build_learner(cfg.learner, {"kind": "mlp", "hidden": [8]}, input_shape=(12,), n_classes=3, seed=0, train=cfg.train)
    with pytest.raises(ConfigError, match="agem: this method does not apply data augmentation"):
        make_learner("agem", cnn(SHAPE, 3, channels=(4,), hidden=8, seed=0), augment="crop_flip")
