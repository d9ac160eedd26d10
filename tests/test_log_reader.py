"""The one log reader, :func:`lifelong.log.read_log`: kinds left out, torn last lines, clear errors."""

from __future__ import annotations

import pytest

from lifelong.errors import DataError
from lifelong.log import Record, read_log, write_log

RECORDS = [
    Record("meta", extra={"learner": "er", "note": '"kind":"train"'}),  # the marker text inside extra
    Record("train", chunk=0, epoch=0, step=1, n=8, n_correct=3, loss_sum=9.5),
    Record("eval", chunk=0, task=0, step=1, n=10, n_correct=7, boundary=True),
    Record("train", chunk=0, epoch=0, step=2, n=8, n_correct=5, loss_sum=7.25, extra={"lr": 0.1}),
    Record("chunk_end", chunk=0, step=2),
]


def test_excluding_a_kind_keeps_every_other_record_in_order(tmp_path):
    write_log(tmp_path / "log.jsonl", RECORDS)
    assert read_log(tmp_path / "log.jsonl") == RECORDS
    assert read_log(tmp_path / "log.jsonl", exclude=("train",)) == [RECORDS[0], RECORDS[2], RECORDS[4]]
    assert read_log(tmp_path / "log.jsonl", exclude=("train", "eval")) == [RECORDS[0], RECORDS[4]]


def test_a_torn_last_line_is_ignored_and_a_bad_middle_line_is_an_error(tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(path, RECORDS)
    text = path.read_text()
    path.write_text(text + RECORDS[1].to_json()[:-5])  # a train record cut by a killed writer
    assert read_log(path, exclude=("train",)) == [RECORDS[0], RECORDS[2], RECORDS[4]]
    lines = text.splitlines()
    path.write_text("\n".join([lines[0], '{"kind":"eval","n":', *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"log.jsonl:2: not a valid run record"):
        read_log(path, exclude=("train",))


def test_unknown_kinds_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown record kinds"):
        read_log(tmp_path / "log.jsonl", exclude=("trian",))
    with pytest.raises(DataError, match="no run log"):
        read_log(tmp_path / "log.jsonl")
