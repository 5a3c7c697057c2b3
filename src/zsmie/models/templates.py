"""The entity-filled score term: how well the sample's sentence reads as each label's
template filled with its own two entities.

    term(x, c) = cos(e(sentence of x), e(template_c(head of x, tail of x)))

with e a sentence encoder (mean-pooled, unit length; the untouched one, as for the type
prior). It is added to a model's scores at a weight chosen on validation
(benchmarks/label_templates.py), the way the type term is (zsmie.models.typing); the
templates come from zsmie.data.templates. Each sample reads every label's template with its
own entities, so the term costs one encoder pass per (sample, label) pair, and identical
filled sentences are encoded once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zsmie.data.templates import fill
from zsmie.encoders.text import TextEncoder
from zsmie.models.typing import unit_embeddings


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
