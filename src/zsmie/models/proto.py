"""Proto: the label-embedding prototype network (Ma et al., 2016), the paper's text baseline.

The entity vector E ([CLS] (+) marker states) and each label prototype R go through their
own projection; the score is their dot product (or scaled cosine); ranking loss (Eq. 13).
"""

from __future__ import annotations

from torch import Tensor

from zsmie.layers.scoring import PrototypeScorer
from zsmie.models.base import Features, HeadOutput, ZeroShotHead


class Proto(ZeroShotHead):
    def __init__(self, entity_dim: int, label_dim: int, proj_dim: int, **scorer) -> None:
        margin = scorer.pop("margin", 1.0)
        super().__init__(margin)
        self.scorer = PrototypeScorer(entity_dim, label_dim, proj_dim, **scorer)

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        scores, embedding = self.scorer(features.entity, prototypes)
        return HeadOutput(scores=scores, embedding=embedding)
