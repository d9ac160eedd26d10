"""Cumulative training: at chunk i, train on the union of chunks 0..i (from the current weights).

The loop builds the view, so row i of the accuracy matrix is a model trained jointly on everything
seen so far: the reference for intransigence. It stores all data, so it is an oracle, not a
continual learner. Deviation: none; the update is :class:`~lifelong.learn.methods.naive.Naive`'s.
"""

from __future__ import annotations

from lifelong.learn.methods.naive import Naive


class Cumulative(Naive):
    name = "cumulative"
    description = "retrains on the union of all chunks so far at each chunk (oracle reference)"
    paper = "baseline"
    data_view = "cumulative"
