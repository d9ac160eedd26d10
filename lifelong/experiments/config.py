"""Run configurations: TOML files to frozen dataclasses, with validation and flag overrides.

A run config looks like::

    name = "split-fmnist-er"
    seeds = [0, 1, 2]

    [dataset]
    name = "fashion_mnist"        # see `lifelong list`
    # data_dir = "/path/to/idx"   # optional; download = true fetches and verifies

    [scenario]
    name = "class_incremental"
    n_chunks = 5

    [model]
    kind = "mlp"                  # or name = ...: mlp, cnn, resnet18 (nf = 20 | 64), resnet32
    hidden = [256, 256]           # or factory = "my_pkg.nets:build" for your own nn.Module

    [train]                       # optional: epochs, batch_size and lr left out come from
    epochs = 1                    # the dataset's and the scenario's protocol
    batch_size = 32               # (lifelong.experiments.protocol)
    lr = 0.05
    eval_every = 0
    device = "auto"               # cpu, cuda, cuda:N, mps; auto picks an accelerator if present
    augment = "none"              # "crop_flip": random crop (padding 4) + horizontal flip
    precision = "fp32"            # "bf16" (CPU or GPU) or "fp16" (CUDA) autocast in the step
    compile = false               # true: torch.compile the step's forward pass

    [track]                       # optional, off by default (lifelong.experiments.track)
    tensorboard = "runs/tb"       # needs pip install 'lifelong[tensorboard]'
    mlflow = "sqlite:///mlflow.db"  # a tracking URI; needs pip install 'lifelong[mlflow]'

    [learner]
    name = "er"
    mem_size = 500                # any hyper-parameter the learner accepts

Every section is checked here, before anything is built, against the signature of what it will be
passed to (:mod:`lifelong.options`): ``[learner]`` against the learner's hyper-parameters,
``[scenario]`` against the scenario's builder, ``[dataset]`` against the loader, ``[model]``
against the model builder. Names and types must match (``mem_size = 2.5`` is an error; an int given
for a float option becomes a float). The learning rate and momentum are set in one place,
``[train]``; the run passes them to the learner. Unknown sections or keys are refused with
:class:`~lifelong.errors.ConfigError`. ``plugins = ["my_pkg.module"]`` imports those modules
before any name is looked up, so a plugin's learner, scenario, dataset or model validates like
a built-in one.

The run, sweep, tune and ledger files all go through :func:`from_dict`; the serve config checks its
``[learner]`` and ``[model]`` with :func:`check_learner_section` and :func:`check_model_options`.

Examples
--------
>>> from_dict({"learner": {"name": "er", "mem_size": 2.5}})
Traceback (most recent call last):
...
lifelong.errors.ConfigError: [learner] mem_size must be an integer, got 2.5
>>> from_dict({"learner": {"name": "er", "lr": 0.1}})
Traceback (most recent call last):
...
lifelong.errors.ConfigError: [learner] lr: the learning rate is set in one place, [train] lr (the run passes it to the learner); move it there
"""

from __future__ import annotations

import copy
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from lifelong.data.datasets import DATASETS, dataset_options
from lifelong.data.scenarios import SCENARIOS, scenario_options
from lifelong.device import check_device_spec
from lifelong.errors import ConfigError
from lifelong.learn.augment import AUGMENTATIONS
from lifelong.learn.base import PRECISIONS
from lifelong.learn.methods import LEARNERS, check_hyperparameters, hyperparameters
from lifelong.learn.nets import FACTORY_FILLED, MODELS, factory_takes_any, load_factory
from lifelong.options import check_options
from lifelong.plugins import load_plugins

SECTIONS = ("dataset", "scenario", "model", "train", "learner")
TOP_LEVEL = ("name", "seeds", "threads", "checkpoint", "plugins")
#: The optional ``[track]`` table: where records and final metrics are mirrored (all strings).
TRACK_KEYS = ("tensorboard", "mlflow", "experiment")
TRAIN_KEYS = {"epochs": int, "batch_size": int, "lr": float, "momentum": float, "eval_every": int, "eval_batch_size": int,
              "near_future": int, "device": str, "augment": str, "precision": str,
              "compile": bool}
#: ``[train]`` keys the run passes to the learner (when it takes them): set here and nowhere else.
TRAIN_TO_LEARNER = ("lr", "momentum", "augment")
#: Learner parameters a config may not set in ``[learner]``, and why.
LEARNER_RESERVED = {
    "lr": "the learning rate is set in one place, [train] lr (the run passes it to the learner); move it there",
    "momentum": "the momentum is set in one place, [train] momentum (the run passes it to the learner); move it there",
    "seed": "the run seeds the learner itself; set the top-level `seeds` instead",
    "augment": "data augmentation is set in one place, [train] augment (the run passes it to the learner); move it there",
    "task_classes": "task identity comes from the scenario (e.g. name = \"task_incremental\"), not from [learner]",
}
#: Scenarios that are a fixed benchmark split: the default ``[scenario]`` options do not apply.
NAMED_BENCHMARKS = ("split_cifar10", "split_cifar100", "split_tinyimagenet", "core50_ni", "core50_nc")
#: Model-builder parameters the run fills from the stream.
MODEL_FILLED = ("input_shape", "n_classes", "seed")
#: Sections that used to be accepted (and ignored), with how to do what they meant.
RETIRED_SECTIONS = {
    "reference": "a run config has no [reference] section: give the reference run (a cumulative or joint run, "
                 "for intransigence) when the report is built: `lifelong report RUN --reference REFERENCE_RUN`",
}


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    seeds: tuple[int, ...] = (0,)
    threads: int = 0  # torch threads per run; 0 leaves torch's default
    checkpoint: bool = True
    plugins: tuple[str, ...] = ()  # plugin modules imported before anything is looked up
    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "fashion_mnist"})
    scenario: dict[str, Any] = field(default_factory=lambda: {"name": "class_incremental", "n_chunks": 5})
    model: dict[str, Any] = field(default_factory=lambda: {"kind": "mlp", "hidden": [256, 256]})
    # only what the user set: the run fills the rest from the dataset's and the scenario's protocol
    # (lifelong.experiments.protocol) once the data is loaded, and writes it to config.toml
    train: dict[str, Any] = field(default_factory=dict)
    learner: dict[str, Any] = field(default_factory=lambda: {"name": "naive"})
    track: dict[str, str] = field(default_factory=dict)  # [track]: TensorBoard dir, MLflow URI; empty = off

    @property
    def learner_name(self) -> str:
        return str(self.learner["name"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        d["plugins"] = list(self.plugins)
        if not d["track"]:  # off: config.toml stays as it was before tracking existed
            del d["track"]
        return d

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _check_positive(section: str, key: str, value: Any, kind: type) -> Any:
    lowest = 0 if key in ("eval_every", "near_future") else 1
    if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < lowest):
        raise ConfigError(f"[{section}] {key} must be a positive integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key == "lr" and value == 0):
            raise ConfigError(f"[{section}] {key} must be a positive number, got {value!r}")
        value = float(value)
    return value


def check_train(section: dict[str, Any], *, keys: Any = TRAIN_KEYS, where: str = "[train]") -> dict[str, Any]:
    """A ``[train]`` table: known keys (``keys``, default every run key), positive values of the
    right type (an int given for a float becomes a float). Returns the checked table."""
    out = {}
    for k, v in section.items():
        if k not in keys:
            raise ConfigError(f"unknown key {k!r} in {where}; known keys: {sorted(keys)}")
        if k == "device":
            out[k] = check_device_spec(v)
            continue
        if k == "precision":
            if v not in PRECISIONS:
                raise ConfigError(f"[train] precision must be one of {', '.join(map(repr, PRECISIONS))}, got {v!r}")
            out[k] = v
            continue
        if k == "compile":
            if not isinstance(v, bool):
                raise ConfigError(f"[train] compile must be true or false, got {v!r}")
            out[k] = v
            continue
        if k == "augment":
            if not isinstance(v, str) or v not in AUGMENTATIONS:
                raise ConfigError(f"[train] augment must be one of {', '.join(map(repr, AUGMENTATIONS))}, got {v!r}")
            out[k] = v
            continue
        out[k] = _check_positive("train", k, v, TRAIN_KEYS[k])
    return out


def check_track(section: Any) -> dict[str, str]:
    """The ``[track]`` table: known keys, each a non-empty string. Returns it as given."""
    if not isinstance(section, dict):
        raise ConfigError(f"[track] must be a table, got {type(section).__name__}")
    for k, v in section.items():
        if k not in TRACK_KEYS:
            raise ConfigError(f"unknown key {k!r} in [track]; known keys: {list(TRACK_KEYS)} "
                              f"(tensorboard = \"DIR\", mlflow = \"URI\", experiment = \"NAME\")")
        if not isinstance(v, str) or not v:
            raise ConfigError(f"[track] {k} must be a non-empty string, got {v!r}")
    return dict(section)


def read_plugins(data: dict[str, Any]) -> tuple[str, ...]:
    """Check the top-level ``plugins`` key of a config document and import those modules (every
    config file calls this before it looks up a name)."""
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise ConfigError(f"plugins must be a list of module names, got {plugins!r}")
    load_plugins(plugins)
    return tuple(plugins)


def check_learner_section(section: dict[str, Any], *, where: str = "[learner]") -> dict[str, Any]:
    """A ``[learner]`` table checked against the learner's hyper-parameters: ``name`` is registered,
    every other key is a hyper-parameter of the right type (converted where allowed), and none of
    :data:`LEARNER_RESERVED` is set. Returns the checked table."""
    name = section.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{where} needs a string `name`, e.g. name = \"er\" (see `lifelong list`)")
    hp = {k: v for k, v in section.items() if k != "name"}
    for key in hp:
        if key in LEARNER_RESERVED:
            raise ConfigError(f"{where} {key}: {LEARNER_RESERVED[key]}")
    return {"name": name, **check_hyperparameters(name, hp, where=where)}


def check_model_options(kind: Any, options: dict[str, Any], *, where: str = "[model]") -> dict[str, Any]:
    """A model's options (without ``kind``) checked against its builder; returns them converted."""
    if not isinstance(kind, str):
        raise ConfigError(f"{where} kind must be a string, e.g. kind = \"mlp\"; choose one of: {', '.join(sorted(MODELS))}")
    builder = MODELS.lookup(kind)
    for key in options:
        if key in MODEL_FILLED:
            raise ConfigError(f"{where} {key} is not an option: the run takes it from the stream")
    return check_options(builder, options, where=where, skip=MODEL_FILLED)


def check_model_section(model: dict[str, Any], *, where: str = "[model]") -> dict[str, Any]:
    """A whole ``[model]`` table: a built-in network by ``kind`` (or its alias ``name``) with its
    options, or a user's ``factory = "pkg.mod:fn"`` with the factory's options. Returns the table
    with ``name`` read as ``kind``; the factory is imported here, so a bad path fails before any
    data is read."""
    model = dict(model)
    if "name" in model:
        name = model.pop("name")
        if "kind" in model and model["kind"] != name:
            raise ConfigError(f"{where} sets both kind = {model['kind']!r} and name = {name!r}; keep one (name is "
                              f"an alias of kind)")
        model["kind"] = name
    if "factory" in model:
        if "kind" in model:
            raise ConfigError(f"{where} sets both factory and kind = {model['kind']!r}: a factory builds your own "
                              f"network, kind a built-in one; keep one")
        fn = load_factory(model["factory"])
        options = {k: v for k, v in model.items() if k != "factory"}
        for key in options:
            if key in FACTORY_FILLED:
                raise ConfigError(f"{where} {key} is not an option: the run passes it to the factory")
        if not factory_takes_any(fn):
            options = check_options(fn, options, where=f"{where} factory {model['factory']!r}:", skip=FACTORY_FILLED)
        return {"factory": model["factory"], **options}
    kind = model.get("kind", "mlp")
    return {**({"kind": kind} if "kind" in model else {}),
            **check_model_options(kind, {k: v for k, v in model.items() if k != "kind"}, where=where)}


def _check_named(section: str, table: dict[str, Any]) -> dict[str, Any]:
    """``[dataset]`` or ``[scenario]``: a string ``name`` and its options, checked and converted."""
    name = table.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"[{section}] needs a string `name` (see `lifelong list`)")
    opts = {k: v for k, v in table.items() if k != "name"}
    check = dataset_options if section == "dataset" else scenario_options
    return {"name": name, **check(name, opts)}


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Validate a parsed TOML document and fill defaults.

    Plugins load first; then every section is checked against the signature it will be passed to
    (see the module docstring). Raises :class:`ConfigError` with what to fix.
    """
    for key, why in RETIRED_SECTIONS.items():
        if key in data:
            raise ConfigError(why)
    unknown = sorted(set(data) - set(SECTIONS) - set(TOP_LEVEL) - {"track"})
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(map(repr, unknown))}; top-level keys are {list(TOP_LEVEL)} "
            f"and sections are {list(SECTIONS) + ['track']}"
        )
    plugins = read_plugins(data)  # before any name is looked up
    base = RunConfig()
    sections: dict[str, dict[str, Any]] = {}
    for s in ("dataset", "scenario", "model", "train", "learner"):
        value = data.get(s, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{s}] must be a table, got {type(value).__name__}")
        defaults = getattr(base, s)
        if s == "model" and ("factory" in value
                             or value.get("kind", value.get("name", defaults["kind"])) != defaults["kind"]):
            defaults = {}  # the default options are the default model's (an MLP's hidden sizes)
        if s == "scenario" and value.get("name") in NAMED_BENCHMARKS:
            defaults = {}  # a named benchmark fixes its own split (the default n_chunks = 5 is not its)
        if s == "model" and "name" in value and "kind" not in value:
            defaults = {k: v for k, v in defaults.items() if k != "kind"}
        sections[s] = {**defaults, **copy.deepcopy(value)}
    sections["train"] = check_train(sections["train"])
    sections["dataset"] = _check_named("dataset", sections["dataset"])
    sections["scenario"] = _check_named("scenario", sections["scenario"])
    sections["model"] = check_model_section(sections["model"])
    sections["learner"] = check_learner_section(sections["learner"])
    seeds = data.get("seeds", list(base.seeds))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct, got {seeds}")
    name = data.get("name", base.name)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError(f"name must be a plain directory name, got {name!r}")
    threads = data.get("threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads must be a non-negative integer, got {threads!r}")
    checkpoint = data.get("checkpoint", True)
    if not isinstance(checkpoint, bool):
        raise ConfigError(f"checkpoint must be true or false, got {checkpoint!r}")
    return RunConfig(name=name, seeds=tuple(seeds), threads=threads, checkpoint=checkpoint, plugins=plugins,
                     track=check_track(data.get("track", {})), **sections)


def parse_toml(text: str, *, source: str = "config") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}") from None


def read_toml(path: str | Path, what: str = "config file", *, hint: str = "") -> tuple[dict[str, Any], str]:
    """Parse a TOML file into ``(document, text)``; a missing, unreadable or malformed file is a
    :class:`ConfigError` that names ``what`` it is (``hint`` is appended to "does not exist")."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None
    return parse_toml(text, source=f"{what} {path}"), text


def load_config(path: str | Path) -> RunConfig:
    return from_dict(read_toml(path)[0])


def override(cfg: RunConfig, *, note: "Callable[[str], None] | None" = None, **flags: Any) -> RunConfig:
    """Apply CLI flags; ``None`` means "not given".

    Keys: learner, scenario, dataset, model (a built-in network by name), data (a user file: dataset ``file`` with that ``path``),
    label and standardize (the file's options), data_dir, download, seeds, epochs, batch_size, lr, device, augment,
    mem_size, n_chunks, name, eval_every, threads, tensorboard and mlflow (``[track]``).

    - Names may be typed with hyphens (``class-incremental``, ``cls-er``): a name that is not
      registered as typed but is with ``-`` read as ``_`` becomes the registered one.
    - The same learner (scenario, dataset) as the config's keeps the config's options; a different
      one replaces the section, and the options it drops are reported.
    - ``mem_size`` given to a learner without a memory (naive, ewc, ...) is ignored and reported.

    Reports go to ``note(message)`` (without ``note``: :func:`warnings.warn`), and only when the
    result is a valid config; everything is checked by :func:`from_dict`, before any data is read.

    Examples
    --------
    >>> cfg = from_dict({"learner": {"name": "cls_er", "mem_size": 200}})
    >>> override(cfg, learner="cls-er").learner["mem_size"]  # the same learner keeps its options
    200
    >>> override(cfg, learner="naive", mem_size=50, note=print).learner
    --learner naive replaces cls_er: dropped its [learner] hyper-parameters mem_size
    naive has no memory; --memory ignored
    {'name': 'naive'}
    """
    notes: list[str] = []  # reported once the result is a valid config: an error comes alone
    report = notes.append

    d = cfg.to_dict()
    d.setdefault("track", {})
    mapping = {
        "data_dir": ("dataset", "data_dir"), "download": ("dataset", "download"),
        "label": ("dataset", "label"), "standardize": ("dataset", "standardize"),
        "epochs": ("train", "epochs"), "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
        "eval_every": ("train", "eval_every"), "n_chunks": ("scenario", "n_chunks"), "device": ("train", "device"),
        "augment": ("train", "augment"), "precision": ("train", "precision"), "compile": ("train", "compile"), "tensorboard": ("track", "tensorboard"), "mlflow": ("track", "mlflow"),
    }
    registries = {"learner": LEARNERS, "scenario": SCENARIOS, "dataset": DATASETS}
    flags = {k: v for k, v in flags.items() if v is not None}
    unknown = sorted(set(flags) - set(mapping) - set(registries) - {"data", "mem_size", "seeds", "name", "threads",
                                                                     "model"})
    if unknown:
        raise ConfigError(f"unknown override {unknown[0]!r}")
    if "data" in flags:
        if flags.get("dataset", "file") != "file":
            raise ConfigError(f"--data loads your file as dataset 'file'; drop --dataset {flags['dataset']} "
                              "(or drop --data to use that dataset)")
        flags["dataset"] = "file"

    # names first: a new learner, scenario or dataset resets its section, then its options apply
    for section, registry in registries.items():
        if section not in flags:
            continue
        value = flags[section]
        if isinstance(value, str) and value not in registry and value.replace("-", "_") in registry:
            value = value.replace("-", "_")
        old = d[section]
        if old.get("name") != value:
            # a different learner/scenario/dataset: its options from the config no longer apply
            dropped = [k for k in old if k != "name"]
            if dropped:
                what = "hyper-parameters" if section == "learner" else "options"
                report(f"--{section} {value} replaces {old.get('name')}: dropped its [{section}] {what} "
                       f"{', '.join(dropped)}")
            d[section] = {"name": value}
    if "model" in flags:  # a built-in network by name; the same one keeps the config's options
        value = flags["model"]
        old = d["model"]
        current = old.get("kind", old.get("name", "factory" if "factory" in old else "mlp"))
        if current != value:
            dropped = [k for k in old if k not in ("kind", "name")]
            if dropped and old != RunConfig().model:  # the default MLP's options are not the user's
                report(f"--model {value} replaces {current}: dropped its [model] options {', '.join(dropped)}")
            d["model"] = {"kind": value}
    if "data" in flags:
        d["dataset"]["path"] = str(flags["data"])
    for key, value in flags.items():
        if key in ("seeds", "name", "threads"):
            d[key] = list(value) if key == "seeds" else value
        elif key in mapping:
            section, k = mapping[key]
            d[section][k] = value
    if "mem_size" in flags:
        learner = d["learner"].get("name")
        cls = LEARNERS.get(learner) if isinstance(learner, str) else None
        if cls is not None and "mem_size" not in hyperparameters(cls):
            report(f"{learner} has no memory; --memory ignored")
        else:  # an unknown learner is reported by from_dict
            d["learner"]["mem_size"] = flags["mem_size"]
    out = from_dict(d)
    for message in notes:
        if note is None:
            warnings.warn(message, stacklevel=2)
        else:
            note(message)
    return out
