"""Training-free baseline: the same text encoder, no training; the score is the cosine
similarity between the mean-pooled (marked) sentence and each label prototype."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from zsmie.encoders.text import masked_mean
from zsmie.models.base import Features, HeadOutput, ZeroShotHead


class SentenceSimilarity(ZeroShotHead):
    trainable = False

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        sentence = masked_mean(features.text, features.text_mask)  # [B, d]
        scores = F.normalize(sentence, dim=-1) @ F.normalize(prototypes, dim=-1).T  # [B, C]
        return HeadOutput(scores=scores, embedding=sentence)
