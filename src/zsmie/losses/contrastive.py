"""Multimodal contrastive loss between the fused text and image of each sample (Eq. 8)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def multimodal_contrastive(text: Tensor, image: Tensor) -> Tensor:
    """Symmetric cross-entropy over raw dot products of matched text/image pairs (Eq. 8).

    text [N, d] mean fused text vectors T~_i, image [N, d] mean fused image vectors V~_i ->
    scalar: 1/N sum_i -1/2 (log softmax_j(T~_i . V~_j)[i] + log softmax_j(T~_j . V~_i)[i]).
    Eq. 8 sums over the batch; the mean keeps beta independent of the batch size. Only
    samples that have an image may be passed in.
    """
    logits = text @ image.T  # [N, N], logits[i, j] = T~_i . V~_j
    target = logits.new_tensor(range(len(logits))).long()
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
