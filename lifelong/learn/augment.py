"""Batched, tensor-native data augmentation for image batches ``(B, C, H, W)``.

:class:`Augment` draws a random crop with zero padding (a shift of up to ``padding`` pixels each
way, as ``torchvision.transforms.RandomCrop(size, padding)`` does) and a horizontal flip with
probability 1/2 for every sample of a batch in one indexing operation on the batch's device. The
random offsets and flips are drawn from the ``torch.Generator`` passed in (the learner's own
augmentation stream, on the CPU: the same seed gives the same augmentations on every device) and
never from global random state.

A learner built with ``augment`` (``[train] augment = "crop_flip"``) applies it to the incoming
batch and to every replay batch before its forward pass, as the DER protocol does; its memory
stores the un-augmented inputs.

Examples
--------
>>> aug = AUGMENTATIONS["crop_flip"]
>>> x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
>>> aug(x, torch.Generator().manual_seed(0)).shape
torch.Size([2, 1, 4, 4])
>>> AUGMENTATIONS["none"] is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.errors import ConfigError, DataError

__all__ = ["AUGMENTATIONS", "Augment", "build_augment"]


@dataclass(frozen=True)
class Augment:
    """Random crop with zero padding ``padding`` (0: none) and a horizontal flip (``flip``)."""

    padding: int = 4
    flip: bool = True

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """``x`` (B, C, H, W) augmented sample by sample; the draws are two calls of ``generator``
        (the ``(2, B)`` crop offsets, then the ``B`` flip coins)."""
        if x.ndim != 4:
            raise DataError(f"augmentation needs image batches (B, C, H, W), got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        out = x
        p = self.padding
        if p:
            offsets = torch.randint(0, 2 * p + 1, (2, b), generator=generator).to(x.device)  # (2, B): top, left
            padded = F.pad(x, (p, p, p, p))  # (B, C, H + 2p, W + 2p), zeros outside the image
            rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
            cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
            idx = torch.arange(b, device=x.device)[:, None, None]
            # the advanced indices (B, H, W) go first, the channel slice last: (B, H, W, C)
            out = padded[idx, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.flip:
            coins = (torch.rand(b, generator=generator) < 0.5).to(x.device)  # (B,)
            out = torch.where(coins[:, None, None, None], out.flip(3), out)
        return out.contiguous()


#: Named augmentations for ``[train] augment``; ``"crop_flip"`` is the CIFAR protocol of the DER
#: paper (``RandomCrop(32, padding=4)`` and ``RandomHorizontalFlip``).
AUGMENTATIONS: dict[str, Augment | None] = {
    "none": None,
    "crop_flip": Augment(padding=4, flip=True),
    "crop": Augment(padding=4, flip=False),
    "flip": Augment(padding=0, flip=True),
}


def build_augment(name: str | None) -> Augment | None:
    """The augmentation named ``name`` (``None`` or ``"none"``: no augmentation)."""
    if name is None:
        return None
    if name not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation {name!r}; choose one of: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]
