"""Lifelong-learning (L2M) logs in the l2logger on-disk format, version 1.1.

The `l2logger <https://github.com/lifelong-learning-systems/l2logger>`_ package (1.8.2 read for
this module; it is not a dependency) defines the log layout that the official ``l2metrics`` package
reads. This module writes and reads that layout without either package, so that any run of ours can
be scored by ``l2metrics`` and any system's l2logger log can be scored by
:func:`lifelong.evaluate.l2m.l2m_metrics`.

Layout (``REFERENCE.md``, "l2logger on-disk format")::

    <base>/<scenario>-<timestamp>/logger_info.json      {"metrics_columns": [...], "log_format_version": "1.1"}
    <base>/<scenario>-<timestamp>/scenario_info.json    {"author", "complexity", "difficulty", "scenario_type", ...}
    <base>/<scenario>-<timestamp>/<worker_id>/<block_num>-<train|test>/data-log.tsv

Rows
----
A *row* is a ``dict`` with one entry per TSV column: the fixed columns :data:`FIXED_COLUMNS`
(``block_num``, ``exp_num``, ``worker_id``, ``block_type``, ``block_subtype``, ``task_name``,
``task_params``, ``exp_status``, ``timestamp``) followed by the metric columns. ``block_num`` and
``exp_num`` are ints, ``task_params`` is a dict, metric values are floats (NaN when missing).
:func:`write_l2logger` fills in ``worker_id``, ``block_subtype`` (``"wake"``), ``task_params``
(``{}``), ``exp_status`` (``"complete"``) and ``timestamp`` when a row omits them.

Byte-level details copied from l2logger 1.8.2 so that files compare equal to the reference writer
----------------------------------------------------------------------------------------------------
- The TSV is written by :class:`csv.DictWriter` with ``delimiter="\\t"``, ``quotechar='"'``,
  ``lineterminator="\\n"`` and minimal quoting, with one header line per file. ``task_params`` is
  ``json.dumps(params)`` with default separators, so a non-empty object is quoted with doubled
  quotes, e.g. ``"{""chunk"": 0}"``; ``{}`` is not quoted.
- Columns are the fixed columns in the order above, then every other column sorted by name.
- ``logger_info.json`` and ``scenario_info.json`` are ``json.dumps(obj, indent=2)`` with no final
  newline. ``log_format_version`` is appended after the caller's keys.
- The run directory is ``<scenario>-<timestamp>``, where ``scenario`` is the part of the name before
  the first dot and ``timestamp`` is ``str(posix_seconds)`` with ``"."`` replaced by ``"-"``.

Determinism
-----------
l2logger stamps rows and the run directory with the wall clock. We synthesise both from a fixed
epoch instead: the directory uses ``timestamp`` (default :data:`FIXED_EPOCH`, 2020-01-01 UTC), and a
row without a timestamp gets ``epoch + exp_num`` microseconds, formatted in UTC as
``%Y%m%dT%H%M%S.%f``. The same rows therefore always give byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lifelong.errors import DataError
from lifelong.evaluate.l2m import l2m_metrics
from lifelong.log import Record

__all__ = [
    "BLOCK_SUBTYPES",
    "BLOCK_TYPES",
    "EXP_STATUSES",
    "FIXED_COLUMNS",
    "FIXED_EPOCH",
    "LOG_FORMAT_VERSION",
    "L2ROW_METRIC_COLUMNS",
    "read_l2logger",
    "read_logger_info",
    "records_to_l2rows",
    "score_l2logger",
    "write_l2logger",
]

LOG_FORMAT_VERSION = "1.1"
FIXED_COLUMNS = (
    "block_num",
    "exp_num",
    "worker_id",
    "block_type",
    "block_subtype",
    "task_name",
    "task_params",
    "exp_status",
    "timestamp",
)
BLOCK_TYPES = ("train", "test")
BLOCK_SUBTYPES = ("wake", "sleep")
EXP_STATUSES = ("complete", "incomplete")
#: 2020-01-01T00:00:00 UTC, the default epoch of synthesised timestamps.
FIXED_EPOCH = 1577836800.0
#: Metric columns of the rows made by :func:`records_to_l2rows`.
L2ROW_METRIC_COLUMNS = ("loss", "performance")

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%f"
_WORKER_RE = re.compile(r"[0-9a-zA-Z_\-.]+")
# scenario_info values that l2metrics accepts (it logs an error for anything else)
_SCENARIO_VALUES = {
    "complexity": ("1-low", "2-intermediate", "3-high"),
    "difficulty": ("1-easy", "2-medium", "3-hard"),
    "scenario_type": ("condensed", "dispersed", "permuted", "alternating", "ste", "custom"),
}
_OPTIONAL_DEFAULTS = {"block_subtype": "wake", "exp_status": "complete"}


# --------------------------------------------------------------------------------------------
# writing


def write_l2logger(
    rows: Iterable[Mapping[str, Any]],
    base_dir: str | Path,
    scenario_name: str,
    *,
    metric_columns: Sequence[str],
    scenario_info: Mapping[str, Any],
    worker_id: str = "worker-0",
    timestamp: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write rows as an l2logger (format 1.1) log directory.

    Parameters
    ----------
    rows : iterable of mapping
        The experiences in log order. Each needs ``block_num``, ``exp_num``, ``block_type``,
        ``task_name`` and every metric column. ``worker_id``, ``block_subtype``, ``task_params``,
        ``exp_status`` and ``timestamp`` are optional (see the module docstring). Every row must
        have the same set of columns; columns that are neither fixed nor metric columns are written
        too, as l2logger does. ``block_num`` and ``exp_num`` must not decrease.
    base_dir : str or Path
        The directory that receives the run directory ``<scenario>-<timestamp>``.
    scenario_name : str
        Scenario name; as in l2logger, only the part of its base name before the first dot is used.
    metric_columns : sequence of str
        The ``metrics_columns`` of ``logger_info.json`` (non-empty). Every row must have them.
    scenario_info : mapping
        Written to ``scenario_info.json``. ``complexity``, ``difficulty`` and ``scenario_type``
        are optional, but if present must be values that l2metrics accepts (for example
        ``"2-intermediate"``, ``"2-medium"``, ``"condensed"``).
    worker_id : str, default "worker-0"
        Used for rows without a ``worker_id``; letters, digits, ``_``, ``-`` and ``.`` only.
    timestamp : float, optional
        POSIX seconds that name the run directory and serve as the epoch of synthesised row
        timestamps (``epoch + exp_num`` microseconds). Defaults to :data:`FIXED_EPOCH`.
    overwrite : bool, default False
        Replace an existing run directory of the same name. Without it, an existing directory is an
        error (l2logger would append to it, mixing two runs).

    Returns
    -------
    Path
        The run directory ``<base_dir>/<scenario>-<timestamp>``.

    Raises
    ------
    DataError
        If a row is malformed (missing column, bad block type, decreasing ``exp_num``, ...) or the
        run directory already exists.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"block_num": 0, "exp_num": 0, "block_type": "train", "task_name": "a_0", "performance": 0.5},
    ...         {"block_num": 1, "exp_num": 1, "block_type": "test", "task_name": "a_0", "performance": 0.75}]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     run = write_l2logger(rows, d, "demo", metric_columns=["performance"],
    ...                          scenario_info={"scenario_type": "custom"})
    ...     print(run.name)
    ...     print(sorted(str(p.relative_to(run)) for p in run.rglob("*.tsv")))
    ...     print((run / "worker-0" / "1-test" / "data-log.tsv").read_text().replace("\\t", " "))
    demo-1577836800-0
    ['worker-0/0-train/data-log.tsv', 'worker-0/1-test/data-log.tsv']
    block_num exp_num worker_id block_type block_subtype task_name task_params exp_status timestamp performance
    1 1 worker-0 test wake a_0 {} complete 20200101T000000.000001 0.75
    <BLANKLINE>
    """
    metric_columns = _check_metric_columns(metric_columns)
    if not isinstance(scenario_info, Mapping):
        raise DataError("scenario_info must be a dict such as {'scenario_type': 'custom'}")
    for key, valid in _SCENARIO_VALUES.items():
        if key in scenario_info and str(scenario_info[key]).lower() not in valid:
            raise DataError(
                f"scenario_info[{key!r}] = {scenario_info[key]!r} is not accepted by l2metrics; use one of {valid}"
            )
    try:
        scenario_text = json.dumps(dict(scenario_info), indent=2)
    except (TypeError, ValueError) as e:
        raise DataError(f"scenario_info is not JSON-serialisable ({e})") from None
    _check_worker(worker_id)
    try:
        epoch = FIXED_EPOCH if timestamp is None else float(timestamp)
    except (TypeError, ValueError):
        epoch = math.nan
    if not math.isfinite(epoch) or epoch < 0:
        raise DataError(f"timestamp must be non-negative POSIX seconds, got {timestamp!r}")

    scenario = os.path.basename(str(scenario_name)).split(".")[0]
    if not scenario:
        raise DataError(f"scenario_name {scenario_name!r} gives an empty directory name; pass e.g. 'condensed'")
    run_dir = Path(base_dir) / f"{scenario}-{re.sub('[.]', '-', str(epoch))}"

    columns: list[str] | None = None
    files: dict[Path, list[dict[str, Any]]] = {}
    last_block = last_exp = None
    for i, row_in in enumerate(rows):
        if not isinstance(row_in, Mapping):
            raise DataError(f"row {i} is a {type(row_in).__name__}, not a dict")
        row = _complete_row(row_in, worker_id, epoch)
        if columns is None:
            missing = [c for c in ("block_num", "exp_num", "block_type", "task_name") if c not in row_in]
            missing += [c for c in metric_columns if c not in row]
            if missing:
                raise DataError(f"row {i} lacks the columns {missing}; every row needs them")
            columns = list(FIXED_COLUMNS) + sorted(set(row) - set(FIXED_COLUMNS))
        elif set(row) != set(columns):
            raise DataError(
                f"row {i} has columns {sorted(row)} but the first row had {sorted(columns)}; "
                "every row of an l2logger log has the same columns"
            )
        _check_row(row, i, last_block, last_exp)
        last_block, last_exp = row["block_num"], row["exp_num"]
        path = run_dir / row["worker_id"] / f"{row['block_num']}-{row['block_type']}" / "data-log.tsv"
        row["task_params"] = json.dumps(row["task_params"])
        files.setdefault(path, []).append({k: _cell(v) for k, v in row.items()})
    if columns is None:
        raise DataError("no rows to write; an l2logger log needs at least one experience")

    if run_dir.exists():
        if not overwrite:
            raise DataError(f"{run_dir} already exists; pass overwrite=True or another base_dir/timestamp")
        if not (run_dir / "logger_info.json").is_file():
            raise DataError(f"{run_dir} exists and is not an l2logger run directory; refusing to replace it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    logger_info = {"metrics_columns": metric_columns, "log_format_version": LOG_FORMAT_VERSION}
    (run_dir / "logger_info.json").write_text(json.dumps(logger_info, indent=2), encoding="utf-8")
    (run_dir / "scenario_info.json").write_text(scenario_text, encoding="utf-8")
    for path, file_rows in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, delimiter="\t", quotechar='"', lineterminator="\n")
            writer.writeheader()
            writer.writerows(file_rows)
    return run_dir


def _complete_row(row_in: Mapping[str, Any], worker_id: str, epoch: float) -> dict[str, Any]:
    row = dict(row_in)
    row.setdefault("worker_id", worker_id)
    for key, default in _OPTIONAL_DEFAULTS.items():
        row.setdefault(key, default)
    row.setdefault("task_params", {})
    if "timestamp" not in row:
        exp = row.get("exp_num")
        if isinstance(exp, int) and not isinstance(exp, bool) and exp >= 0:
            when = datetime.fromtimestamp(epoch, tz=UTC) + timedelta(microseconds=exp)
            row["timestamp"] = when.strftime(TIMESTAMP_FORMAT)
        else:
            row["timestamp"] = ""  # _check_row reports the bad exp_num
    return row


def _check_row(row: dict[str, Any], i: int, last_block: int | None, last_exp: int | None) -> None:
    for key in ("block_num", "exp_num"):
        v = row[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise DataError(f"row {i}: {key} must be a non-negative int, got {v!r}")
    if last_block is not None and row["block_num"] < last_block:
        raise DataError(f"row {i}: block_num {row['block_num']} < {last_block}; block_num must not decrease")
    if last_exp is not None and row["exp_num"] < last_exp:
        raise DataError(f"row {i}: exp_num {row['exp_num']} < {last_exp}; exp_num must not decrease")
    _check_enum(row, "block_type", BLOCK_TYPES, i)
    _check_enum(row, "block_subtype", BLOCK_SUBTYPES, i)
    _check_enum(row, "exp_status", EXP_STATUSES, i)
    _check_worker(row["worker_id"], f"row {i}: ")
    if not isinstance(row["task_name"], str) or not row["task_name"]:
        raise DataError(f"row {i}: task_name must be a non-empty string, got {row['task_name']!r}")
    if any(c in row["task_name"] for c in "\t\n\r"):
        raise DataError(f"row {i}: task_name {row['task_name']!r} contains a tab or newline")
    try:
        datetime.strptime(row["timestamp"], TIMESTAMP_FORMAT)
    except (TypeError, ValueError):
        raise DataError(
            f"row {i}: timestamp {row['timestamp']!r} is not {TIMESTAMP_FORMAT}; omit it to have one synthesised"
        ) from None
    if not isinstance(row["task_params"], dict):
        raise DataError(f"row {i}: task_params must be a dict, got {type(row['task_params']).__name__}")
    try:
        json.dumps(row["task_params"], allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DataError(f"row {i}: task_params is not JSON-serialisable ({e})") from None


def _check_enum(row: Mapping[str, Any], key: str, valid: tuple[str, ...], i: int) -> None:
    if row[key] not in valid:
        raise DataError(f"row {i}: {key} must be one of {valid}, got {row[key]!r}")


def _check_worker(worker_id: Any, prefix: str = "") -> None:
    if not isinstance(worker_id, str) or _WORKER_RE.fullmatch(worker_id) is None:
        raise DataError(f"{prefix}worker_id {worker_id!r} may only hold letters, digits, '_', '-' and '.'")


def _check_metric_columns(metric_columns: Any) -> list[str]:
    if isinstance(metric_columns, str) or not isinstance(metric_columns, Sequence):
        raise DataError(f"metric_columns must be a list of column names, got {metric_columns!r}")
    cols = list(metric_columns)
    if not cols or any(not isinstance(c, str) or not c for c in cols):
        raise DataError(f"metric_columns must be a non-empty list of non-empty strings, got {cols!r}")
    clash = sorted(set(cols) & set(FIXED_COLUMNS))
    if clash:
        raise DataError(f"metric_columns {clash} clash with the fixed l2logger columns")
    if len(set(cols)) != len(cols):
        raise DataError(f"metric_columns {cols} hold a duplicate")
    return cols


def _cell(v: Any) -> Any:
    """Plain Python scalars for csv (numpy scalars would print as ``np.float64(...)`` otherwise)."""
    item = getattr(v, "item", None)
    if callable(item) and not isinstance(v, (str, bytes)):
        try:
            return item()
        except (TypeError, ValueError):
            return v
    return v


# --------------------------------------------------------------------------------------------
# reading


def read_logger_info(log_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``logger_info.json`` and ``scenario_info.json`` of an l2logger run directory.

    Parameters
    ----------
    log_dir : str or Path
        The run directory (the one holding ``logger_info.json``).

    Returns
    -------
    logger_info, scenario_info : dict
        The two JSON objects. ``logger_info["metrics_columns"]`` is checked to be a non-empty list
        of strings.

    Raises
    ------
    DataError
        If a file is missing or malformed.
    """
    log_dir = Path(log_dir)
    info = _read_json(log_dir / "logger_info.json", log_dir)
    cols = info.get("metrics_columns")
    if not isinstance(cols, list) or not cols or any(not isinstance(c, str) for c in cols):
        raise DataError(f"{log_dir / 'logger_info.json'}: 'metrics_columns' must be a non-empty list of strings")
    scenario = _read_json(log_dir / "scenario_info.json", log_dir)
    return info, scenario


def _read_json(path: Path, log_dir: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(
            f"{path} not found; {log_dir} is not an l2logger run directory "
            "(pass the <scenario>-<timestamp> directory that holds logger_info.json)"
        )
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_l2logger(log_dir: str | Path) -> list[dict[str, Any]]:
    """Read an l2logger run directory (ours or any other system's) into rows.

    It follows ``l2logger.util.read_log_data`` and ``validate_log``: every ``data-log.tsv`` below
    ``log_dir`` is read, the rows are sorted (stably) by ``exp_num`` then ``block_num``, task names
    are lower-cased, and a missing ``block_subtype`` column means ``"wake"``.

    Parameters
    ----------
    log_dir : str or Path
        The run directory (the one holding ``logger_info.json``).

    Returns
    -------
    list of dict
        One row per experience, with the fixed columns (``block_num`` and ``exp_num`` as int,
        ``task_params`` as a dict, ``{}`` when empty) and every other column. Metric columns are
        floats: an empty cell or ``nan`` is NaN. Other extra columns are kept as strings.
        Incomplete experiences (``exp_status == "incomplete"``) are kept; the metrics skip them.

    Raises
    ------
    DataError
        If the directory is not a run directory, a file lacks a fixed or metric column, a value
        does not parse, or ``block_num``/``exp_num`` decrease, as in l2logger's validator.
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise DataError(f"log directory {log_dir} not found")
    info, _ = read_logger_info(log_dir)
    metric_columns = info["metrics_columns"]
    files = sorted(log_dir.rglob("data-log.tsv"))
    if not files:
        raise DataError(f"{log_dir} holds no data-log.tsv files; the run logged no experience")
    rows: list[dict[str, Any]] = []
    required = [c for c in FIXED_COLUMNS if c != "block_subtype"] + list(metric_columns)
    for path in files:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quotechar='"')
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(f"{path}: columns {missing} missing (header: {header})")
            for line_no, raw in enumerate(reader, start=2):
                if None in raw or any(v is None for v in raw.values()):
                    raise DataError(f"{path}:{line_no}: wrong number of fields")
                rows.append(_parse_row(raw, metric_columns, f"{path}:{line_no}"))
    rows.sort(key=lambda r: (r["exp_num"], r["block_num"]))
    for prev, cur in zip(rows, rows[1:]):
        if cur["block_num"] < prev["block_num"]:
            raise DataError(
                f"{log_dir}: block_num decreases ({prev['block_num']} -> {cur['block_num']}) "
                f"at exp_num {cur['exp_num']}; l2logger logs need non-decreasing block_num"
            )
    return rows


def _parse_row(raw: dict[str, str], metric_columns: Sequence[str], where: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in ("block_num", "exp_num"):
        try:
            value = float(raw[key])
        except ValueError:
            raise DataError(f"{where}: {key} {raw[key]!r} is not a number") from None
        if not value.is_integer() or value < 0:
            raise DataError(f"{where}: {key} must be a non-negative integer, got {raw[key]!r}")
        row[key] = int(value)
    row["worker_id"] = raw["worker_id"]
    row["block_type"] = raw["block_type"]
    row["block_subtype"] = raw.get("block_subtype") or "wake"
    row["task_name"] = raw["task_name"].lower()
    params = raw["task_params"]
    try:
        row["task_params"] = json.loads(params) if params.strip() else {}
    except json.JSONDecodeError:
        raise DataError(f"{where}: task_params {params!r} is not valid JSON") from None
    row["exp_status"] = raw["exp_status"]
    row["timestamp"] = raw["timestamp"]
    if row["block_type"] not in BLOCK_TYPES:
        _bad(where, "block_type", row["block_type"], BLOCK_TYPES)
    if row["block_subtype"] not in BLOCK_SUBTYPES:
        _bad(where, "block_subtype", row["block_subtype"], BLOCK_SUBTYPES)
    if row["exp_status"] not in EXP_STATUSES:
        _bad(where, "exp_status", row["exp_status"], EXP_STATUSES)
    if _WORKER_RE.fullmatch(row["worker_id"]) is None:
        raise DataError(f"{where}: worker_id {row['worker_id']!r} may only hold letters, digits, '_', '-' and '.'")
    for key, value in raw.items():
        if key in row:
            continue
        if key in metric_columns:
            try:
                row[key] = float(value) if value.strip() else math.nan
            except ValueError:
                raise DataError(f"{where}: metric {key} = {value!r} is not a number") from None
        else:
            row[key] = value
    return row


def _bad(where: str, key: str, value: str, valid: tuple[str, ...]) -> None:
    raise DataError(f"{where}: {key} must be one of {valid}, got {value!r}")


# --------------------------------------------------------------------------------------------
# our run log -> L2M rows


def records_to_l2rows(records: Iterable[Record], seed: int) -> list[dict[str, Any]]:
    """Convert one seed of our run log into L2M rows for :func:`write_l2logger`.

    Mapping
    -------
    ===========================================  ==============================================
    run log (:mod:`lifelong.log`)                 L2M row(s)
    ===========================================  ==============================================
    boundary ``eval`` records with ``chunk=-1``  one evaluation block (``test``) before the first
    (the randomly initialised network)           learning block
    ``train`` records of chunk ``i``             one learning block (``train``); each record is one
                                                 experience
    boundary ``eval`` records with ``chunk=i``   one evaluation block right after learning block
                                                 ``i``; one experience per evaluation set, ordered
                                                 by ``task``
    ``eval`` records with ``boundary=False``     skipped (periodic evaluations inside a chunk)
    ``meta``, ``chunk_end``, ``drift``            no row
    ===========================================  ==============================================

    - ``block_num`` counts blocks in that order from 0; ``exp_num`` counts rows from 0 across the
      whole lifetime (train and test rows alike).
    - Learning block ``i`` is task ``meta.extra["chunk_tasks"][i]`` if the meta record has it, else
      ``f"task{i}_0"``. Evaluation set ``j`` is task ``meta.extra["eval_tasks"][j]`` if present,
      else ``f"task{j}_0"``; so by default chunk ``i`` trains the task that evaluation set ``i``
      tests. Task names are lower-cased, as l2metrics does on reading.
    - ``block_subtype`` is ``"sleep"`` for a ``train`` record with ``extra["subtype"] == "sleep"``
      and ``"wake"`` otherwise (evaluation rows are always ``"wake"``). A chunk that mixes both
      stays one block whose wake and sleep parts are separate regimes.
    - ``performance`` is ``n_correct / n`` (the accuracy on the incoming batch before the update for
      train rows, on the evaluation set for test rows) and ``loss`` is ``loss_sum / n``; either is
      NaN when its counts are missing or ``n`` is 0.
    - ``task_params`` is ``{"chunk": i}``: the chunk the learning block trains, or the chunk after
      which the evaluation was taken (-1 for the initial one). It is constant within a regime, as
      l2metrics requires.
    - No ``worker_id`` or ``timestamp`` is set: :func:`write_l2logger` fills them in.

    Parameters
    ----------
    records : iterable of Record
        A run log (for example :func:`lifelong.log.read_log`), possibly holding several seeds.
    seed : int
        The seed to convert.

    Returns
    -------
    list of dict
        Rows with the fixed columns except ``worker_id`` and ``timestamp``, plus the metric columns
        :data:`L2ROW_METRIC_COLUMNS` (``loss``, ``performance``).

    Raises
    ------
    DataError
        If the log holds no record of ``seed``, a record lacks its chunk, or a task name in the
        meta record is malformed.

    Examples
    --------
    >>> recs = [Record("meta", extra={"chunk_tasks": ["a_0", "b_0"], "eval_tasks": ["a_0", "b_0"]}),
    ...         Record("eval", chunk=-1, task=0, n=10, n_correct=1, boundary=True),
    ...         Record("eval", chunk=-1, task=1, n=10, n_correct=2, boundary=True),
    ...         Record("train", chunk=0, step=1, n=4, n_correct=1, loss_sum=2.0),
    ...         Record("train", chunk=0, step=2, n=4, n_correct=3, loss_sum=1.0),
    ...         Record("eval", chunk=0, task=0, n=10, n_correct=4, boundary=False),
    ...         Record("eval", chunk=0, task=0, n=10, n_correct=9, boundary=True),
    ...         Record("eval", chunk=0, task=1, n=10, n_correct=3, boundary=True)]
    >>> for r in records_to_l2rows(recs, seed=0):
    ...     print(r["block_num"], r["exp_num"], r["block_type"], r["task_name"], r["performance"])
    0 0 test a_0 0.1
    0 1 test b_0 0.2
    1 2 train a_0 0.25
    1 3 train a_0 0.75
    2 4 test a_0 0.9
    2 5 test b_0 0.3
    """
    records = list(records)
    recs = [r for r in records if r.seed == seed]
    if not recs:
        present = sorted({r.seed for r in records})
        raise DataError(f"the run log holds no record of seed {seed} (it holds seeds {present})")
    meta = next((r for r in recs if r.kind == "meta"), None)
    extra = meta.extra if meta is not None else {}
    chunk_tasks = _task_list(extra, "chunk_tasks")
    eval_tasks = _task_list(extra, "eval_tasks")

    train: dict[int, list[Record]] = {}
    evals: dict[int, list[Record]] = {}
    for r in recs:
        if r.kind == "train" or (r.kind == "eval" and r.boundary):
            if r.chunk is None:
                raise DataError(f"{r.kind} record without a chunk ({r.to_json()}); the log is malformed")
            (train if r.kind == "train" else evals).setdefault(r.chunk, []).append(r)
    for chunk, ev in evals.items():
        if any(r.task is None for r in ev):
            raise DataError(f"boundary eval record of chunk {chunk} without a task index; the log is malformed")
        ev.sort(key=lambda r: r.task)  # stable: duplicates keep log order

    rows: list[dict[str, Any]] = []
    block = 0

    def emit_eval(chunk: int) -> None:
        nonlocal block
        if chunk not in evals:
            return
        for r in evals[chunk]:
            rows.append(_row(block, len(rows), "test", "wake", _name(eval_tasks, r.task), chunk, r))
        block += 1

    emit_eval(-1)
    for chunk in sorted((set(train) | set(evals)) - {-1}):
        if chunk in train:
            task = _name(chunk_tasks, chunk)
            for r in train[chunk]:
                subtype = "sleep" if r.extra.get("subtype") == "sleep" else "wake"
                rows.append(_row(block, len(rows), "train", subtype, task, chunk, r))
            block += 1
        emit_eval(chunk)
    return rows


def _task_list(extra: Mapping[str, Any], key: str) -> list[str] | None:
    names = extra.get(key)
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise DataError(f"meta.extra[{key!r}] must be a list of task names, got {names!r}")
    out = []
    for name in names:
        if not isinstance(name, str) or any(c in name for c in "\t\n\r") or not name:
            raise DataError(f"meta.extra[{key!r}] holds {name!r}; task names are non-empty strings without tabs")
        out.append(name.lower())
    return out


def _name(names: list[str] | None, i: int) -> str:
    if names is not None and 0 <= i < len(names):
        return names[i]
    return f"task{i}_0"


def _row(block: int, exp: int, block_type: str, subtype: str, task: str, chunk: int, r: Record) -> dict[str, Any]:
    n = r.n or 0
    perf = r.n_correct / n if n and r.n_correct is not None else math.nan
    loss = r.loss_sum / n if n and r.loss_sum is not None else math.nan
    return {
        "block_num": block,
        "exp_num": exp,
        "block_type": block_type,
        "block_subtype": subtype,
        "task_name": task,
        "task_params": {"chunk": chunk},
        "exp_status": "complete",
        "loss": loss,
        "performance": perf,
    }


def score_l2logger(log_dir: str | Path, ste: Iterable[str | Path] = (), *, perf_column: str = "performance") -> dict[str, Any]:
    """The L2M metrics of an l2logger log written by any system (``lifelong import-l2logger``).

    Parameters
    ----------
    log_dir : str or Path
        An l2logger run directory (it holds ``logger_info.json``).
    ste : iterable of str or Path
        l2logger logs of single-task experts; each must train exactly one task. Several logs of
        the same task are several expert runs.
    perf_column : str
        The performance column to score.

    Returns
    -------
    dict
        :func:`lifelong.evaluate.l2m.l2m_metrics` of the log.

    Raises
    ------
    DataError
        If a log is malformed or an expert log trains other than one task.
    """
    rows = read_l2logger(log_dir)
    experts: dict[str, list[list[dict[str, Any]]]] = {}
    for path in ste:
        ste_rows = read_l2logger(path)
        trained = sorted({r["task_name"] for r in ste_rows if r["block_type"] == "train"})
        if len(trained) != 1:
            raise DataError(f"{path}: an STE log trains exactly one task; it trains {trained}")
        experts.setdefault(trained[0], []).append(ste_rows)
    return l2m_metrics(rows, ste=experts or None, perf_column=perf_column)
