"""Sampled label sets for training over many relations (`train.label_sample`).

With a fine-tuned text encoder every training step encodes every training label's text; with
FewRel's relations joined to MNRE's (55 labels instead of 8) that costs five times the step.
A step's ranking loss (Eq. 13) then runs over a sample of the labels instead: every label in
the batch (the positives), then negatives whose (head, tail) type signature is one of the
batch's (the hard ones: same-signature relations are what zero-shot matching confuses, e.g.
person-person couple / peer / siblings), then other labels at random, `k` in all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zsmie.data.types import Types


def sample_labels(labels: Tensor, types: Sequence[Types], k: int, generator: torch.Generator
                  ) -> Tensor:
    """Sorted indices [k'] of the step's labels, k' = max(k, labels in the batch) <= len(types).

    labels [B]: the batch's label indices (-1: none, ignored); types: each label's (head, tail)
    types, a signature with an unknown part never counts as shared.
    """
    n = len(types)
    present = sorted({int(i) for i in labels.tolist() if i >= 0})
    if k >= n:
        return torch.arange(n)
    chosen = set(present)
    signatures = {types[i] for i in present if None not in types[i]}
    others = torch.randperm(n, generator=generator).tolist()
    hard = [i for i in others if i not in chosen and types[i] in signatures]
    rest = [i for i in others if i not in chosen and types[i] not in signatures]
    for i in hard + rest:
        if len(chosen) >= k:
            break
        chosen.add(i)
    return torch.tensor(sorted(chosen))


def remap(labels: Tensor, kept: Tensor, n: int) -> Tensor:
    """labels [B] (indices among n labels, -1: none) -> indices among `kept` (-1 stays)."""
    position = torch.full((n,), -1, dtype=torch.long)
    position[kept] = torch.arange(kept.numel())
    return torch.where(labels >= 0, position[labels.clamp_min(0).cpu()].to(labels.device), labels)
