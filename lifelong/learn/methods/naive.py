"""Naive fine-tuning: plain SGD on each incoming batch, nothing else.

The lower bound of every continual-learning comparison; it shows catastrophic forgetting.
Settings: class-, task- and domain-incremental, online/task-free. No deviations.
"""

from __future__ import annotations

from lifelong.learn.base import Learner


class Naive(Learner):
    """Plain SGD: the base learner's update with the incoming-batch cross-entropy as its only term."""

    name = "naive"
    description = "fine-tuning with plain SGD on each incoming batch (lower bound)"
    paper = "baseline"
