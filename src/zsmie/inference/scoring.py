"""Run a model over a data loader: scores, predictions and sample embeddings, against label
prototypes encoded once while the text encoder is frozen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from zsmie.data.types import LabelTexts
from zsmie.models.pipeline import ZeroShotModel


@dataclass
class Predictions:
    index: Tensor  # [N] dataset positions
    scores: Tensor  # [N, C]
    labels: Tensor  # [N] gold label indices (-1 if none)
    embeddings: Tensor  # [N, h]

    @property
    def predicted(self) -> Tensor:
        return self.scores.argmax(-1)


@torch.no_grad()
def run_model(
    model: ZeroShotModel, loader, prototypes: Tensor, *, accelerator=None, device=None,
    on_batch: Callable[[int], object] | None = None,
) -> Predictions:
    """Scores for every sample in `loader`, gathered across processes when distributed.

    `device`: move each batch there (loaders not prepared by Accelerate). `on_batch`: called
    with each batch's sample count once it is scored (a progress bar's update)."""
    model.eval()
    parts: dict[str, list[Tensor]] = {"index": [], "scores": [], "labels": [], "embeddings": []}
    for batch in loader:
        if device is not None:
            batch = batch.to(device)
        out = model(batch, prototypes)
        values = {
            "index": batch.index,
            "scores": out.scores.float(),
            "labels": batch.labels,
            "embeddings": out.embedding.float(),
        }
        if accelerator is not None:
            values = accelerator.gather_for_metrics(values)
        for key, value in values.items():
            parts[key].append(value.cpu())
        if on_batch is not None:
            on_batch(len(batch.index))
    merged = {key: torch.cat(value) for key, value in parts.items()}
    order = merged["index"].argsort()  # dataset order, whatever the process layout
    return Predictions(**{key: value[order] for key, value in merged.items()})


def label_prototypes(model: ZeroShotModel, texts: list[str], cache: dict) -> Tensor:
    """Prototypes [C, d], each label encoded once per step; reused while the encoder is frozen."""
    if model.text.finetune:
        return model.prototypes(texts)
    key = texts.key() if isinstance(texts, LabelTexts) else tuple(texts)
    if key not in cache:
        with torch.no_grad():
            cache[key] = model.prototypes(texts)
    return cache[key]
