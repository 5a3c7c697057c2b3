"""Projection of sample and label vectors into a shared space and their score (section 4.4):
o_i = FFNN(U~; theta_o1) . FFNN(R_i; theta_o2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def identity_average_(linear: nn.Linear) -> None:
    """Set W = [I/n ... I/n], b = 0: the output starts as the mean of the n input blocks.

    With only a handful of training labels, freely initialised projections collapse onto
    them; starting at the encoder's own space keeps unseen labels reachable.
    """
    out_dim, in_dim = linear.weight.shape
    if in_dim % out_dim:
        raise ValueError(f"identity init needs input {in_dim} to be a multiple of {out_dim}")
    n = in_dim // out_dim
    with torch.no_grad():
        linear.weight.copy_(torch.eye(out_dim).repeat(1, n) / n)
        linear.bias.zero_()


class PrototypeScorer(nn.Module):
    """Projects samples [B, d_s] and label prototypes [C, d_l] to [*, h] and scores them.

    `fixed_labels=True` projects the samples only, into the label encoder's own space
    (ZS-BERT): prototypes are scored as they are, so `proj_dim` must equal `label_dim`.
    """

    def __init__(
        self,
        sample_dim: int,
        label_dim: int,
        proj_dim: int,
        init: str = "identity",
        score: str = "dot",
        scale: float = 1.0,
        dropout: float = 0.1,
        fixed_labels: bool = False,
    ) -> None:
        super().__init__()
        if fixed_labels and proj_dim != label_dim:
            raise ValueError(f"fixed labels need proj_dim {proj_dim} == label_dim {label_dim}")
        self.sample_proj = nn.Linear(sample_dim, proj_dim)
        self.label_proj = None if fixed_labels else nn.Linear(label_dim, proj_dim)
        if init == "identity":
            identity_average_(self.sample_proj)
            if self.label_proj is not None:
                identity_average_(self.label_proj)
        self.dropout = nn.Dropout(dropout)
        self.score, self.scale = score, scale

    def embed_samples(self, samples: Tensor) -> Tensor:
        return self.sample_proj(self.dropout(samples))  # [B, h]

    def embed_labels(self, prototypes: Tensor) -> Tensor:
        if self.label_proj is None:
            return prototypes  # [C, h], h = d_l
        return self.label_proj(self.dropout(prototypes))  # [C, h]

    def forward(self, samples: Tensor, prototypes: Tensor) -> tuple[Tensor, Tensor]:
        """-> (scores [B, C], sample embeddings [B, h])."""
        u, r = self.embed_samples(samples), self.embed_labels(prototypes)
        if self.score == "cosine":
            return self.scale * F.normalize(u, dim=-1) @ F.normalize(r, dim=-1).T, u
        return u @ r.T, u
