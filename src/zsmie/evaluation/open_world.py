"""Scores of the open-world protocols, from a score matrix [N, C] and gold label ids.

Open protocol: "none" is id C (one past the candidate labels). The model answers its top
label when the top score reaches a threshold, else none. Micro P / R / F1 are over the
non-None labels (the usual relation-extraction score with a no-relation class: a None sample
answered with a label is a false positive, a relation answered none a false negative);
macro-F1 counts "none" as one more class; the AUROC is that of the top score as a detector of
"has one of the labels" (scikit-learn).

Generalized protocol: candidates are the seen (training) labels and the unseen ones together;
`seen` marks the seen columns. Calibrated stacking (Chao et al., 2016) subtracts a constant
gamma from the seen columns' scores before the argmax; gamma is chosen on validation for the
best harmonic mean H of seen and unseen accuracy (per sample). Seen / unseen figures are over
the samples whose gold label is seen / unseen, "weighted" (per-sample accuracy, support-
weighted F1) and "macro" (mean per-label recall and F1 over the subset's labels).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from zsmie.evaluation.metrics import classification_metrics


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def open_predictions(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Top label where its score >= threshold, else "none" (= number of candidate labels)."""
    scores = np.asarray(scores)
    return np.where(scores.max(1) >= threshold, scores.argmax(1), scores.shape[1])


def open_metrics(scores: np.ndarray, gold: np.ndarray, labels: list[str], threshold: float) -> dict:
    """Micro P/R/F1 over the labels (not none), macro-F1 with none, accuracy, reject AUROC."""
    scores, gold = np.asarray(scores), np.asarray(gold)
    none = len(labels)
    predicted = open_predictions(scores, threshold)
    p, r, f1, _ = precision_recall_fscore_support(
        gold, predicted, labels=list(range(none)), average="micro", zero_division=0)
    with_none = classification_metrics(gold, predicted, [*labels, "none"])
    is_relation = gold != none
    auroc = (float(roc_auc_score(is_relation, scores.max(1)))
             if 0 < is_relation.sum() < len(gold) else float("nan"))
    return {
        "threshold": float(threshold),
        "micro_precision": float(p), "micro_recall": float(r), "micro_f1": float(f1),
        "macro_f1_with_none": with_none["f1"], "accuracy": with_none["accuracy"],
        "auroc": auroc,
        "samples": int(len(gold)), "none_samples": int((~is_relation).sum()),
        "answered_none": int((predicted == none).sum()),
        "labels": list(labels),
    }


def pr_curve(scores: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Micro precision and recall over the labels as the threshold falls past each sample's
    top score (highest first): (precision, recall, threshold), one point per sample."""
    scores, gold = np.asarray(scores), np.asarray(gold)
    top, answer = scores.max(1), scores.argmax(1)
    order = np.argsort(-top, kind="stable")
    correct = np.cumsum(answer[order] == gold[order])  # a none-gold sample is never correct
    accepted = np.arange(1, len(gold) + 1)
    relations = max(int((gold != scores.shape[1]).sum()), 1)
    return correct / accepted, correct / relations, top[order]


def stacked_predictions(scores: np.ndarray, seen: np.ndarray, gamma: float) -> np.ndarray:
    """argmax of the scores with gamma subtracted from the seen columns."""
    return (np.asarray(scores) - gamma * np.asarray(seen, dtype=float)).argmax(1)


def _subset_scores(gold: np.ndarray, predicted: np.ndarray, ids: np.ndarray) -> dict:
    rows = np.isin(gold, ids)
    out = {}
    for average in ("weighted", "macro"):
        _, recall, f1, _ = precision_recall_fscore_support(
            gold[rows], predicted[rows], labels=ids.tolist(), average=average, zero_division=0)
        # Weighted recall over the subset's own labels is its per-sample accuracy.
        out[average] = {"accuracy": float(recall), "f1": float(f1)}
    out["samples"] = int(rows.sum())
    return out


def generalized_metrics(scores: np.ndarray, gold: np.ndarray, seen: np.ndarray,
                        gamma: float = 0.0) -> dict:
    """Seen / unseen accuracy and F1 and their harmonic means H, weighted and macro."""
    scores, gold, seen = np.asarray(scores), np.asarray(gold), np.asarray(seen, dtype=bool)
    predicted = stacked_predictions(scores, seen, gamma)
    parts = {"seen": _subset_scores(gold, predicted, np.flatnonzero(seen)),
             "unseen": _subset_scores(gold, predicted, np.flatnonzero(~seen))}
    out: dict = {"gamma": float(gamma), **parts}
    for average in ("weighted", "macro"):
        s, u = parts["seen"][average], parts["unseen"][average]
        out[average] = {"H_accuracy": harmonic_mean(s["accuracy"], u["accuracy"]),
                        "H_f1": harmonic_mean(s["f1"], u["f1"])}
    return out


def choose_stacking_constant(scores: np.ndarray, gold: np.ndarray, seen: np.ndarray) -> dict:
    """The gamma maximising H of seen and unseen per-sample accuracy (calibrated stacking).

    With d = (best seen score) - (best unseen score), a sample answers a seen label exactly
    when gamma < d; so only the order of gamma among the d values matters. The candidates are
    the midpoints between consecutive distinct d values and one unit beyond both ends; ties
    in H go to the candidate nearest 0. Returns gamma, H, seen and unseen accuracy.
    """
    scores, gold, seen = np.asarray(scores), np.asarray(gold), np.asarray(seen, dtype=bool)
    seen_ids, unseen_ids = np.flatnonzero(seen), np.flatnonzero(~seen)
    d = scores[:, seen].max(1) - scores[:, ~seen].max(1)
    seen_gold, unseen_gold = np.isin(gold, seen_ids), np.isin(gold, unseen_ids)
    if not seen_gold.any() or not unseen_gold.any():
        raise ValueError("calibrated stacking needs samples of both seen and unseen labels")
    # Right when the answer falls on the gold side: the best label within that side.
    seen_right = np.sort(d[seen_gold & (seen_ids[scores[:, seen].argmax(1)] == gold)])
    unseen_right = np.sort(d[unseen_gold & (unseen_ids[scores[:, ~seen].argmax(1)] == gold)])
    cuts = np.unique(d)
    gammas = np.concatenate([[cuts[0] - 1], (cuts[1:] + cuts[:-1]) / 2, [cuts[-1] + 1]])
    seen_acc = (len(seen_right) - np.searchsorted(seen_right, gammas, "right")) / seen_gold.sum()
    unseen_acc = np.searchsorted(unseen_right, gammas, "left") / unseen_gold.sum()
    h = np.where(seen_acc + unseen_acc > 0,
                 2 * seen_acc * unseen_acc / np.maximum(seen_acc + unseen_acc, 1e-12), 0.0)
    best = np.flatnonzero(h == h.max())
    i = best[np.argmin(np.abs(gammas[best]))]
    return {"gamma": float(gammas[i]), "H": float(h[i]), "seen_accuracy": float(seen_acc[i]),
            "unseen_accuracy": float(unseen_acc[i])}
