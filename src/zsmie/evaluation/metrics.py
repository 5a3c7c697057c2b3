"""Test metrics as the paper reports them: scikit-learn macro P / R / F1 over the label set,
and accuracy. (ZS-BERT and RE-Matching report a different "macro": not comparable.)"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


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
