"""Open set: answer "none of these" when no offered label fits, by a score threshold chosen on
the validation split and stored in the run (`open_set.json`).

Validation has no "none" samples, so they are made by leaving labels out: every validation
sample is scored twice, against all validation labels (it should answer its own label) and
against the validation labels without its own (it should answer "none of these"). The rule is
"answer the top label when its score is at least the threshold, else none"; the threshold is
the one that maximises macro-F1 over the validation labels plus "none" on those 2N decisions.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from zsmie.data.batching import SampleDataset, collate
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.io import atomic_write_json
from zsmie.models.pipeline import ZeroShotModel
from zsmie.run_folder import OPEN_SET

log = logging.getLogger(__name__)
NONE_OF_THESE = "none of these"


def _macro_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    return float(f1.mean())


def _micro_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Micro-F1 over the labels, "none" (the last class) left out: the usual RE score."""
    denominator = 2 * tp[:-1].sum() + fp[:-1].sum() + fn[:-1].sum()
    return float(2 * tp[:-1].sum() / denominator) if denominator > 0 else 0.0


def choose_threshold(
    scores: np.ndarray, answers: np.ndarray, gold: np.ndarray, n_labels: int, *,
    objective: str = "macro_f1",
) -> dict[str, float]:
    """The threshold t maximising macro-F1 of "answer `answers[i]` if scores[i] >= t, else none"
    (`objective="micro_f1"`: micro-F1 over the labels without none; both are returned).

    Labels are 0..n_labels-1 and "none" is n_labels (in `gold` only). Sweeps t from above the
    highest score down, accepting one group of equal scores at a time (O(N) counts updates);
    t lies halfway between the last accepted and the next score. Returns threshold, macro_f1
    (over the labels and "none", as scikit-learn's with zero_division=0) and accuracy.
    """
    scores, answers, gold = (np.asarray(a) for a in (scores, answers, gold))
    none = n_labels
    tp, fp, fn = (np.zeros(n_labels + 1) for _ in range(3))
    # Start with every decision rejected (answering "none").
    tp[none] = np.sum(gold == none)
    fp[none] = np.sum(gold != none)
    fn[:none] = np.bincount(gold[gold != none], minlength=n_labels)
    correct = tp[none]
    order = np.argsort(-scores, kind="stable")
    def record(threshold: float) -> dict[str, float]:
        return {"threshold": threshold, "macro_f1": _macro_f1(tp, fp, fn),
                "micro_f1": _micro_f1(tp, fp, fn), "accuracy": float(correct / len(gold))}

    best = record(float(scores.max()) + 1.0)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and scores[order[j]] == scores[order[i]]:
            k = order[j]
            if gold[k] == none:
                tp[none], fn[none], correct = tp[none] - 1, fn[none] + 1, correct - 1
            else:
                fp[none] -= 1
            if answers[k] == gold[k]:
                tp[answers[k]], fn[answers[k]], correct = tp[answers[k]] + 1, fn[answers[k]] - 1, correct + 1
            else:
                fp[answers[k]] += 1
            j += 1
        accepted = float(scores[order[i]])
        below = float(scores[order[j]]) if j < len(order) else accepted - 1.0
        candidate = record((accepted + below) / 2)
        if candidate[objective] > best[objective]:
            best = candidate
        i = j
    return best


@torch.no_grad()
def leave_one_label_out(
    model: ZeroShotModel, dataset: SampleDataset, texts: list[str], *, batch_size: int,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2N decisions of the calibration: (top scores, answered label, gold), where gold is
    the sample's label for the full-set half and "none" (= len(texts)) for the left-out half."""
    n_labels = len(texts)
    collate_fn = functools.partial(collate, pad_id=model.text.tokenizer.pad_token_id or 0)

    def loader(data) -> DataLoader:
        return DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)

    model.eval()  # prototypes without dropout, as the samples
    prototypes = label_prototypes(model, texts, {})
    full = run_model(model, loader(dataset), prototypes, device=device)
    gold = full.labels.numpy()
    if (gold < 0).any():
        raise ValueError("open-set calibration: every sample needs a label of the set")
    top, answer = (t.numpy() for t in full.scores.max(-1))
    out_top, out_answer = np.zeros_like(top), np.zeros_like(answer)
    for label in range(n_labels):
        rows = np.flatnonzero(gold == label)
        if not len(rows):
            continue
        keep = [c for c in range(n_labels) if c != label]
        scored = run_model(model, loader(Subset(dataset, rows.tolist())), prototypes[keep],
                           device=device)
        best, position = scored.scores.max(-1)
        out_top[rows], out_answer[rows] = best.numpy(), np.asarray(keep)[position.numpy()]
    return (np.concatenate([top, out_top]), np.concatenate([answer, out_answer]),
            np.concatenate([gold, np.full_like(gold, n_labels)]))


def calibrate(
    model: ZeroShotModel, dataset: SampleDataset, labels: list[str], texts: list[str], *,
    batch_size: int, device: torch.device | str = "cpu",
) -> dict:
    """The open-set record of a run: threshold, its validation macro-F1 and accuracy."""
    if len(labels) < 2:
        raise ValueError(f"open-set calibration needs at least 2 validation labels, got {labels}")
    scores, answers, gold = leave_one_label_out(model, dataset, texts, batch_size=batch_size,
                                                device=device)
    best = choose_threshold(scores, answers, gold, len(labels))
    n = len(gold) // 2
    accepted = scores >= best["threshold"]
    return {
        **best,
        "calibration": "leave-one-label-out",
        "rule": f"answer the top label when its score >= threshold, else {NONE_OF_THESE!r}",
        "criterion": "macro-F1 over the validation labels and 'none', leave-one-label-out",
        "labels": list(labels),
        "samples": int(n),
        "answered_with_all_labels": float(accepted[:n].mean()),
        "none_when_label_left_out": float(1 - accepted[n:].mean()),
    }


def calibrate_prepared(prepared, model: ZeroShotModel, out_dir: Path, device) -> dict | None:
    """Calibrate on the validation part of a prepared run and write `open_set.json`."""
    labels = list(prepared.split.part("val"))
    if len(labels) < 2:
        log.warning("open set: not calibrated (needs 2 validation labels, has %d)", len(labels))
        return None
    record = calibrate(model, prepared.datasets["val"], labels, prepared.texts("val"),
                       batch_size=prepared.config.train.eval_batch_size, device=device)
    atomic_write_json(Path(out_dir) / OPEN_SET, record)
    log.info("open set: threshold %.4f (validation macro-F1 %.4f with 'none')",
             record["threshold"], record["macro_f1"])
    return record

