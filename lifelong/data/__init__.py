"""Stage 1 of the pipeline: data contracts, dataset sources and the scenarios that cut them into streams.

``lifelong.data`` re-exports the contracts (:class:`Dataset`, :class:`Batch`, :class:`Chunk`,
:class:`EvalSet`); sources live in :mod:`lifelong.data.datasets`, streams in
:mod:`lifelong.data.scenarios` and the L2M lifetimes in :mod:`lifelong.data.lifetimes`.
"""

from lifelong.data.core import Batch, Chunk, Dataset, EvalSet

__all__ = ["Batch", "Chunk", "Dataset", "EvalSet"]
