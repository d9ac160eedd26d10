"""Backbones: the reduced ResNet-18 (GEM/DER), ResNet-32, a user's own network (Python API and
``[model] factory``), the checks that say what a module lacks, and BatchNorm in the methods."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.experiments.config import from_dict, override
from lifelong.experiments.runner import build_learner
from lifelong.learn.methods import make_learner
from lifelong.learn.methods.cls_er import CLSER
from lifelong.learn.methods.der import DERPP
from lifelong.learn.methods.er import ER
from lifelong.learn.nets import BasicBlock, check_model, resnet18, resnet32


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def image_batches(n: int, shape=(3, 32, 32), n_classes=4, b=4, seed=1) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.rand(b, *shape, generator=g), torch.randint(n_classes, (b,), generator=g)) for _ in range(n)]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_reduced_resnet18_takes_mnist_and_cifar_sized_images(shape):
    net = resnet18(shape, 10, nf=4, seed=0)
    x = torch.rand(3, *shape)
    assert net(x).shape == (3, 10)
    assert net.features(x).shape == (3, 32)  # 8 * nf
    assert torch.equal(net.head(net.features(x)), net(x))
    assert net.body.conv1.in_channels == shape[0]


def test_resnet_sizes_are_the_papers():
    # GEM's nf=20 network for MNIST-size inputs (1.09 M) and DER's nf=64 CIFAR network (11.17 M)
    assert n_params(resnet18((1, 28, 28), 10, nf=20)) == 1_094_390
    assert n_params(resnet18((3, 32, 32), 10, nf=64)) == 11_173_962
    r32 = resnet32((3, 32, 32), 100)
    assert sum(isinstance(m, BasicBlock) for m in r32.modules()) == 15  # 3 stages x 5 blocks: 6n + 2 = 32 layers
    assert n_params(r32) == 470_004 and r32.features(torch.zeros(2, 3, 32, 32)).shape == (2, 64)


def test_resnets_are_seeded_and_leave_the_global_random_state_alone():
    before = torch.get_rng_state()
    a, b, c = resnet18((3, 32, 32), 10, nf=4, seed=0), resnet18((3, 32, 32), 10, nf=4, seed=0), resnet18((3, 32, 32), 10, nf=4, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["body.conv1.weight"], sc["body.conv1.weight"])
    # BatchNorm built on the meta device is materialised as a fresh layer: weight 1, bias 0, stats 0/1
    for m in a.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
            assert torch.equal(m.running_var, torch.ones_like(m.running_var)) and int(m.num_batches_tracked) == 0


@pytest.mark.parametrize("build", [resnet18, resnet32])
def test_resnets_refuse_flat_inputs_and_say_what_to_do(build):
    with pytest.raises(ConfigError, match=r"needs image inputs \(C, H, W\), got shape \(784,\).*flatten = false"):
        build((784,), 10)
    with pytest.raises(ConfigError, match="at least 8x8"):
        build((1, 4, 4), 10)


def test_model_by_name_in_config_and_flag():
    cfg = from_dict({"model": {"name": "resnet18", "nf": 20}})
    assert cfg.model == {"kind": "resnet18", "nf": 20}
    assert from_dict({"model": {"kind": "resnet32"}}).model == {"kind": "resnet32"}
    with pytest.raises(ConfigError, match="unknown model 'resnet50'; choose one of: cnn, mlp, resnet18, resnet32"):
        from_dict({"model": {"name": "resnet50"}})
    with pytest.raises(ConfigError, match="both kind = 'mlp' and name = 'cnn'"):
        from_dict({"model": {"kind": "mlp", "name": "cnn"}})
    with pytest.raises(ConfigError, match="nf must be an integer"):
        from_dict({"model": {"name": "resnet18", "nf": 2.5}})
    notes = []
    out = override(from_dict({"model": {"kind": "cnn", "channels": [8]}}), model="resnet18", note=notes.append)
    assert out.model == {"kind": "resnet18"} and notes == ["--model resnet18 replaces cnn: dropped its [model] options channels"]
    assert override(from_dict({}), model="resnet18", note=notes.append).model == {"kind": "resnet18"}
    assert len(notes) == 1  # replacing the default MLP drops nothing the user set


USER_NETS = '''
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self, d, n_classes, generator):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(d, 8), nn.ReLU())
        self.head = nn.Linear(8, n_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))

def seeded(input_shape, n_classes, *, seed, width: int = 8):
    import math
    return Tiny(math.prod(input_shape), n_classes, torch.Generator().manual_seed(seed))

def unseeded(input_shape, n_classes):
    import math
    net = nn.Module()
    net.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 8))
    net.head = nn.Linear(8, n_classes)
    net.forward = lambda x: net.head(net.body(x))
    return net

def headless(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, n_classes))

class NoFeatures(nn.Module):
    def __init__(self, d, n_classes):
        super().__init__()
        self.head = nn.Linear(d, n_classes)
    def forward(self, x):
        return self.head(x.flatten(1))

def no_features(input_shape, n_classes):
    import math
    return NoFeatures(math.prod(input_shape), n_classes)

def fixed_width(n_classes):
    return NoFeatures(5, n_classes)

NOT_CALLABLE = 3
'''


@pytest.fixture
def user_nets(tmp_path, monkeypatch):
    (tmp_path / "user_nets_mod.py").write_text(USER_NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_nets_mod"


def build(model: dict, learner: str = "er", shape=(12,), n_classes=4):
    cfg = from_dict({"model": model, "learner": {"name": learner}})
    return build_learner(cfg.learner, cfg.model, input_shape=shape, n_classes=n_classes, seed=0)


def test_factory_builds_a_users_network_seeded_by_the_run(user_nets):
    a = build({"factory": f"{user_nets}:seeded", "width": 8})
    b = build({"factory": f"{user_nets}:seeded"})
    assert type(a.model).__name__ == "Tiny" and a.n_classes == 4
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    before = torch.get_rng_state()
    c, d = build({"factory": f"{user_nets}:unseeded"}), build({"factory": f"{user_nets}:unseeded"})
    assert torch.equal(torch.get_rng_state(), before)  # the factory ran on a forked, seeded generator
    assert all(torch.equal(p, q) for p, q in zip(c.model.parameters(), d.model.parameters()))
    with pytest.raises(ConfigError, match="has no option 'depth'"):
        from_dict({"model": {"factory": f"{user_nets}:seeded", "depth": 3}})
    with pytest.raises(ConfigError, match="both factory and kind"):
        from_dict({"model": {"factory": f"{user_nets}:seeded", "kind": "mlp"}})


@pytest.mark.parametrize("path, message", [
    ("user_nets_mod.seeded", 'must look like "package.module:function"'),
    ("no_such_pkg_xyz:build", "cannot import module 'no_such_pkg_xyz'"),
    ("user_nets_mod:missing", "has no attribute 'missing'"),
    ("user_nets_mod:NOT_CALLABLE", "is a int, not a function"),
])
def test_bad_factory_paths_are_config_errors(user_nets, path, message):
    with pytest.raises(ConfigError, match=message):
        from_dict({"model": {"factory": path}})


def test_a_module_lacking_what_a_method_needs_is_refused_with_the_fix(user_nets):
    with pytest.raises(ConfigError, match=r"has no linear `head`.*head = nn.Linear\(n_features, 4\)"):
        build({"factory": f"{user_nets}:headless"})
    with pytest.raises(ConfigError, match=r"no `features\(x\)` method, which this learner needs"):
        build({"factory": f"{user_nets}:no_features"}, learner="icarl")
    build({"factory": f"{user_nets}:no_features"}, learner="er")  # ER does not need features
    with pytest.raises(ConfigError, match=r"fails on a batch of the stream's inputs, shape \(B, 12\)"):
        build({"factory": f"{user_nets}:fixed_width"})
    with pytest.raises(ConfigError, match="has no linear `head`"):  # the Python API says the same
        make_learner("er", nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(ConfigError, match=r"no `features\(x\)` method"):
        make_learner("icarl", _no_features())


def _no_features() -> nn.Module:
    m = nn.Module()
    m.head = nn.Linear(4, 3)
    return m


def test_check_model_runs_its_trial_pass_in_eval_mode():
    net = resnet18((3, 32, 32), 5, nf=2, seed=0)
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    check_model(net, (3, 32, 32), 5, needs_features=True)
    assert net.training and all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())
    with pytest.raises(ConfigError, match="head.out_features is 5, but the stream has 7 classes"):
        check_model(net, (3, 32, 32), 7)


def test_cli_bad_model_exits_2_without_traceback(tmp_path):
    import subprocess

    from conftest import cli, cli_env

    (tmp_path / "c.toml").write_text(textwrap.dedent("""
        [dataset]
        name = "blobs"
        [learner]
        name = "er"
    """))
    for args, message in ((["--model", "resnet99"], "unknown model 'resnet99'"),
                          (["--model", "resnet18"], "needs image inputs")):
        proc = subprocess.run(cli("run", "c.toml", *args), cwd=tmp_path, env=cli_env(), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


# -- BatchNorm in the methods --------------------------------------------------------------------

@pytest.mark.parametrize("cls", [ER, DERPP])
def test_replay_with_batchnorm_forwards_each_batch_alone(cls):
    learner = cls(resnet18((3, 32, 32), 4, nf=2, seed=0), mem_size=8, seed=0)
    assert not learner.fused_forward
    calls = []
    learner.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    for b in image_batches(3):
        learner.observe(b)
    # step 1: incoming only; then incoming (4) and each replay batch (4 samples each) apart
    per_step = 1 + (2 if cls is DERPP else 1)
    assert calls == [4] + [4] * per_step * 2


def test_predict_uses_running_statistics_and_leaves_them_unchanged():
    learner = ER(resnet18((3, 32, 32), 4, nf=2, seed=0), mem_size=8, seed=0)
    for b in image_batches(2):
        learner.observe(b)
    bn = learner.model.body.bn1
    mean = bn.running_mean.clone()
    x = image_batches(1, seed=5)[0].x
    one = learner.predict(x[:1])
    assert torch.equal(bn.running_mean, mean) and learner.model.training
    assert torch.allclose(learner.predict(x)[:1], one, atol=1e-5)  # eval mode: no dependence on the batch


def test_cls_er_weight_averages_carry_the_batchnorm_statistics():
    learner = CLSER(resnet18((3, 32, 32), 4, nf=2, seed=0), mem_size=8, seed=0, stable_update_freq=1.0)
    for b in image_batches(4):
        learner.observe(b)
    work = dict(learner.model.named_buffers())
    for ema in (learner.stable, learner.plastic):
        assert not ema.training
        buffers = dict(ema.named_buffers())
        assert not torch.equal(buffers["body.bn1.running_mean"], torch.zeros_like(work["body.bn1.running_mean"]))
        assert int(buffers["body.bn1.num_batches_tracked"]) == int(work["body.bn1.num_batches_tracked"])
    # the stable model's eval-mode prediction is a function of its averaged weights and statistics
    x = image_batches(1, seed=7)[0].x
    assert torch.isfinite(learner.predict(x)).all()
