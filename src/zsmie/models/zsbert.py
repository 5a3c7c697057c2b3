"""ZS-BERT (Chen and Li, NAACL 2021), a simplification sharing this project's encoder.

The sample is the attribute vector [E1] (+) [E2] (+) mean(sentence) (MET: [E1] (+) mean),
projected into the label embedding space; labels are their text through the text encoder,
used as they are (not projected, as ZS-BERT's Sentence-BERT description embeddings).
Prediction: the nearest label by cosine. Training loss, after their attribute
representation loss: softmax cross-entropy over the seen labels plus a margin term that
keeps the true label's similarity above the others'.

Simplified from the paper: one linear projection instead of their tanh-dense layers; the
softmax scores the cosine similarity to the seen label embeddings (scaled by
`model.scale`) instead of a separate classifier layer; the margin term is the ranking loss
of Eq. 13 on those scores, summed over the other seen labels rather than only the most
similar one; labels are embedded from their names (no descriptions), by the same encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zsmie.encoders.text import masked_mean
from zsmie.layers.scoring import PrototypeScorer
from zsmie.losses.ranking import max_margin_ranking
from zsmie.models.base import Features, HeadOutput, ZeroShotHead


class ZSBert(ZeroShotHead):
    def __init__(self, text_dim: int, n_markers: int, **scorer) -> None:
        super().__init__(scorer.pop("margin", 1.0))
        self.text_dim = text_dim
        scorer["score"] = "cosine"
        self.scorer = PrototypeScorer(
            (n_markers + 1) * text_dim, text_dim, text_dim, fixed_labels=True, **scorer
        )

    def attributes(self, features: Features) -> Tensor:
        """[E1] (+) [E2] (+) mean-pooled sentence -> [B, (k+1) d]."""
        markers = features.entity[:, self.text_dim :]  # drop [CLS]
        return torch.cat([markers, masked_mean(features.text, features.text_mask)], -1)

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        scores, embedding = self.scorer(self.attributes(features), prototypes)
        return HeadOutput(scores=scores, embedding=embedding)

    def loss(self, output: HeadOutput, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Softmax over the seen labels plus the margin term."""
        ce = F.cross_entropy(output.scores, labels)
        rank = max_margin_ranking(output.scores, labels, self.margin)
        return ce + rank, {"ce": ce, "rank": rank}
