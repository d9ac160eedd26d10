"""Typed options: values from a config file checked against the annotations of the function they are
passed to (a learner's ``__init__``, a scenario, a dataset loader, a model builder).

One rule set serves every section of every config file (run, sweep, tune, ledger, serve):

- an ``int`` is an int: ``2.5`` or ``true`` for an ``int`` option is an error;
- an int given for a ``float`` is accepted and converted (``1`` becomes ``1.0``); ``bool`` is
  neither an int nor a float;
- ``X | None`` (or ``Optional[X]``) accepts ``None`` as well as ``X``; ``Literal[...]`` accepts
  its listed values only;
- ``Sequence[X]``, ``list[X]`` and ``tuple[X, ...]`` accept a list (or tuple) whose every element is
  an ``X``; ``tuple[X, Y]`` needs exactly that many elements;
- ``dict[K, V]`` and ``Mapping[K, V]`` accept a table whose keys and values check;
- ``Any``, ``object``, a missing annotation and anything else that cannot be checked structurally
  (a callable, a type variable, an annotation that does not resolve) are passed through: the
  function itself validates them.

Examples
--------
>>> def build(*, size: int = 1, rate: float = 0.5, hidden: Sequence[int] = (8,), mode: str | None = None):
...     pass
>>> check_options(build, {"size": 3, "rate": 1, "hidden": [4, 4]}, where="[model]")
{'size': 3, 'rate': 1.0, 'hidden': [4, 4]}
>>> check_options(build, {"size": 2.5}, where="[model]")
Traceback (most recent call last):
...
lifelong.errors.ConfigError: [model] size must be an integer, got 2.5
>>> check_options(build, {"colour": 1}, where="[model]")
Traceback (most recent call last):
...
lifelong.errors.ConfigError: [model] has no option 'colour'; it accepts: hidden, mode, rate, size
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

from lifelong.errors import ConfigError

__all__ = ["UNCHECKED", "check_options", "check_value", "describe", "parameters"]

#: The annotation of a parameter whose values are not checked here.
UNCHECKED: Any = Any


def _resolve(fn: Callable[..., Any]) -> dict[str, Any]:
    """Type hints of ``fn``'s parameters; one that does not resolve is left unchecked."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # a hint naming something only imported under TYPE_CHECKING, a plugin's typo, ...
        pass
    out: dict[str, Any] = {}
    namespace = getattr(fn, "__globals__", {})
    for name, ann in getattr(fn, "__annotations__", {}).items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, namespace)  # noqa: S307 - evaluating the function's own annotation
            except Exception:
                ann = UNCHECKED
        out[name] = ann
    return out


def parameters(fn: Callable[..., Any], *, skip: Iterable[str] = (), keyword_only: bool = False) -> dict[str, tuple[Any, Any]]:
    """The options ``fn`` accepts: ``{name: (annotation, default)}``, in signature order.

    ``*args`` and ``**kwargs`` are not options; ``skip`` names parameters that the caller fills
    itself (``seed``, the dataset, the model); ``keyword_only`` keeps keyword-only parameters only.
    A parameter without a default gets :data:`inspect.Parameter.empty`.
    """
    hints = _resolve(fn)
    skip = set(skip)
    out: dict[str, tuple[Any, Any]] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in skip or p.name == "self":
            continue
        if keyword_only and p.kind is not p.KEYWORD_ONLY:
            continue
        out[p.name] = (hints.get(p.name, UNCHECKED), p.default)
    return out


def describe(ann: Any) -> str:
    """Plain words for an annotation: ``int`` -> "an integer", ``Sequence[int]`` -> "a list of integers"."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is type(None) or ann is None:
        return "none"
    if ann is bool:
        return "true or false"
    if ann is int:
        return "an integer"
    if ann is float:
        return "a number"
    if ann is str:
        return "a string"
    if _is_path(ann):
        return "a path"
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        words = " or ".join(describe(a) for a in arms)
        return words + (" (or omitted)" if len(arms) < len(args) else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if _is_sequence(origin):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
        elem = args[0] if args else Any
        return "a list" if elem is Any else f"a list of {_plural(describe(elem))}"
    if _is_mapping(origin) or ann in (dict, Mapping):
        return "a table"
    if isinstance(ann, type):
        return f"a {ann.__name__}"
    return str(ann)


def _plural(words: str) -> str:
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings"),
                      ("a table", "tables"), ("true or false", "booleans"), ("a path", "paths")):
        if words == one:
            return many
    return words


def _is_path(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, (PurePath, os.PathLike)) or typing.get_origin(ann) is os.PathLike


def _is_sequence(origin: Any) -> bool:
    return origin in (list, tuple, Sequence, typing.Sequence) or (
        isinstance(origin, type) and origin is not str and issubclass(origin, Sequence))


def _is_mapping(origin: Any) -> bool:
    return origin in (dict, Mapping, typing.Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping))


class _Mismatch(Exception):
    """The value does not have the annotated type (internal: turned into a ConfigError)."""


def _check(value: Any, ann: Any) -> Any:
    """``value`` converted to ``ann`` where the rules allow it; raises :class:`_Mismatch` otherwise."""
    if ann is Any or ann is object or ann is inspect.Parameter.empty:
        return value
    if ann is None or ann is type(None):
        if value is None:
            return None
        raise _Mismatch
    if ann is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if ann is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if _is_path(ann):
        if isinstance(value, (str, os.PathLike)):
            return value
        raise _Mismatch
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin in (typing.Union, types.UnionType):
        # an arm that takes the value as it is wins over one that converts it (int | float keeps 3)
        for arm in args:
            try:
                if _check(value, arm) is value or value is None:
                    return value
            except _Mismatch:
                continue
        for arm in args:
            try:
                return _check(value, arm)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    if origin is not None and _is_sequence(origin):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            items = [_check(v, a) for v, a in zip(value, args, strict=True)]
        else:
            elem = args[0] if args else Any
            items = [_check(v, elem) for v in value]
        return type(value)(items)
    if origin is not None and _is_mapping(origin) or ann in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch
        k_ann, v_ann = args if len(args) == 2 else (Any, Any)
        return {_check(k, k_ann): _check(v, v_ann) for k, v in value.items()}
    if ann in (list, tuple, Sequence):
        if isinstance(value, (list, tuple)):
            return value
        raise _Mismatch
    if isinstance(ann, type) and origin is None:
        if isinstance(value, ann):
            return value
        raise _Mismatch
    return value  # Callable[...], a TypeVar, an unresolved name: the function validates it


def check_value(value: Any, ann: Any, *, where: str) -> Any:
    """``value`` checked against ``ann`` (see the module docstring), converted where allowed.

    Raises
    ------
    ConfigError
        ``"<where> must be <described type>, got <value>"``.
    """
    try:
        return _check(value, ann)
    except _Mismatch:
        raise ConfigError(f"{where} must be {describe(ann)}, got {value!r}") from None


def check_options(
    fn: Callable[..., Any] | Mapping[str, tuple[Any, Any]], options: Mapping[str, Any], *, where: str,
    skip: Iterable[str] = (), reserved: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check ``options`` against the parameters of ``fn`` (or a :func:`parameters` mapping).

    Parameters
    ----------
    fn : callable or mapping
        The function the options will be passed to, or its :func:`parameters`.
    options : mapping
        Option name -> value, e.g. a config section without its ``name``.
    where : str
        How messages name the section, e.g. ``"[learner]"`` or ``"scenario 'blurry'"``.
    skip : iterable of str
        Parameters the caller fills (not options; with ``fn`` a callable only).
    reserved : mapping, optional
        Option name -> the message for a parameter that exists but must be set elsewhere
        (``lr`` in ``[learner]`` -> "set it in [train]").

    Returns
    -------
    dict
        The options, converted (ints given for floats become floats), in the given order.
    """
    params = parameters(fn, skip=skip) if callable(fn) else dict(fn)
    reserved = reserved or {}
    for key in options:
        if key in reserved:
            raise ConfigError(f"{where} {key}: {reserved[key]}")
    unknown = [k for k in options if k not in params]
    if unknown:
        accepted = sorted(k for k in params if k not in reserved)
        hint = f"it accepts: {', '.join(accepted)}" if accepted else "it takes no options"
        raise ConfigError(f"{where} has no option {', '.join(map(repr, unknown))}; {hint}")
    return {k: check_value(v, params[k][0], where=f"{where} {k}") for k, v in options.items()}
