"""lifelong.testing catches broken learners and memories: each deliberately broken class below fails
the check named beside it (and check_learner / check_memory report that check by name), while a
correct method passes every check."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.learn.base import StepStats
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.methods.er import ER
from lifelong.learn.methods.naive import Naive
from lifelong.testing import (
    LEARNER_CHECKS, MEMORY_CHECKS, check_learner, check_memory, learner_checks, memory_checks,
)


# -- broken learners -------------------------------------------------------------------------------
class IgnoresItsModel(Naive):
    name = "ignores_its_model"

    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        return torch.zeros(len(x), self.n_classes)


class ForgetsAHyperParameter(Naive):
    name = "forgets_a_hyper_parameter"

    def __init__(self, model: nn.Module, *, strength: float = 1.0, **base) -> None:
        super().__init__(model, **base)
        self._strength = strength  # not under its own name


class StoresAConstant(Naive):
    name = "stores_a_constant"

    def __init__(self, model: nn.Module, *, strength: float = 1.0, **base) -> None:
        super().__init__(model, **base)
        self.strength = 1.0  # equals the default, whatever was given


class ConvertsAHyperParameter(Naive):
    name = "converts_a_hyper_parameter"

    def __init__(self, model: nn.Module, *, width: int = 4, **base) -> None:
        super().__init__(model, **base)
        self.width = float(width)


class UsesTheGlobalGenerator(Naive):
    name = "uses_the_global_generator"

    def observe(self, batch: Batch) -> StepStats:
        keep = torch.randperm(len(batch))[: max(1, len(batch) // 2)]  # no generator: global state
        return super().observe(Batch(batch.x[keep], batch.y[keep], None if batch.task is None else batch.task[keep]))


class MutatesItsInput(Naive):
    name = "mutates_its_input"

    def observe(self, batch: Batch) -> StepStats:
        batch.x.clamp_(-1.0, 1.0)
        return super().observe(batch)


class ReportsWrongCounts(Naive):
    name = "reports_wrong_counts"

    def observe(self, batch: Batch) -> StepStats:
        s = super().observe(batch)
        return StepStats(s.n + 1, s.n_correct, s.loss_sum)


class WrongWidth(Naive):
    name = "wrong_width"

    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        return super().predict(x, task)[:, :-1]


class AcceptsAnyLabel(Naive):
    name = "accepts_any_label"

    def observe(self, batch: Batch) -> StepStats:
        return StepStats(len(batch), 0, 0.0)


class HidesBoundaryWork(Naive):
    name = "hides_boundary_work"  # needs_boundaries stays False

    def end_chunk(self) -> None:
        self.n_observed += 1


class ClaimsBoundaryWork(Naive):
    name = "claims_boundary_work"
    needs_boundaries = True  # but end_chunk does nothing


class ForgetsItsMemory(ER):
    name = "forgets_its_memory"

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


class UnsavableState(Naive):
    name = "unsavable_state"

    def extra_state(self) -> dict:
        return {"schedule": lambda step: 0.1}


class NotReproducible(Naive):
    name = "not_reproducible"
    built = 0  # how many were built in this process: a hidden input that the seed does not fix

    def __init__(self, model: nn.Module, **base) -> None:
        super().__init__(model, **base)
        type(self).built += 1
        with torch.no_grad():
            self.model.head.bias += 0.5 * type(self).built


BROKEN_LEARNERS = [
    (IgnoresItsModel, {}, "learns_above_chance_on_an_easy_stream"),
    (ForgetsAHyperParameter, {"strength": 2.0}, "hyper_parameters_stored_as_given"),
    (StoresAConstant, {}, "hyper_parameters_stored_as_given"),
    (ConvertsAHyperParameter, {}, "hyper_parameters_stored_as_given"),
    (UsesTheGlobalGenerator, {}, "no_global_random_state"),
    (MutatesItsInput, {}, "observe_counts_and_leaves_its_input_alone"),
    (ReportsWrongCounts, {}, "observe_counts_and_leaves_its_input_alone"),
    (WrongWidth, {}, "predict_shape_and_finite"),
    (AcceptsAnyLabel, {}, "rejects_labels_outside_the_head"),
    (HidesBoundaryWork, {}, "end_chunk_changes_state_iff_needs_boundaries"),
    (ClaimsBoundaryWork, {}, "end_chunk_changes_state_iff_needs_boundaries"),
    (ForgetsItsMemory, {"mem_size": 30}, "state_dict_round_trip"),
    (UnsavableState, {}, "state_dict_round_trip"),
    (NotReproducible, {}, "same_seed_same_log"),
]


@pytest.mark.parametrize("cls,hp,check", BROKEN_LEARNERS, ids=[c.name for c, _, _ in BROKEN_LEARNERS])
def test_a_broken_learner_fails_the_relevant_check(cls, hp, check):
    checks = dict(learner_checks(cls, **hp))
    with pytest.raises(AssertionError) as e:
        checks[check]()
    assert f"fails check {check!r}" in str(e.value) and cls.__qualname__ in str(e.value)
    with pytest.raises(AssertionError, match=f"'{check}'"):
        check_learner(cls, **hp)


def test_a_correct_learner_passes_every_check():
    assert [name for name, _ in learner_checks(ER, mem_size=30)] == [name for name, _ in LEARNER_CHECKS]
    check_learner(ER, mem_size=30)


def test_checks_are_lazy_and_refuse_what_they_set_themselves():
    calls = []

    class Counting(Naive):
        name = "counting"

        def __init__(self, model, **base):
            calls.append(1)
            super().__init__(model, **base)

    learner_checks(Counting)
    assert calls == []  # nothing runs until a check is called
    with pytest.raises(TypeError, match="seed"):
        learner_checks(Naive, seed=1)


def test_a_learner_that_raises_is_reported_with_the_check_name():
    class Explodes(Naive):
        name = "explodes"

        def observe(self, batch):
            raise RuntimeError("boom")

    with pytest.raises(AssertionError, match=r"'observe_counts_and_leaves_its_input_alone': it raised RuntimeError: boom"):
        dict(learner_checks(Explodes))["observe_counts_and_leaves_its_input_alone"]()


# -- broken memories -------------------------------------------------------------------------------
class SamplesWithTheGlobalGenerator(ReservoirMemory):
    def sample(self, n: int, generator: torch.Generator) -> Batch:
        return self.get(torch.randperm(self.size)[: min(n, self.size)])


class OverCounts(ReservoirMemory):
    def __len__(self) -> int:
        return self.n_seen


class RestoresNoGenerator(ReservoirMemory):
    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        state["generator"] = self.generator.get_state()  # keeps its own, differently seeded one
        super().load_state_dict(state)


class KeepsViews:
    """A list memory that stores views of the rows it is given (no copy)."""

    def __init__(self, capacity: int, *, seed: int = 0) -> None:
        self.capacity, self.rows = capacity, []

    def add(self, batch: Batch, **fields: Tensor) -> None:
        for i in range(len(batch)):
            if len(self.rows) < self.capacity:
                self.rows.append((batch.x[i], batch.y[i], {k: v[i] for k, v in fields.items()}))

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        idx = torch.randperm(len(self.rows), generator=generator)[:n].tolist()
        extras = {k: torch.stack([self.rows[i][2][k] for i in idx]) for k in (self.rows[0][2] if self.rows else {})}
        return Batch(torch.stack([self.rows[i][0] for i in idx]), torch.stack([self.rows[i][1] for i in idx]),
                     None, extras)

    def __len__(self) -> int:
        return len(self.rows)

    def state_dict(self) -> dict:
        return {"rows": [(x, y) for x, y, _ in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [(x, y, {}) for x, y in state["rows"]]


BROKEN_MEMORIES = [
    (SamplesWithTheGlobalGenerator, "sampling_uses_only_the_given_generator"),
    (OverCounts, "capacity_never_exceeded"),
    (RestoresNoGenerator, "state_dict_round_trip"),
    (KeepsViews, "does_not_alias_its_input"),
]


@pytest.mark.parametrize("cls,check", BROKEN_MEMORIES, ids=[c.__name__ for c, _ in BROKEN_MEMORIES])
def test_a_broken_memory_fails_the_relevant_check(cls, check):
    with pytest.raises(AssertionError, match=f"fails check '{check}'"):
        dict(memory_checks(cls))[check]()
    with pytest.raises(AssertionError, match=f"'{check}'"):
        check_memory(cls)


def test_a_correct_memory_passes_every_check():
    assert [name for name, _ in memory_checks(ReservoirMemory)] == [name for name, _ in MEMORY_CHECKS]
    check_memory(ReservoirMemory)
