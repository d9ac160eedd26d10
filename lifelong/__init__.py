"""lifelong: a PyTorch engine for models that keep learning.

It cuts real datasets into non-stationary streams (class-, task- and domain-incremental, online,
blurry, drifting), runs continual learners on them (fine-tuning, replay, regularisation,
distillation, complementary fast/slow learners and adaptive ones), logs every step as raw counts,
computes the classic and L2M metrics as pure functions of that log, and reports them. It also
serves a model that learns while it serves, and runs experiment grids on Ray.

Start with ``lifelong run`` on the command line, or from Python::

    from lifelong.data.datasets import load_dataset
    from lifelong.data.scenarios import class_incremental
    from lifelong.learn.methods import make_learner
    from lifelong.learn.nets import mlp
    from lifelong.learn.loop import LoopConfig, iter_run

Importing the package does no work: no downloads, no files, no seeding.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
