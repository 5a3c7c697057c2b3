"""A type-aware score: a relation whose argument types do not fit the entities is unlikely.

    score'(x, c) = score(x, c) + lambda * [log P(h_c | head mention) + log P(t_c | tail mention)]

where (h_c, t_c) are label c's argument types (zsmie.data.types) and P(type | mention) comes
from a mention typer over a type vocabulary:

- `phrases`: softmax over types of cos(e(mention), e(type phrase)) / temperature, with e the
  untouched (training-free) sentence encoder;
- `typer`: a logistic regression on e(mention), trained on the seen relations' arguments
  (their typed labels give the types), balanced over types;
- `both`: the mean of the two log-probabilities.

A label with an unknown type gets 0 for that side (log 1: it fits any entity). Nothing is
learnt jointly with the model: any model (training-free, Proto, MG-VMoE, fine-tuned, WiSE-FT,
ensemble) takes the term, and lambda, the source and the temperature are chosen on validation
F1 after training (zsmie.training.type_prior) and kept in the run's records (zsmie.pretrained). The
idea is the entity-type constraint of NLI-based zero-shot RE (Sainz et al., 2021) and the
entity matching of RE-Matching (Zhao et al., 2023); it is not part of MG-VMoE's paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zsmie.data.types import DEFAULT_TYPES, Types
from zsmie.encoders.text import TextEncoder
from zsmie.models.base import HeadOutput
from zsmie.models.pipeline import AddedTerm

# The `config` arguments are a zsmie.config.Config, read but never imported (models sit below it).
SOURCES = ("phrases", "typer", "both")
MENTION_CACHE = 100_000  # mention strings whose type log-probabilities are kept


@torch.no_grad()
def unit_embeddings(encoder: TextEncoder, strings: Sequence[str], batch_size: int = 256) -> Tensor:
    """Unit-length mean-pooled embeddings [n, d] of `strings`, in batches, on the CPU."""
    parts = [encoder.embed_texts(list(strings[i:i + batch_size])).float()
             for i in range(0, len(strings), batch_size)]
    return F.normalize(torch.cat(parts), dim=-1).cpu()


class MentionTyper(nn.Module):
    """log P(type | mention) [n, K] over the vocabulary's K types, for mention strings."""

    def __init__(self, encoder: TextEncoder, types: dict[str, str], source: str = "phrases",
                 temperature: float = 0.05, typer: dict[str, Any] | None = None) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"type prior source {source!r}: expected one of {SOURCES}")
        if source != "phrases" and typer is None:
            raise ValueError(f"type prior source {source!r} needs a fitted typer")
        if temperature <= 0:
            raise ValueError(f"type prior temperature {temperature}: must be above 0")
        self.encoder, self.types, self.keys = encoder, dict(types), list(types)
        self.source, self.temperature, self.typer = source, temperature, typer
        self._phrases: Tensor | None = None
        self._cache: dict[str, Tensor] = {}

    def embed(self, strings: list[str], batch_size: int = 256) -> Tensor:
        """Unit-length embeddings [n, d] of the untouched encoder (mean-pooled)."""
        return unit_embeddings(self.encoder, strings, batch_size)

    def _typer_logits(self, embedded: Tensor) -> Tensor:
        """The typer's logits [n, K]; a type it never saw gets the mean logit (no evidence)."""
        classes = self.typer["classes"]
        coef = torch.tensor(self.typer["coef"], dtype=torch.float32)  # [k, d]
        logits = embedded @ coef.T + torch.tensor(self.typer["intercept"], dtype=torch.float32)
        out = logits.mean(-1, keepdim=True).expand(-1, len(self.keys)).clone()
        for j, key in enumerate(classes):
            out[:, self.keys.index(key)] = logits[:, j]
        return out

    def from_embeddings(self, embedded: Tensor) -> Tensor:
        """log P(type | mention) [n, K] from unit-length mention embeddings [n, d]."""
        parts = []
        if self.source in ("phrases", "both"):
            if self._phrases is None:
                self._phrases = self.embed([self.types[k] for k in self.keys])
            parts.append(F.log_softmax(embedded @ self._phrases.T / self.temperature, dim=-1))
        if self.source in ("typer", "both"):
            parts.append(F.log_softmax(self._typer_logits(embedded), dim=-1))
        return torch.stack(parts).mean(0)

    def forward(self, strings: list[str]) -> Tensor:
        new = [s for s in dict.fromkeys(strings) if s not in self._cache]
        if new:
            if len(self._cache) + len(new) > MENTION_CACHE:
                self._cache.clear()
            for s, row in zip(new, self.from_embeddings(self.embed(new)), strict=True):
                self._cache[s] = row
        return torch.stack([self._cache[s] for s in strings])

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "temperature": self.temperature, "types": self.types,
                "typer": self.typer}


def type_term(head: Tensor, tail: Tensor | None, label_types: tuple[Types, ...],
              keys: list[str]) -> Tensor:
    """log P(h_c | head) + log P(t_c | tail) [B, C] from per-mention log-probabilities [B, K];
    an unknown type (None, or no tail entity) adds 0."""
    def side(logp: Tensor | None, wanted: list[str | None]) -> Tensor:
        if logp is None:
            return head.new_zeros(head.size(0), len(wanted))
        padded = torch.cat([logp, logp.new_zeros(logp.size(0), 1)], dim=-1)  # column K: 0
        index = torch.tensor([keys.index(t) if t is not None else len(keys) for t in wanted])
        return padded[:, index]

    return (side(head, [h for h, _ in label_types])
            + side(tail, [t for _, t in label_types]))


@dataclass
class TypedPrototypes:
    """A model's label side and the labels' (head, tail) types; indexing picks from both."""

    inner: Any
    types: tuple[Types, ...] | None

    def __getitem__(self, keep) -> TypedPrototypes:
        rows = torch.arange(len(self.types or ()))[keep].tolist() if self.types else None
        return TypedPrototypes(self.inner[keep], tuple(self.types[i] for i in rows)
                               if rows is not None else None)


class TypePriored(AddedTerm):
    """A model whose scores take the type term at weight lambda; it has the faces of a
    ZeroShotModel that evaluation and prediction use. Labels without types (plain texts)
    and samples without entity texts get the model's scores unchanged."""

    what = "type prior"

    def __init__(self, inner: nn.Module, typer: MentionTyper, weight: float) -> None:
        super().__init__(inner, weight)
        self.typer = typer

    def prototypes(self, label_texts: list[str]) -> TypedPrototypes:
        types = getattr(label_texts, "types", None)
        return TypedPrototypes(self.inner.prototypes(label_texts), types)

    def term(self, entities, label_types: tuple[Types, ...]) -> Tensor:
        """The bracket of the type-aware score [B, C] for the batch's (head, tail) texts."""
        head = self.typer([h for h, _ in entities])
        tails = [t for _, t in entities]
        tail = self.typer(tails) if all(t is not None for t in tails) else None
        return type_term(head, tail, label_types, self.typer.keys)

    def with_term(self, scores: Tensor, batch, prototypes: TypedPrototypes) -> Tensor:
        """The inner model's `scores` [B, C] plus lambda times the type term (unchanged for a
        weight of 0, labels without types, or samples without entity texts)."""
        types, entities = prototypes.types, getattr(batch, "entities", None)
        if self.weight == 0 or not types or entities is None:
            return scores
        return scores + self.weight * self.term(entities, types).to(scores.device, scores.dtype)

    def forward(self, batch, prototypes: TypedPrototypes) -> HeadOutput:
        out = self.inner(batch, prototypes.inner)
        return HeadOutput(self.with_term(out.scores, batch, prototypes), out.embedding,
                          out.losses, out.extras)


def frozen_encoder(model: nn.Module, config: Any) -> TextEncoder:
    """The untouched text encoder: the model's own when it stayed frozen (or the score
    ensemble's reference), else a fresh frozen copy."""
    if not model.text.finetune:
        return model.text
    reference = getattr(model, "reference", None)
    if reference is not None and not reference.text.finetune:
        return reference.text
    encoder = TextEncoder(config.text.model, config.text.max_length, False, config.text.marker_init)
    return encoder.to(next(model.parameters()).device)


def typed(model: nn.Module, config: Any, record: dict[str, Any] | None,
          encoder: TextEncoder | None = None) -> nn.Module:
    """`model` with the type term of `record` (a run's type-prior record), or as it is for none or a
    weight of 0. `encoder`: the untouched encoder, when the caller has one at hand."""
    if record is None or float(record["weight"]) == 0:
        return model
    typer = MentionTyper(encoder or frozen_encoder(model, config), record["types"] or DEFAULT_TYPES,
                         record["source"], float(record["temperature"]), record.get("typer"))
    return TypePriored(model, typer, float(record["weight"]))
