"""Score ensembling with the training-free similarity:

    scores = (1 - w) z(trained scores) + w z(cosine(sentence, label) of the untouched encoder)

z standardises each sample's scores over the candidate labels (mean 0, std 1), so that the
weight w means the same whatever the trained model's score scale (dot, cosine x 10, ...);
w = 0 ranks as the trained model, w = 1 as the training-free baseline. The weight comes from
the config (`model.ensemble_weight`) or, chosen on validation after training
(`train.ensemble_search`), from the run's records (zsmie.pretrained reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from zsmie.encoders.text import TextEncoder
from zsmie.models.base import HeadOutput
from zsmie.models.pipeline import WrappedModel, ZeroShotModel
from zsmie.models.similarity import SentenceSimilarity

# The `config` arguments are a zsmie.config.Config, read but never imported (models sit below it).


def standardise(scores: Tensor) -> Tensor:
    """Each row [.., C] to mean 0 and standard deviation 1 over its C labels."""
    centred = scores - scores.mean(-1, keepdim=True)
    return centred / centred.std(-1, unbiased=False, keepdim=True).clamp_min(1e-6)


def mix_scores(trained: Tensor, reference: Tensor, weight: float) -> Tensor:
    """(1 - w) z(trained) + w z(reference), both [B, C]."""
    return (1 - weight) * standardise(trained) + weight * standardise(reference)


@dataclass
class EnsemblePrototypes:
    """The label side of both models; indexing picks the same labels from both."""

    trained: Any
    reference: Tensor

    def __getitem__(self, keep) -> EnsemblePrototypes:
        return EnsemblePrototypes(self.trained[keep], self.reference[keep])


def reference_model(trained: nn.Module, config: Any) -> ZeroShotModel:
    """The training-free similarity on the untouched encoder: the trained model's own encoder
    when it stayed frozen (its cached features serve both), else a fresh frozen copy."""
    text = trained.text
    if text.finetune:
        text = TextEncoder(config.text.model, config.text.max_length, False, config.text.marker_init)
        text.to(next(trained.parameters()).device)
    return ZeroShotModel(text, SentenceSimilarity())


class ScoreEnsemble(WrappedModel):
    """A trained model whose scores are mixed with the training-free similarity's; it has
    the faces of a ZeroShotModel that evaluation and prediction use."""

    def __init__(self, trained: nn.Module, reference: ZeroShotModel, weight: float) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"ensemble weight {weight}: expected a value in [0, 1]")
        self.trained, self.reference, self.weight = trained, reference, weight

    @property
    def wrapped(self) -> nn.Module:
        return self.trained

    def prototypes(self, label_texts: list[str]) -> EnsemblePrototypes:
        return EnsemblePrototypes(
            self.trained.prototypes(label_texts), self.reference.prototypes(label_texts)
        )

    def forward(self, batch, prototypes: EnsemblePrototypes) -> HeadOutput:
        out = self.trained(batch, prototypes.trained)
        reference = self.reference(batch, prototypes.reference)
        scores = mix_scores(out.scores, reference.scores, self.weight)
        return HeadOutput(scores, out.embedding, out.losses, out.extras)


def ensembled(model: nn.Module, config: Any, weight: float) -> nn.Module:
    """`model` wrapped in a ScoreEnsemble with `weight`, or as it is for a weight of 0."""
    if weight <= 0:
        return model
    return ScoreEnsemble(model, reference_model(model, config), weight)
