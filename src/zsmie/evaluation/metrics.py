"""Test metrics as the paper reports them: scikit-learn macro P / R / F1 over the label set,
and accuracy. (ZS-BERT and RE-Matching report a different "macro": not comparable.) Of class
indices (classification_metrics), of a model's scored predictions (metrics_of), and of one
split part of a prepared run (evaluate_part)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from zsmie.inference.scoring import Predictions, label_prototypes, run_model


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict:
    """Macro precision / recall / F1 over all `labels` (fractions in 0..1) and accuracy."""
    ids = list(range(len(labels)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    p, r, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, average="macro", zero_division=0
    )
    per_p, per_r, per_f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, average=None, zero_division=0
    )
    return {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f1),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "samples": int(len(y_true)),
        "labels": list(labels),
        "per_label": {
            label: {
                "precision": float(per_p[i]),
                "recall": float(per_r[i]),
                "f1": float(per_f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def metrics_of(predictions: Predictions, labels: list[str]) -> dict:
    return classification_metrics(
        predictions.labels.tolist(), predictions.predicted.tolist(), labels
    )


@torch.no_grad()
def evaluate_part(prepared, model, loader, part: str, *, accelerator=None, cache=None) -> dict:
    """Metrics of one split part (val or test) over its own, unseen, label set.

    Everything runs in eval mode without autograd, the label prototypes included: with a
    fine-tuned encoder, prototypes built in training mode carry dropout noise, and model
    selection on them would be noisy. The caller switches back to training mode."""
    core = accelerator.unwrap_model(model) if accelerator is not None else model
    model.eval()
    prototypes = label_prototypes(core, prepared.texts(part), {} if cache is None else cache)
    predictions = run_model(model, loader, prototypes, accelerator=accelerator)
    return metrics_of(predictions, list(prepared.split.part(part)))
