"""Request parsing and validation, shared by the HTTP endpoints and ``lifelong serve --replay``.

Every check runs before anything is logged or learned, so a rejected request changes nothing. A
problem raises :class:`RequestError` with the HTTP status and a message that says what to fix.

Examples
--------
>>> from lifelong.serve.config import config_from_dict
>>> cfg = config_from_dict({"model": {"input_shape": [2], "n_classes": 3}})
>>> fb = parse_feedback({"inputs": [[0.5, 1.0]], "labels": [2]}, cfg)
>>> fb.x.shape, fb.y.tolist()
((1, 2), [2])
>>> parse_feedback({"inputs": [[0.5, 1.0]], "labels": [7]}, cfg)
Traceback (most recent call last):
...
lifelong.serve.validation.RequestError: unknown label 7 at row 0; labels are class ids 0..2
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelong.serve.config import ServeConfig

MAX_ID_LEN = 128
PREDICT_KEYS = {"inputs"}
FEEDBACK_KEYS = {"inputs", "labels", "event_ids", "prediction_id"}


class RequestError(Exception):
    """A request the service refuses; ``status`` is the HTTP code (4xx, or 503 when busy)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


@dataclass(frozen=True)
class Feedback:
    x: np.ndarray  # (n, D) float32, finite
    y: np.ndarray  # (n,) int64 in [0, n_classes)
    event_ids: list[str | None] | None
    prediction_id: str | None


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; 400 if it is not UTF-8 JSON."""
    if not body:
        raise RequestError(400, "the request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(400, f"the request body is not valid JSON: {e}") from None
    except RecursionError:
        raise RequestError(400, "the request body is nested too deeply") from None
    except ValueError as e:  # an integer literal beyond Python's int-string conversion limit (4,300 digits)
        raise RequestError(400, f"the request body holds a number that cannot be read: {e}") from None


def _object(obj: Any, allowed: set[str], required: set[str], what: str) -> dict:
    if not isinstance(obj, dict):
        raise RequestError(422, f"{what} body must be a JSON object with keys {sorted(required)}, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise RequestError(422, f"unknown key(s) {unknown} in the {what} body; allowed: {sorted(allowed)}")
    missing = sorted(required - set(obj))
    if missing:
        raise RequestError(422, f"the {what} body needs {missing}")
    return obj


def _has_bool(value: list, depth: int) -> bool:
    """Is there a JSON ``true``/``false`` among the numbers of ``value``, nested ``depth`` lists deep?

    numpy reads a boolean in a list of numbers as 1.0 or 0.0; this finds it (at C speed per row).
    """
    if depth <= 1:
        return bool in set(map(type, value))
    return any(_has_bool(v, depth - 1) for v in value if isinstance(v, list))


def check_id(value: Any, what: str) -> None:
    """An id stored in SQLite: a non-empty str of at most MAX_ID_LEN characters that encodes to
    UTF-8 (no lone surrogates) and holds no NUL or other control character."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LEN:
        raise RequestError(422, f"{what} must be a non-empty string of at most {MAX_ID_LEN} characters or null")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(422, f"{what} holds a lone UTF-16 surrogate (not valid Unicode text)") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise RequestError(422, f"{what} holds a NUL or another control character")


def parse_inputs(value: Any, cfg: ServeConfig) -> np.ndarray:
    """``inputs`` as ``(B, D)`` float32: a list of rows, each of shape ``input_shape`` or flat ``D``."""
    if not isinstance(value, list) or not value:
        raise RequestError(422, "inputs must be a non-empty list of input rows")
    if len(value) > cfg.max_rows:
        raise RequestError(413, f"{len(value)} rows in one request; the limit is {cfg.max_rows} ([serve] max_rows)")
    try:
        arr = np.asarray(value)
    except OverflowError:
        raise RequestError(422, "inputs must contain only numbers within float32 range") from None
    except (ValueError, TypeError):
        raise RequestError(422, "inputs are ragged: every row must have the same shape "
                                f"{list(cfg.input_shape)}") from None
    if arr.dtype.kind not in "iuf" or (arr.ndim >= 2 and _has_bool(value, arr.ndim)):
        raise RequestError(422, "inputs must contain only numbers (no strings, booleans, nulls or nested objects)")
    shape = arr.shape[1:]
    if shape != cfg.input_shape and shape != (cfg.input_dim,):
        raise RequestError(422, f"each input row has shape {list(shape)}; this model takes {list(cfg.input_shape)}"
                                + (f" (or a flat list of {cfg.input_dim} numbers)" if len(cfg.input_shape) > 1 else ""))
    with np.errstate(over="ignore"):
        x = arr.reshape(len(arr), cfg.input_dim).astype(np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise RequestError(422, f"inputs contain NaN or infinity (or a value beyond float32 range) at row {row}")
    return x


def parse_predict(obj: Any, cfg: ServeConfig) -> np.ndarray:
    """A ``/predict`` body ``{"inputs": [...]}`` as ``(B, D)`` float32."""
    return parse_inputs(_object(obj, PREDICT_KEYS, PREDICT_KEYS, "predict")["inputs"], cfg)


def _ids(value: Any, n: int) -> list[str | None]:
    if not isinstance(value, list) or len(value) != n:
        raise RequestError(422, f"event_ids must be a list with one id (a string, or null) per row ({n})")
    for i, e in enumerate(value):
        if e is not None:
            check_id(e, f"event_ids[{i}]")
    return value


def parse_feedback(obj: Any, cfg: ServeConfig) -> Feedback:
    """A ``/feedback`` body: ``inputs``, ``labels``, and optionally ``event_ids`` and ``prediction_id``."""
    obj = _object(obj, FEEDBACK_KEYS, {"inputs", "labels"}, "feedback")
    x = parse_inputs(obj["inputs"], cfg)
    labels = obj["labels"]
    if not isinstance(labels, list) or len(labels) != len(x):
        raise RequestError(422, f"labels must be a list with one class id per input row ({len(x)})")
    for i, v in enumerate(labels):
        if isinstance(v, bool) or not isinstance(v, int):
            raise RequestError(422, f"labels[{i}] = {v!r} is not an integer class id")
        if not 0 <= v < cfg.n_classes:
            raise RequestError(422, f"unknown label {v} at row {i}; labels are class ids 0..{cfg.n_classes - 1}")
    ids = _ids(obj["event_ids"], len(x)) if obj.get("event_ids") is not None else None
    pid = obj.get("prediction_id")
    if pid is not None:
        check_id(pid, "prediction_id (the string /predict returned)")
    return Feedback(x, np.asarray(labels, dtype=np.int64), ids, pid)


def parse_rollback(obj: Any) -> int:
    obj = _object(obj, {"to_seq"}, {"to_seq"}, "rollback")
    v = obj["to_seq"]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise RequestError(422, f"to_seq must be a non-negative integer event sequence number, got {v!r}")
    return v
