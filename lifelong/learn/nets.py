"""Networks. Parameters are initialised from an explicit ``torch.Generator``; building a network
never touches the global random state.

Every built-in network is a :class:`Net`: a feature extractor ``body`` and a linear ``head``, with
``features(x)`` giving the body's output (the methods that work in feature space, iCaRL and the
error memory, call it). Built in: ``mlp``, ``cnn``, the reduced ResNet-18 of GEM/DER
(``resnet18``, width ``nf``) and the CIFAR ResNet-32 (``resnet32``). A user's own network comes
from the Python API (pass the module to a learner) or from a config (``[model] factory =
"pkg.mod:fn"``, see :func:`load_factory`); :func:`check_model` says what it lacks.

Examples
--------
>>> net = mlp((784,), 10, hidden=(256, 256), seed=0)
>>> net(torch.zeros(2, 784)).shape, net.features(torch.zeros(2, 784)).shape
(torch.Size([2, 10]), torch.Size([2, 256]))
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
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
    """PyTorch's default Linear/Conv initialisation, drawn from ``generator``; BatchNorm layers get
    weight 1, bias 0 and fresh running statistics (as a newly built one has)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()  # weight 1, bias 0, running mean 0 and var 1, no batches tracked
        elif isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def has_batch_statistics(model: nn.Module) -> bool:
    """True when a layer of ``model`` normalises with batch statistics (BatchNorm), so that a
    sample's output depends on the other samples of its forward call."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a module without either."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


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


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a residual connection (He et al. 2016). ``shortcut`` is ``"conv"``
    (1x1 conv + BN where the shape changes, as in the GEM/DER ResNet-18) or ``"pad"`` (He et al.'s
    CIFAR option A: subsample and zero-pad the channels, no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "conv") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.pad = stride, 0
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "conv":
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(planes))
            else:
                self.pad = planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad:  # option A: (B, C, H, W) -> (B, C + pad, H/s, W/s)
            short = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        else:
            short = self.shortcut(x)
        return F.relu(out + short)


class ResNetBody(nn.Module):
    """Stem (3x3 conv, BN, ReLU; no max-pool), stages of :class:`BasicBlock`, global average pool.
    ``(B, C, H, W) -> (B, widths[-1])``."""

    def __init__(self, in_channels: int, stem: int, widths: Sequence[int], blocks: Sequence[int], shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        layers: list[nn.Module] = []
        planes = stem
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(planes, width, stride=2 if (i > 0 and j == 0) else 1, shortcut=shortcut))
                planes = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.pool(out).flatten(1)


def _image_shape(kind: str, input_shape: Sequence[int], min_side: int = 8) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(
            f"model {kind!r} needs image inputs (C, H, W), got shape {tuple(input_shape)}; load the dataset without "
            f"flattening (e.g. flatten = false in [dataset]) or use model 'mlp'"
        )
    c, h, w = (int(v) for v in input_shape)
    if h < min_side or w < min_side:
        raise ConfigError(f"model {kind!r} needs images of at least {min_side}x{min_side}, got {h}x{w}; use 'cnn' or 'mlp'")
    return c, h, w


def resnet18(input_shape: Sequence[int], n_classes: int, *, nf: int | None = None, seed: int = 0) -> Net:
    """The reduced ResNet-18 of GEM (Lopez-Paz & Ranzato 2017) and DER (Buzzega et al. 2020).

    Four stages of two :class:`BasicBlock` each, widths ``nf, 2nf, 4nf, 8nf``, a 3x3 stride-1
    stem without max-pool, global average pooling, and a linear head on the ``8·nf`` features.
    ``nf = 20`` is GEM's MNIST-size network (about 1.1 M parameters), ``nf = 64`` DER's CIFAR one
    (11.2 M); the default (``None``) is 20 for one-channel inputs and 64 for colour ones. Any
    channel count and any image of at least 8x8 (1x28x28, 3x32x32, 3x64x64).

    Examples
    --------
    >>> net = resnet18((1, 28, 28), 10, nf=4, seed=0)
    >>> net(torch.zeros(2, 1, 28, 28)).shape, net.features(torch.zeros(2, 1, 28, 28)).shape
    (torch.Size([2, 10]), torch.Size([2, 32]))
    """
    c, _, _ = _image_shape("resnet18", input_shape)
    if nf is None:
        nf = 20 if c == 1 else 64
    if int(nf) <= 0:
        raise ConfigError(f"model 'resnet18': nf must be a positive width, got {nf}")
    nf = int(nf)
    with torch.device("meta"):
        body = ResNetBody(c, nf, (nf, 2 * nf, 4 * nf, 8 * nf), (2, 2, 2, 2), shortcut="conv")
        net = Net(body, nn.Linear(8 * nf, n_classes))
    return _materialise(net, seed)


def resnet32(input_shape: Sequence[int], n_classes: int, *, nf: int = 16, seed: int = 0) -> Net:
    """The CIFAR ResNet-32 of He et al. 2016 (used for CIFAR-100 by iCaRL, PODNet and others).

    A 3x3 stem of ``nf`` channels, three stages of five :class:`BasicBlock` each (widths ``nf, 2nf,
    4nf``; option-A zero-padding shortcuts), global average pooling and a linear head on ``4·nf``
    features (0.46 M parameters at ``nf = 16``).

    Examples
    --------
    >>> net = resnet32((3, 32, 32), 100, nf=4, seed=0)
    >>> net(torch.zeros(2, 3, 32, 32)).shape, net.features(torch.zeros(2, 3, 32, 32)).shape
    (torch.Size([2, 100]), torch.Size([2, 16]))
    """
    c, _, _ = _image_shape("resnet32", input_shape)
    if int(nf) <= 0 or int(nf) % 2:
        raise ConfigError(f"model 'resnet32': nf must be a positive even width, got {nf}")
    nf = int(nf)
    with torch.device("meta"):
        body = ResNetBody(c, nf, (nf, 2 * nf, 4 * nf), (5, 5, 5), shortcut="pad")
        net = Net(body, nn.Linear(4 * nf, n_classes))
    return _materialise(net, seed)


MODELS: Registry = Registry("model", {"mlp": mlp, "cnn": cnn, "resnet18": resnet18, "resnet32": resnet32})


def build_model(kind: str, input_shape: Sequence[int], n_classes: int, *, seed: int, **options: object) -> Net:
    if kind not in MODELS:
        raise ConfigError(f"unknown model {kind!r}; choose one of {sorted(MODELS)}")
    try:
        return MODELS[kind](input_shape, n_classes, seed=seed, **options)  # type: ignore[arg-type]
    except TypeError as e:
        raise ConfigError(f"bad option for model {kind!r}: {e}") from None


# -- a user's own network -----------------------------------------------------------------------
#: What the run passes to a model factory, by name, where the factory's signature takes it.
FACTORY_FILLED = ("input_shape", "n_classes", "seed")


def load_factory(path: str) -> Callable[..., nn.Module]:
    """The callable named by ``"package.module:function"`` (``[model] factory``).

    Raises :class:`ConfigError` when the path is malformed, the module does not import, or the
    name is missing or not callable.

    Examples
    --------
    >>> load_factory("lifelong.learn.nets:mlp") is mlp
    True
    >>> load_factory("lifelong.learn.nets.mlp")
    Traceback (most recent call last):
    ...
    lifelong.errors.ConfigError: [model] factory must look like "package.module:function", got 'lifelong.learn.nets.mlp'
    """
    if not isinstance(path, str) or path.count(":") != 1 or not all(path.split(":")):
        raise ConfigError(f'[model] factory must look like "package.module:function", got {path!r}')
    module_name, attr = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"[model] factory {path!r}: cannot import module {module_name!r} ({e}); check the name, "
                          f"and that the package is installed or on PYTHONPATH") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ConfigError(f"[model] factory {path!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ConfigError(f"[model] factory {path!r}: {attr!r} is a {type(fn).__name__}, not a function")
    return fn


def factory_takes_any(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` takes ``**kwargs`` (its options are then not checked by name)."""
    try:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True


def call_factory(fn: Callable[..., nn.Module], input_shape: Sequence[int], n_classes: int, *, seed: int,
                 **options: object) -> nn.Module:
    """Build a user's network: ``fn(input_shape=..., n_classes=..., seed=..., **options)``, each of
    the first three passed only when ``fn``'s signature takes it.

    A factory that takes ``seed`` seeds its own initialisation (the reproducible way). One that
    does not is called inside :func:`torch.random.fork_rng` with the global generator set to
    ``seed``: its initial weights are still a function of the run's seed, and the caller's global
    random state is restored afterwards.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_all = factory_takes_any(fn)
    filled = {"input_shape": tuple(input_shape), "n_classes": int(n_classes), "seed": int(seed)}
    kwargs = {k: v for k, v in filled.items() if takes_all or k in params}
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        if "seed" in kwargs:
            net = fn(**kwargs, **options)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                net = fn(**kwargs, **options)
    except TypeError as e:
        raise ConfigError(f"[model] factory {name}: {e}; it is called with keyword arguments "
                          f"{sorted([*kwargs, *options])}") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"[model] factory {name} returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def check_model(model: object, input_shape: Sequence[int], n_classes: int, *, needs_features: bool = False,
                who: str = "the model") -> None:
    """Check that ``model`` is what the learners need, before any training.

    It must be an :class:`~torch.nn.Module` with a linear ``head`` (its ``out_features`` is the
    number of classes and its input the features), map a ``(2, *input_shape)`` batch to ``(2,
    n_classes)`` logits and, where ``needs_features``, have a ``features(x)`` method giving ``(2,
    D)``. The trial forward pass runs in eval mode without gradients (BatchNorm statistics are not
    touched). Raises :class:`ConfigError` saying what to add or change.

    Examples
    --------
    >>> check_model(nn.Sequential(nn.Linear(4, 3)), (4,), 3)
    Traceback (most recent call last):
    ...
    lifelong.errors.ConfigError: the model (Sequential) has no linear `head`: the learners read the number of classes from it and methods replace or grow it. Give the module a `head = nn.Linear(n_features, 3)` attribute, used as its last layer (lifelong.learn.nets.Net(body, head) does this)
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{who} must be a torch.nn.Module, got {type(model).__name__}")
    kind = type(model).__name__
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ConfigError(
            f"{who} ({kind}) has no linear `head`: the learners read the number of classes from it and methods "
            f"replace or grow it. Give the module a `head = nn.Linear(n_features, {n_classes})` attribute, used as "
            f"its last layer (lifelong.learn.nets.Net(body, head) does this)"
        )
    if head.out_features != n_classes:
        raise ConfigError(f"{who} ({kind}): head.out_features is {head.out_features}, but the stream has "
                          f"{n_classes} classes; build the head as nn.Linear(n_features, n_classes)")
    features = getattr(model, "features", None)
    if needs_features and not callable(features):
        raise ConfigError(f"{who} ({kind}) has no `features(x)` method, which this learner needs (it works on the "
                          f"penultimate features); add `def features(self, x)` returning the (B, D) input of the head")
    params = next(iter(model.parameters()), None)
    device = params.device if params is not None else torch.device("cpu")
    x = torch.zeros((2, *input_shape), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
            h = features(x) if needs_features else None
    except Exception as e:  # a shape mismatch shows as RuntimeError, a bad layer as anything
        raise ConfigError(f"{who} ({kind}) fails on a batch of the stream's inputs, shape (B, "
                          f"{', '.join(map(str, input_shape))}): {type(e).__name__}: {e}. Build it for inputs of "
                          f"shape {tuple(input_shape)}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, Tensor) or tuple(out.shape) != (2, n_classes):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(f"{who} ({kind}) must return (B, {n_classes}) logits, got {got} for a batch of 2")
    if h is not None and (not isinstance(h, Tensor) or h.ndim < 2 or h.shape[0] != 2):
        raise ConfigError(f"{who} ({kind}): features(x) must return a (B, D) tensor, got "
                          f"{tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__}")
