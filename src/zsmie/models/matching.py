"""Fine-grained matching for zero-shot relation extraction, in the spirit of RE-Matching
(Zhao et al., ACL 2023). MRE only.

The sample-label score is split into entity matching and context matching:
    s = scale * (lambda * (cos(h, R_h) + cos(t, R_t)) / 2 + (1 - lambda) * cos(c, R_c))
with h and t the [E1] and [E2] marker states, c the mean of the sentence's tokens with the
entities and their markers removed, and R_h, R_t, R_c three learned views (projections) of
the label prototype R. lambda = sigmoid(w) is learned, starting at 1/2. Ranking loss, Eq. 13.

Simplified from the paper: RE-Matching matches the entities against the descriptions of the
relation's head and tail entity types and the context against the relation description,
and distils the context representation; here labels are known by their names only, so the
head, tail and context views are learned projections of the one label prototype, the
context is the masked mean of the non-entity tokens, and lambda is learned, not tuned.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zsmie.encoders.text import masked_mean
from zsmie.layers.scoring import PrototypeScorer
from zsmie.models.base import Features, HeadOutput, ZeroShotHead


class RelationMatching(ZeroShotHead):
    def __init__(self, text_dim: int, proj_dim: int, **scorer) -> None:
        super().__init__(scorer.pop("margin", 1.0))
        self.text_dim = text_dim
        self.scale = scorer.pop("scale", 1.0)
        scorer.update(score="cosine", scale=1.0)
        self.head_match = PrototypeScorer(text_dim, text_dim, proj_dim, **scorer)
        self.tail_match = PrototypeScorer(text_dim, text_dim, proj_dim, **scorer)
        self.context_match = PrototypeScorer(text_dim, text_dim, proj_dim, **scorer)
        self.entity_weight = nn.Parameter(torch.zeros(()))  # lambda = sigmoid(w)

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        d = self.text_dim
        head, tail = features.entity[:, d : 2 * d], features.entity[:, 2 * d : 3 * d]  # [B, d]
        if features.entity_mask is None:
            raise ValueError("matching needs Features.entity_mask (the entity token positions)")
        context = masked_mean(features.text, features.text_mask & ~features.entity_mask)
        s_head, u_head = self.head_match(head, prototypes)  # [B, C], [B, h]
        s_tail, u_tail = self.tail_match(tail, prototypes)
        s_context, u_context = self.context_match(context, prototypes)
        weight = torch.sigmoid(self.entity_weight)
        scores = self.scale * (weight * (s_head + s_tail) / 2 + (1 - weight) * s_context)
        embedding = torch.cat([u_head, u_tail, u_context], -1)  # [B, 3h]
        return HeadOutput(scores, embedding, extras={"entity_weight": weight.detach()})
