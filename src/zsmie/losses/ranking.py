"""Max-margin ranking loss (paper, Eq. 13).

It is also the task loss through which MG-VMoE maximises the variational lower bound on
I(Z, Y), E_q(Z|M)[log p(Y|M)] (Eq. 7): the second term of the bottleneck objective (Eq. 1).
"""

from __future__ import annotations

import torch
from torch import Tensor


def max_margin_ranking(scores: Tensor, labels: Tensor, margin: float = 1.0) -> Tensor:
    """L_rank = sum_{i != y} max(0, margin - o+ + o_i), averaged over the batch (Eq. 13).

    scores [B, C], labels [B] indices of the true label -> scalar.
    """
    positive = scores.gather(1, labels.unsqueeze(1))  # [B, 1] o+
    hinge = (margin - positive + scores).clamp_min(0.0)  # [B, C]
    is_true = torch.nn.functional.one_hot(labels, scores.size(1)).bool()
    return hinge.masked_fill(is_true, 0.0).sum(1).mean()
