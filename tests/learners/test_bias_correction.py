"""Mechanism tests for the class-incremental bias-correction methods of issue 15: LUCIR's cosine
head, margin ranking loss and less-forget weight (hand cases), BiC's bias layer (only the new
classes' logits, fitted on the held-out split) and WA's weight aligning and clipping. Each fails
when the method's defining step is removed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lifelong.data import Batch
from lifelong.learn.methods.bic import BiC
from lifelong.learn.methods.lucir import LUCIR, cosine_scores, margin_ranking
from lifelong.learn.methods.wa import WA
from lifelong.learn.nets import build_model, mlp


def blobs(classes: list[int], n: int, seed: int) -> Batch:
    """``n`` samples per class in 6 dimensions, each class around its own corner."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in classes:
        centre = torch.zeros(6)
        centre[c] = 3.0
        xs.append(centre + torch.randn(n, 6, generator=g))
        ys.append(torch.full((n,), c, dtype=torch.int64))
    perm = torch.randperm(n * len(classes), generator=g)
    return Batch(torch.cat(xs)[perm], torch.cat(ys)[perm])


def train_chunks(learner, chunks: list[list[int]], *, n: int = 40, epochs: int = 3, batch: int = 10) -> None:
    for i, classes in enumerate(chunks):
        data = blobs(classes, n, seed=i)
        for _ in range(epochs):
            for s in range(0, len(data), batch):
                learner.observe(Batch(data.x[s:s + batch], data.y[s:s + batch]))
        learner.end_chunk()


# -- LUCIR ------------------------------------------------------------------------------------------
def test_lucir_cosine_scores_and_margin_ranking_on_a_hand_case():
    f = torch.tensor([[3.0, 4.0]])  # normalised: (0.6, 0.8)
    w = torch.tensor([[10.0, 0.0], [0.0, 0.5], [1.0, 1.0]])  # norms 10, 0.5, sqrt 2
    cos = cosine_scores(f, w)
    assert torch.allclose(cos, torch.tensor([[0.6, 0.8, 1.4 / math.sqrt(2)]]))
    # truth class 0 (old), negatives 1 and 2 (new): the two hardest are both; margin 0.5
    hinge = F.relu(0.5 - 0.6 + torch.tensor([0.8, 1.4 / math.sqrt(2)])).mean()
    loss = margin_ranking(cos, torch.tensor([0]), torch.tensor([False, True, True]), margin=0.5, k=2)
    assert torch.isclose(loss, hinge)
    # k = 1 keeps only the hardest negative (class 2, cosine 0.99)
    loss1 = margin_ranking(cos, torch.tensor([0]), torch.tensor([False, True, True]), margin=0.5, k=1)
    assert torch.isclose(loss1, torch.tensor(0.5 - 0.6 + 1.4 / math.sqrt(2)))
    # an old class is never its own negative, and a satisfied margin costs nothing
    assert float(margin_ranking(cos, torch.tensor([2]), torch.tensor([True, False, False]), margin=0.1, k=1)) == 0.0


def test_lucir_scores_ignore_the_weight_norms_and_use_the_learnable_scale():
    learner = LUCIR(mlp((6,), 4, hidden=(16,), seed=0), mem_size=40, seed=0)
    x = blobs([0, 1, 2, 3], 5, seed=3).x
    with torch.no_grad():
        learner.scale.fill_(7.0)
        expected = 7.0 * cosine_scores(learner.model.features(x), learner.model.head.weight)
        before = learner.predict(x)
        learner.model.head.weight[2] *= 50.0  # a class with a much larger weight norm ...
        learner.model.head.bias.add_(100.0)
    assert torch.allclose(before, expected, atol=1e-5)
    assert torch.allclose(learner.predict(x), before, atol=1e-5)  # ... scores the same
    assert any(p is learner.scale for g in learner.opt.param_groups for p in g["params"])


def test_lucir_less_forget_weight_and_feature_distillation():
    learner = LUCIR(mlp((6,), 6, hidden=(16,), seed=0), mem_size=60, seed=0, lambda_base=5.0)
    train_chunks(learner, [[0, 1, 2, 3]], epochs=1)
    active = torch.tensor([True] * 6)
    assert math.isclose(learner.less_forget_weight(active), 5.0 * math.sqrt(4 / 2))
    # the less-forget term is what holds the features: with it the features stay closer to the teacher's
    drift = {}
    for lam in (0.0, 50.0):
        lr = LUCIR(mlp((6,), 6, hidden=(16,), seed=0), mem_size=60, seed=0, lambda_base=lam, margin_weight=0.0)
        train_chunks(lr, [[0, 1, 2, 3], [4, 5]])
        x = blobs([0, 1, 2, 3], 20, seed=0).x
        first = LUCIR(mlp((6,), 6, hidden=(16,), seed=0), mem_size=60, seed=0)
        train_chunks(first, [[0, 1, 2, 3]])
        with torch.no_grad():
            drift[lam] = float(1 - F.cosine_similarity(lr.model.features(x), first.model.features(x)).mean())
    assert drift[50.0] < 0.5 * drift[0.0]


# -- BiC --------------------------------------------------------------------------------------------
def test_bic_bias_layer_touches_only_the_new_classes_and_is_fitted_on_the_held_out_split():
    learner = BiC(mlp((6,), 6, hidden=(16,), seed=0), mem_size=60, val_fraction=0.2, seed=0)
    fitted_on = []
    fit = learner.fit_bias
    learner.fit_bias = lambda val: fitted_on.append(val) or fit(val)
    trained = []
    mask = learner.training_mask
    learner.training_mask = lambda b: (lambda k: trained.append(b.x[k]) or k)(mask(b))
    train_chunks(learner, [[0, 1, 2, 3], [4, 5]])
    assert len(fitted_on) == 1  # only at the boundary with old classes
    val = fitted_on[0]
    # balanced over every class seen, and held out: no validation sample was ever trained on
    assert torch.bincount(val.y, minlength=6).tolist() == [2] * 6
    seen = torch.cat(trained)
    assert not any(bool((seen == v).all(1).any()) for v in val.x)
    assert learner.corrected and (learner.alpha, learner.beta) != (1.0, 0.0)
    x = blobs([0, 1, 2, 3, 4, 5], 5, seed=9).x
    with torch.no_grad():
        learner.model.eval()
        raw = learner.model(x)
    out = learner.predict(x)
    assert torch.equal(out[:, :4], raw[:, :4])  # old classes' logits untouched
    assert torch.allclose(out[:, 4:], learner.alpha * raw[:, 4:] + learner.beta)
    assert not torch.allclose(out[:, 4:], raw[:, 4:])
    # the fitted layer lowers the validation loss below the identity's
    with torch.no_grad():
        z = learner.model(val.x)
    identity = F.cross_entropy(z, val.y)
    assert F.cross_entropy(learner.bias_layer(z, learner.alpha, learner.beta), val.y) < identity
    learner.observe(blobs([4, 5], 2, seed=5))  # training resumes: the prediction is the network's again
    assert not learner.corrected


def test_bic_distils_from_the_corrected_teacher():
    learner = BiC(mlp((6,), 6, hidden=(16,), seed=0), mem_size=60, val_fraction=0.2, seed=0)
    train_chunks(learner, [[0, 1], [2, 3]])
    x = blobs([0, 1, 2, 3], 3, seed=4).x
    with torch.no_grad():
        raw = learner.teacher(x)
    t = learner.teacher_logits(x)
    assert torch.allclose(t[:, 2:4], learner.alpha * raw[:, 2:4] + learner.beta)
    assert torch.equal(t[:, :2], raw[:, :2])


# -- WA ---------------------------------------------------------------------------------------------
def test_wa_aligns_the_new_classes_norms_to_the_old_ones_and_clips_the_head():
    learner = WA(mlp((6,), 6, hidden=(16,), seed=0), mem_size=60, seed=0)
    train_chunks(learner, [[0, 1, 2, 3]])
    assert (learner.model.head.weight >= 0).all()  # clipped after every step
    before = {}
    end = learner.end_chunk
    def spy():
        before["w"] = learner.model.head.weight.detach().clone()
        end()
    learner.end_chunk = spy
    train_chunks(learner, [[4, 5]])
    assert (learner.model.head.weight >= 0).all()
    norms = learner.model.head.weight.detach().norm(dim=1)
    old_norms = before["w"].norm(dim=1)
    assert not math.isclose(float(old_norms[:4].mean()), float(old_norms[4:].mean()), rel_tol=1e-3)
    assert math.isclose(float(norms[:4].mean()), float(norms[4:].mean()), rel_tol=1e-5)
    assert torch.equal(learner.model.head.weight[:4], before["w"][:4])  # old classes' weights unchanged
    assert math.isclose(learner.gamma, float(old_norms[:4].mean() / old_norms[4:].mean()), rel_tol=1e-5)


# -- backbones --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,options", [("cnn", {"channels": (4, 8), "hidden": 16}), ("resnet18", {"nf": 2}),
                                          ("resnet32", {"nf": 2})])
@pytest.mark.parametrize("cls", [LUCIR, BiC, WA])
def test_the_bias_correction_methods_run_on_the_conv_and_resnet_backbones(cls, kind, options):
    g = torch.Generator().manual_seed(0)
    learner = cls(build_model(kind, (1, 8, 8), 4, seed=0, **options), mem_size=16, seed=0)
    for chunk in ([0, 1], [2, 3]):
        for _ in range(3):
            y = torch.tensor(chunk * 4)
            x = torch.randn(8, 1, 8, 8, generator=g) + y[:, None, None, None].float()
            stats = learner.observe(Batch(x, y))
            assert stats.n == 8 and math.isfinite(stats.loss_sum)
        learner.end_chunk()
    out = learner.predict(torch.randn(5, 1, 8, 8, generator=g))
    assert out.shape == (5, 4) and torch.isfinite(out).all()
    assert torch.bincount(learner.exemplars.all().y, minlength=4).tolist()[:4] == [len(learner.exemplars) // 4] * 4
