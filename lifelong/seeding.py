"""Named random streams: every source of randomness is a ``torch.Generator`` seeded from the run's
seed and a tag, so no code touches global random state."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, tag: str) -> int:
    """A stable 63-bit seed for a named sub-stream of randomness (memory, Fisher sampling, ...).

    Examples
    --------
    >>> derive_seed(0, "memory") == derive_seed(0, "memory") != derive_seed(1, "memory")
    True
    """
    digest = hashlib.sha256(f"{int(seed)}/{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
