"""The entity-filled score term: how well the sample's sentence reads as each label's
template filled with its own two entities.

    term(x, c) = cos(e(sentence of x), e(template_c(head of x, tail of x)))

with e a sentence encoder (mean-pooled, unit length; the untouched one, as for the type
prior). `Templated` adds it to a model's scores at a weight chosen on validation F1 after
training, together with the type prior (zsmie.training.type_prior, `train.template_search`),
the way the type term is added (zsmie.models.typing); the templates come from
zsmie.data.templates, and a label the map lacks gets the one its name spells. Each sample
reads every label's template with its own entities, so the term costs one encoder pass per
(sample, label) pair of short sentences, and identical filled sentences are encoded once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from zsmie.data.templates import fill
from zsmie.data.verbalise import relation_template
from zsmie.encoders.text import TextEncoder
from zsmie.models.base import HeadOutput
from zsmie.models.pipeline import AddedTerm
from zsmie.models.typing import frozen_encoder, unit_embeddings

# Encoder tokens of one filled template ("{head} was born in {tail}" with two short mentions,
# and [CLS]/[SEP]), for accounting a request's work (zsmie.inference, zsmie.serving).
TEMPLATE_PAIR_TOKENS = 16


@torch.no_grad()
def template_term(encoder: TextEncoder, sentences: Sequence[str],
                  entities: Sequence[tuple[str, str]], templates: Sequence[str]) -> Tensor:
    """term [N, C] for N sentences with their (head, tail) mentions and C label templates."""
    if len(sentences) != len(entities):
        raise ValueError(f"{len(sentences)} sentences but {len(entities)} entity pairs")
    filled = [fill(t, head, tail) for head, tail in entities for t in templates]
    unique = list(dict.fromkeys(filled))
    row = {text: i for i, text in enumerate(unique)}
    index = torch.tensor([row[text] for text in filled]).view(len(sentences), len(templates))
    sentence = unit_embeddings(encoder, sentences)  # [N, d]
    label = unit_embeddings(encoder, unique)[index]  # [N, C, d]
    return torch.einsum("nd,ncd->nc", sentence, label)


@dataclass
class TemplatedPrototypes:
    """A model's label side and each label's template (None: no term); indexing picks both."""

    inner: Any
    templates: tuple[str | None, ...]

    def __getitem__(self, keep) -> TemplatedPrototypes:
        rows = torch.arange(len(self.templates))[keep].tolist()
        return TemplatedPrototypes(self.inner[keep], tuple(self.templates[i] for i in rows))


class Templated(AddedTerm):
    """A model whose scores take the template term at `weight`. A label without a name (the
    open-set none text) and a sample without a tail entity (MET) get the model's scores."""

    what = "template"

    def __init__(self, inner: nn.Module, encoder: TextEncoder, templates: Mapping[str, str],
                 weight: float) -> None:
        super().__init__(inner, weight)
        self.encoder, self.templates = encoder, dict(templates)

    def prototypes(self, label_texts: list[str]) -> TemplatedPrototypes:
        names = getattr(label_texts, "names", None) or (None,) * len(label_texts)
        return TemplatedPrototypes(self.inner.prototypes(label_texts), tuple(
            None if n is None else self.templates.get(n) or relation_template(n) for n in names))

    def term(self, batch, templates: Sequence[str | None]) -> Tensor:
        """The template term [B, C]: 0 in the columns without a template and the rows
        without both entities."""
        out = torch.zeros(len(batch.index), len(templates))
        entities, sentences = getattr(batch, "entities", None), getattr(batch, "sentences", None)
        if entities is None or sentences is None:
            return out
        rows = [i for i, (_, tail) in enumerate(entities) if tail is not None]
        cols = [j for j, t in enumerate(templates) if t is not None]
        if rows and cols:
            out[torch.tensor(rows)[:, None], torch.tensor(cols)] = template_term(
                self.encoder, [sentences[i] for i in rows], [entities[i] for i in rows],
                [templates[j] for j in cols]).float()
        return out

    def forward(self, batch, prototypes: TemplatedPrototypes) -> HeadOutput:
        out = self.inner(batch, prototypes.inner)
        scores = out.scores
        if self.weight:
            scores = scores + self.weight * self.term(batch, prototypes.templates).to(
                scores.device, scores.dtype)
        return HeadOutput(scores, out.embedding, out.losses, out.extras)


def templated(model: nn.Module, config: Any, record: dict[str, Any] | None,
              encoder: TextEncoder | None = None) -> nn.Module:
    """`model` with the template term of `record` (the `templates` part of a run's type-prior
    record: weight and template map), or as it is for none or a weight of 0."""
    if not record or float(record["weight"]) == 0:
        return model
    return Templated(model, encoder or frozen_encoder(model, config), record["map"],
                     float(record["weight"]))
