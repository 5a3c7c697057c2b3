"""Entity-aware attention fusion (paper, section 4.4).

U = sum_i alpha_i h_i over the fused tokens H = [V~; T~]. As written in the paper,
alpha_i = softmax_i(W_a^T [h_i (+) E] + b_a): the E term is the same for every token and
cancels in the softmax, so that form ignores the entity ("paper"). The "query" form,
alpha_i = softmax_i(w^T tanh(W [h_i (+) E] + b)), lets the entity steer the pooling.
Padding and the image tokens of imageless samples are masked out of the softmax.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zsmie.choices import FUSIONS


class EntityAwareAttention(nn.Module):
    def __init__(self, token_dim: int, entity_dim: int, form: str = "query", hidden: int = 0):
        super().__init__()
        if form not in FUSIONS:
            raise ValueError(f"attention form {form!r}: expected paper or query")
        self.form = form
        if form == "paper":
            self.score = nn.Linear(token_dim + entity_dim, 1)
        else:
            hidden = hidden or token_dim
            self.project = nn.Linear(token_dim + entity_dim, hidden)
            self.score = nn.Linear(hidden, 1, bias=False)
        # Zero scoring weights: attention starts uniform, U starts as the mean token.
        nn.init.zeros_(self.score.weight)

    def forward(self, tokens: Tensor, entity: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """tokens H [B, N, d], entity E [B, e], mask [B, N] -> (U [B, d], alpha [B, N])."""
        pairs = torch.cat([tokens, entity.unsqueeze(1).expand(-1, tokens.size(1), -1)], -1)
        if self.form == "query":
            pairs = torch.tanh(self.project(pairs))
        logits = self.score(pairs).squeeze(-1)  # [B, N]
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        alpha = logits.softmax(-1)  # [B, N]
        return (alpha.unsqueeze(-1) * tokens).sum(1), alpha
