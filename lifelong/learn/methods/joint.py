"""Joint training: one model trained on the union of every chunk at once (the upper bound).

The loop builds the view: a single training chunk that holds all the training data, shuffled,
trained for the configured number of epochs. Evaluation still scores every chunk's test set, so
the accuracy matrix has a single row. It is not a continual learner and is never task-free.
Deviation: none; the update is :class:`~lifelong.learn.methods.naive.Naive`'s.
"""

from __future__ import annotations

from lifelong.learn.methods.naive import Naive


class Joint(Naive):
    name = "joint"
    description = "trains on all chunks at once (upper bound; not a continual learner)"
    paper = "baseline"
    data_view = "joint"
