"""Cross-encoder (entailment-style) scorer: the marked sentence and one label text are read
together, "[CLS] sentence-with-markers [SEP] label text [SEP]", by the text encoder, and a
linear head scores the match (the NLI formulation of zero-shot relation extraction, Sainz et
al., 2021). `model.name = "cross"`.

The head reads the normalised mean states of the two segments, u (sentence) and v (label),
as [u * v, |u - v|] and starts at `scale` x cos(u, v) (weights `scale` on the product,
0 on the distance): like the bi-encoders' identity projections, training starts from the
encoder's own similarity rather than from a random score.

Training: each sample against its gold label and `model.negatives` sampled other training
labels (0 = all), cross-entropy over those candidates. Inference: one encoder pass per
(sample, label) pair: C times the bi-encoder's cost for C candidate labels.

The bi-encoders' label side is a prototype matrix [C, d]; here it is the labels' token ids
(LabelTokens), so the pair model keeps the same two faces (`prototypes`, `forward`) that
training, evaluation, open-set calibration and prediction call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zsmie.data.batching import Batch, pad_sequences
from zsmie.encoders.text import masked_mean
from zsmie.models.base import Features, HeadOutput, ZeroShotHead
from zsmie.models.pipeline import ZeroShotModel

LABEL_TOKENS = 64  # at most this many tokens of a label text


@dataclass
class LabelTokens:
    """Token ids of each label text, closing special token included ("text [SEP]")."""

    ids: list[Tensor]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, keep) -> LabelTokens:
        return LabelTokens([self.ids[i] for i in keep])


class CrossEncoderHead(ZeroShotHead):
    pair_scoring = True

    def __init__(self, hidden: int, negatives: int = 3, dropout: float = 0.1,
                 scale: float = 1.0) -> None:
        super().__init__()
        self.negatives = negatives
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(2 * hidden, 1)
        with torch.no_grad():  # start at scale * cos(u, v)
            self.score.weight.zero_()
            self.score.weight[0, :hidden] = scale
            self.score.bias.zero_()

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        raise TypeError("the cross-encoder scores (sample, label) pairs: use CrossEncoderModel")

    def candidates(self, labels: Tensor, n_labels: int) -> Tensor:
        """[B, k] label indices to score: all of them, or in training the gold label and
        `negatives` others drawn at random."""
        all_labels = torch.arange(n_labels, device=labels.device).expand(len(labels), -1)
        if not self.training or not self.negatives or self.negatives >= n_labels - 1:
            return all_labels
        noise = torch.rand(len(labels), n_labels, device=labels.device)
        noise.scatter_(1, labels.unsqueeze(1), -1.0)  # the gold label sorts first
        return noise.argsort(1)[:, : self.negatives + 1]

    def pair_scores(self, states: Tensor, sentence: Tensor, label: Tensor) -> Tensor:
        """Pair token states [N, L, d] and the two segments' masks [N, L] -> scores [N]."""
        u = F.normalize(masked_mean(states, sentence), dim=-1)
        v = F.normalize(masked_mean(states, label), dim=-1)
        return self.score(self.dropout(torch.cat([u * v, (u - v).abs()], -1))).squeeze(-1)

    def loss(self, output: HeadOutput, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy over the scored candidates (the others are -inf)."""
        ce = F.cross_entropy(output.scores, labels)
        return ce, {"ce": ce}


class CrossEncoderModel(ZeroShotModel):
    head: CrossEncoderHead

    def prototypes(self, label_texts: list[str]) -> LabelTokens:
        tokenizer = self.text.tokenizer
        suffix = self.text._suffix
        ids = [
            torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"][:LABEL_TOKENS]
                         + suffix)
            for text in label_texts
        ]
        return LabelTokens(ids)

    def forward(self, batch: Batch, prototypes: LabelTokens) -> HeadOutput:
        n_labels = len(prototypes)
        device = batch.input_ids.device
        candidates = self.head.candidates(batch.labels.clamp_min(0), n_labels)  # [B, k]
        lengths = batch.attention_mask.sum(1).tolist()
        rows = [
            torch.cat([batch.input_ids[b, : lengths[b]], prototypes.ids[c].to(device)])
            for b in range(len(batch)) for c in candidates[b].tolist()
        ]
        pad = self.text.tokenizer.pad_token_id or 0
        ids = pad_sequences(rows, pad).long()
        sizes = torch.tensor([len(r) for r in rows], device=device)
        starts = torch.tensor(lengths, device=device).repeat_interleave(candidates.size(1))
        position = torch.arange(ids.size(1), device=device).unsqueeze(0)
        mask = position < sizes.unsqueeze(1)  # [B k, L]
        sentence = position < starts.unsqueeze(1)
        states = self.text(ids, mask)  # [B k, L, d]
        scores = self.head.pair_scores(states, sentence, mask & ~sentence).view(candidates.shape)
        full = scores.new_full((len(batch), n_labels), float("-inf"))
        full = full.scatter(1, candidates, scores)
        embedding = masked_mean(states, mask).view(*candidates.shape, -1).mean(1)  # [B, d]
        return HeadOutput(scores=full, embedding=embedding)
