"""Networks. Parameters are initialised from an explicit ``torch.Generator``; building a network
never touches the global random state.

Examples
--------
>>> net = mlp((784,), 10, hidden=(256, 256), seed=0)
>>> net(torch.zeros(2, 784)).shape, net.features(torch.zeros(2, 784)).shape
(torch.Size([2, 10]), torch.Size([2, 256]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lifelong.errors import ConfigError
from lifelong.registry import Registry


class Net(nn.Module):
    """A feature extractor ``body`` followed by a linear ``head``; ``features`` exposes h(x)."""

    def __init__(self, body: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear/Conv initialisation, drawn from ``generator``."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def has_batch_statistics(model: nn.Module) -> bool:
    """True when a layer of ``model`` normalises with batch statistics (BatchNorm), so that a
    sample's output depends on the other samples of its forward call."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _materialise(net: nn.Module, seed: int) -> nn.Module:
    net = net.to_empty(device="cpu")
    init_parameters(net, torch.Generator().manual_seed(int(seed)))
    return net


def mlp(input_shape: Sequence[int], n_classes: int, *, hidden: Sequence[int] = (256, 256), seed: int = 0) -> Net:
    """Multi-layer perceptron on flattened inputs, ReLU between layers."""
    if not hidden or any(int(h) <= 0 for h in hidden):
        raise ConfigError(f"model.hidden must be a non-empty list of positive sizes, got {list(hidden)}")
    with torch.device("meta"):
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        net = Net(nn.Sequential(*layers), nn.Linear(width, n_classes))
    return _materialise(net, seed)


def cnn(input_shape: Sequence[int], n_classes: int, *, channels: Sequence[int] = (32, 64), hidden: int = 256, seed: int = 0) -> Net:
    """A small ConvNet (conv-ReLU-maxpool blocks, then one hidden layer) for image inputs (C, H, W)."""
    if len(input_shape) != 3:
        raise ConfigError(f"model 'cnn' needs image inputs (C, H, W), got shape {tuple(input_shape)}; use 'mlp'")
    c, h, w = input_shape
    with torch.device("meta"):
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, int(ch), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = int(ch), h // 2, w // 2
        layers += [nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU()]
        net = Net(nn.Sequential(*layers), nn.Linear(hidden, n_classes))
    return _materialise(net, seed)


MODELS: Registry = Registry("model", {"mlp": mlp, "cnn": cnn})


def build_model(kind: str, input_shape: Sequence[int], n_classes: int, *, seed: int, **options: object) -> Net:
    if kind not in MODELS:
        raise ConfigError(f"unknown model {kind!r}; choose one of {sorted(MODELS)}")
    try:
        return MODELS[kind](input_shape, n_classes, seed=seed, **options)  # type: ignore[arg-type]
    except TypeError as e:
        raise ConfigError(f"bad option for model {kind!r}: {e}") from None
