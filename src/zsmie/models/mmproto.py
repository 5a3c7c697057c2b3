"""MMProto: Proto with the image (the paper's multimodal prototype baseline, Table 1).

The sample vector is the entity vector E ([CLS] (+) marker states) concatenated with the
pooled image feature: the mean of the image's patch tokens, projected to the text width,
and zeros for a sample without an image. It is then scored against the label prototypes
exactly as Proto (projections, dot or scaled cosine, ranking loss, Eq. 13).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zsmie.encoders.text import masked_mean
from zsmie.layers.scoring import PrototypeScorer
from zsmie.models.base import Features, HeadOutput, ZeroShotHead


class MMProto(ZeroShotHead):
    uses_images = True

    def __init__(
        self, entity_dim: int, text_dim: int, image_dim: int, proj_dim: int, **scorer
    ) -> None:
        super().__init__(scorer.pop("margin", 1.0))
        self.text_dim = text_dim
        # Zero-initialised: the head starts as Proto and learns how much the image adds.
        self.image_proj = nn.Linear(image_dim, text_dim) if image_dim else None
        if self.image_proj is not None:
            nn.init.zeros_(self.image_proj.weight)
            nn.init.zeros_(self.image_proj.bias)
        self.scorer = PrototypeScorer(entity_dim + text_dim, text_dim, proj_dim, **scorer)

    def pooled_image(self, features: Features) -> Tensor:
        """Mean patch token, projected to the text width; zeros without an image. -> [B, d]"""
        batch = features.entity.size(0)
        if features.image is None or self.image_proj is None:
            return features.entity.new_zeros(batch, self.text_dim)
        pooled = self.image_proj(masked_mean(features.image, features.image_mask))  # [B, d]
        return pooled * features.has_image.unsqueeze(-1).to(pooled.dtype)

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        sample = torch.cat([features.entity, self.pooled_image(features)], -1)  # [B, (k+2) d]
        scores, embedding = self.scorer(sample, prototypes)
        return HeadOutput(scores=scores, embedding=embedding)
