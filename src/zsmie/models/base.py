"""The two faces every model has: encode a batch to sample vectors, and score them against a
matrix of label prototypes. Trainer, evaluator and predictor know nothing else of a model."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from zsmie.losses.ranking import max_margin_ranking


@dataclass
class Features:
    """Encoder outputs for a batch, the input of every model head."""

    text: Tensor  # [B, L, d] token states T
    text_mask: Tensor  # [B, L] bool, true at real tokens
    entity: Tensor  # [B, (k+1) d] entity vector E: [CLS] (+) marker states
    has_image: Tensor  # [B] bool
    image: Tensor | None = None  # [B, P, d_v] patch tokens V (zeros where no image)
    image_mask: Tensor | None = None  # [B, P] bool, false for every token of an imageless sample
    entity_mask: Tensor | None = None  # [B, L] bool, true at entity tokens and their markers


@dataclass
class HeadOutput:
    scores: Tensor  # [B, C] score of each sample against each label prototype
    embedding: Tensor  # [B, h] the sample's vector in the shared space (t-SNE, prediction)
    losses: dict[str, Tensor] = field(default_factory=dict)  # extra loss terms, unweighted
    extras: dict[str, Tensor] = field(default_factory=dict)  # e.g. MG-VAT nodes, attention
    # detached training diagnostics (tau_norm, expert_load [K], ...), averaged per epoch
    stats: dict[str, Tensor] = field(default_factory=dict)


class ZeroShotHead(nn.Module):
    """Base class of model heads: features + label prototypes [C, d] -> scores [B, C]."""

    uses_images: bool = False
    trainable: bool = True  # False: evaluated as built, with no training steps
    pair_scoring: bool = False  # True: scores (sample, label) pairs (zsmie.models.cross)

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        raise NotImplementedError

    def loss(self, output: HeadOutput, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Total training loss and its named terms; the base is the ranking loss (Eq. 13)."""
        rank = max_margin_ranking(output.scores, labels, self.margin)
        return rank, {"rank": rank}
