"""lifelong.options: values checked against annotations, one rule set for every config section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional

import pytest

from lifelong.errors import ConfigError
from lifelong.options import check_options, check_value, describe, parameters


@pytest.mark.parametrize(("value", "ann", "expected"), [
    (3, int, 3),
    (3, float, 3.0),
    (2.5, float, 2.5),
    (True, bool, True),
    ("a", str, "a"),
    (None, int | None, None),
    (4, Optional[int], 4),
    (4, float | None, 4.0),
    (4, int | float, 4),  # the arm that takes it as it is wins
    ("natural", str | Sequence[int], "natural"),
    ([2, 0, 1], str | Sequence[int], [2, 0, 1]),
    ([1, 2], Sequence[float], [1.0, 2.0]),
    ((1, 2), tuple[int, ...], (1, 2)),
    ([1, "a"], tuple[int, str], [1, "a"]),
    ({"a": 1}, dict[str, Any], {"a": 1}),
    ([{"kind": "ce"}, {"kind": "ewc", "weight": 2}], Sequence[Mapping[str, Any]], [{"kind": "ce"}, {"kind": "ewc", "weight": 2}]),
    ("fast", Literal["fast", "slow"], "fast"),
    (object(), Any, None),  # passed through (checked by identity below)
    ("whatever", "NotAResolvableName", "whatever"),
])
def test_accepted_values(value, ann, expected):
    out = check_value(value, ann, where="[x] k")
    if ann is Any:
        assert out is value
    else:
        assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(("value", "ann", "words"), [
    (2.5, int, "must be an integer, got 2.5"),
    (True, int, "must be an integer, got True"),  # bool is not an int
    (True, float, "must be a number, got True"),
    (1, bool, "must be true or false, got 1"),
    ("3", int, "must be an integer, got '3'"),
    (3, str, "must be a string, got 3"),
    (2.5, int | None, r"must be an integer \(or omitted\), got 2.5"),
    ("ab", Sequence[int], "must be a list of integers, got 'ab'"),  # a string is not a sequence option
    ([1, 2.5], Sequence[int], "must be a list of integers"),
    ([1], tuple[int, int], r"must be a list of 2 values \(an integer, an integer\)"),
    ([1, 2], dict[str, Any], "must be a table"),
    ([1, "x"], Sequence[Mapping[str, Any]], "must be a list of tables"),  # the container and its items' kind only
    ("medium", Literal["fast", "slow"], "must be one of 'fast', 'slow'"),
    (1, Literal[True], "must be one of True"),  # 1 == True, but 1 is not a bool
])
def test_refused_values_name_the_option_and_the_type(value, ann, words):
    with pytest.raises(ConfigError, match=r"^\[x\] k " + words):
        check_value(value, ann, where="[x] k")


def test_check_options_against_a_signature():
    def build(ds, *, seed: int = 0, n: int = 2, rate: float = 0.5, **rest: Any) -> None:
        pass

    assert parameters(build, skip=("ds", "seed")) == {"n": (int, 2), "rate": (float, 0.5)}
    assert check_options(build, {"rate": 1}, where="w:", skip=("ds", "seed")) == {"rate": 1.0}
    with pytest.raises(ConfigError, match="w: has no option 'seed'; it accepts: n, rate"):
        check_options(build, {"seed": 1}, where="w:", skip=("ds", "seed"))
    with pytest.raises(ConfigError, match="w: lr: set it in"):
        check_options({"lr": (float, 0.1)}, {"lr": 1.0}, where="w:", reserved={"lr": "set it in [train]"})
    assert describe(Sequence[Mapping[str, Any]]) == "a list of tables" and describe(int | None) == "an integer (or omitted)"
