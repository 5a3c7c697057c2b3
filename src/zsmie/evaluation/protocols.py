"""The open-world protocols on a trained run (README, "Open world"): `zsmie evaluate --run RUN
--protocol open|generalized`, and at the end of training when `protocol` says so.

- open: validation = validation-label samples + validation-part None samples, candidates the
  validation labels; the threshold with the best validation micro-F1 is stored in
  `open_set.json` (`"calibration": "real-none"`, used by `zsmie predict --open-set`) and
  applied to test = test-label samples + test-part None samples. The run's earlier
  leave-one-label-out threshold, where it had one, is measured on the same test set. A run
  trained with a none class (`open_world.none_negatives`) is scored by each label's margin
  over the none class's score, and its threshold is on that margin.
- generalized: candidates = training labels + validation (or test) labels; validation and
  test add the seen-label samples held out of training (zsmie.data.open_world). Only valid
  for runs trained with `protocol = "generalized"` (or models that do not train).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from zsmie.assemble import Prepared, encode_dataset, feature_cache, none_class, split_parts
from zsmie.config import Config, ConfigError, config_to_dict, load_config, save_config
from zsmie.data.batching import collate
from zsmie.data.datasets import cap_per_label, load_samples
from zsmie.data.images import apply_image_policy
from zsmie.data.open_world import hold_out_seen, null_samples_by_part
from zsmie.data.sample import Sample
from zsmie.data.types import LabelTexts, types_from_name
from zsmie.evaluation.open_world import (
    choose_stacking_constant,
    generalized_metrics,
    open_metrics,
    pr_curve,
)
from zsmie.evaluation.plots import pr_figure
from zsmie.evaluation.run import load_final_model
from zsmie.inference.open_set import choose_threshold
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.io import atomic_write_json
from zsmie.models.pipeline import ZeroShotModel
from zsmie.pretrained import require_run_folder
from zsmie.run_folder import (
    CONFIG,
    OPEN_PR,
    OPEN_SET,
    RESULTS,
    claim_run,
    copy_trained,
    open_world_file,
    read_record,
)

log = logging.getLogger(__name__)
PROTOCOLS = ("open", "generalized")
REAL_NONE = "real-none"
PR_POINTS = 200  # points of the stored precision-recall curve


def result_file(protocol: str) -> str:
    return open_world_file(protocol)


def score_samples(
    prepared: Prepared, model: ZeroShotModel, samples: list[Sample], labels: list[str], device
) -> tuple[np.ndarray, np.ndarray]:
    """Scores [N, C] against `labels` and gold ids (len(labels), "none", for other labels)."""
    config = prepared.config
    samples, _ = apply_image_policy(samples, config.images, used=model.uses_images)
    index = {label: i for i, label in enumerate(labels)}
    # A score ensemble reads the samples its trained model reads (same tokens, same cache).
    dataset = encode_dataset(getattr(model, "trained", model), config, samples, index,
                             feature_cache(config))
    loader = DataLoader(dataset, batch_size=config.train.eval_batch_size, shuffle=False,
                        collate_fn=functools.partial(
                            collate, pad_id=model.text.tokenizer.pad_token_id or 0))
    model.eval()
    texts = LabelTexts([prepared.label_text[label] for label in labels],
                       [types_from_name(label) for label in labels], labels)
    prototypes = label_prototypes(model, texts, {})
    predictions = run_model(model, loader, prototypes, device=device)
    gold = predictions.labels.numpy().copy()
    gold[gold < 0] = len(labels)
    return predictions.scores.numpy(), gold


def _stored_curve(scores: np.ndarray, gold: np.ndarray) -> dict:
    precision, recall, threshold = pr_curve(scores, gold)
    keep = np.unique(np.linspace(0, len(precision) - 1, PR_POINTS).round().astype(int))
    return {"precision": precision[keep].round(5).tolist(), "recall": recall[keep].round(5).tolist(),
            "threshold": threshold[keep].round(5).tolist()}


def _earlier_threshold(run: Path) -> dict | None:
    """The run's open_set.json when it is a leave-one-label-out calibration (not ours)."""
    record = read_record(run / OPEN_SET, "an open-set record")
    if record is None:
        return None
    if record.get("calibration") == REAL_NONE:
        return record.get("leave_one_label_out")
    return record


def open_parts(prepared: Prepared) -> tuple[dict[str, list[Sample]], dict[str, int]]:
    """The open protocol's validation and test samples (the part's relation samples, then its
    share of the None samples, capped per label as data.max_per_label says) and how many None
    samples each part (train too) was dealt."""
    config = prepared.config
    nulls = null_samples_by_part(load_samples(config), config.seed)
    return ({part: prepared.parts[part] + cap_per_label(nulls[part], config.data.max_per_label)
             for part in ("val", "test")}, {part: len(nulls[part]) for part in nulls})


def evaluate_open(prepared: Prepared, model: ZeroShotModel, run: Path, device) -> dict:
    none = none_class(prepared.config)  # with a trained none class: label score minus none score
    scored, (parts, dealt) = {}, open_parts(prepared)
    for part, samples in parts.items():
        labels = list(prepared.split.part(part))
        scores, gold = score_samples(prepared, model, samples, labels + list(none), device)
        if none:  # the none column is id C, the "none" answer's id, in `gold` too
            scores = scores[:, : len(labels)] - scores[:, len(labels):]
        scored[part] = (labels, scores, gold)
    return open_result(prepared, scored, dealt, run)


def open_result(prepared: Prepared, scored: dict[str, tuple[list[str], np.ndarray, np.ndarray]],
                dealt: dict[str, int], run: Path) -> dict:
    """The open protocol's figures from the scored validation and test parts ((labels, scores
    [N, C], gold with id C for None) each; `dealt`: the None samples per part): the threshold
    chosen on validation, test read with it; writes RUN/open_set.json and RUN/open_pr.png."""
    config = prepared.config
    none = none_class(config)
    labels, val_scores, val_gold = scored["val"]
    best = choose_threshold(val_scores.max(1), val_scores.argmax(1), val_gold, len(labels),
                            objective="micro_f1")
    threshold = best["threshold"]
    test_labels, test_scores, test_gold = scored["test"]
    result = {
        "protocol": "open",
        "none_samples": dealt,
        "calibration": {**best, "calibration": REAL_NONE,
                        "criterion": "validation micro-F1 over the validation labels, "
                                     "with the validation part's None samples"},
        "val": open_metrics(val_scores, val_gold, labels, threshold),
        "test": open_metrics(test_scores, test_gold, test_labels, threshold),
        # Always answering a label: the score without a reject option.
        "test_no_reject": open_metrics(test_scores, test_gold, test_labels,
                                       float(test_scores.min()) - 1.0),
        "pr_curve_test": _stored_curve(test_scores, test_gold),
    }
    earlier = _earlier_threshold(run)
    if earlier is not None and "threshold" in earlier and not none:  # not on margins
        result["test_leave_one_label_out"] = open_metrics(test_scores, test_gold, test_labels,
                                                          float(earlier["threshold"]))
    atomic_write_json(run / OPEN_SET, {
        "threshold": threshold, "calibration": REAL_NONE,
        **({"none_text": config.open_world.none_text,
            "rule": "answer the top label when its score minus the score of none_text's "
                    "prototype >= threshold, else 'none of these'"} if none else
           {"rule": "answer the top label when its score >= threshold, else 'none of these'"}),
        "criterion": result["calibration"]["criterion"],
        "micro_f1": best["micro_f1"], "macro_f1": best["macro_f1"], "accuracy": best["accuracy"],
        "labels": labels, "samples": int(len(val_gold)),
        "none_samples": int((val_gold == len(labels)).sum()),
        "leave_one_label_out": earlier,
    })
    pr_figure({"test": result}, run / OPEN_PR, title=f"open protocol, seed {config.seed}")
    return result


def evaluate_generalized(prepared: Prepared, model: ZeroShotModel, run: Path, device) -> dict:
    config = prepared.config
    if prepared.model.head.trainable and config.protocol != "generalized":
        raise ConfigError(
            f"{run}: trained with protocol = {config.protocol!r}, so the seen-label samples the "
            "generalized protocol tests on were in its training data: not a valid test. Train "
            "with --set protocol=generalized (their share is then held out of training)")
    _, full = split_parts(dataclasses.replace(config, protocol="zero_shot"), load_samples(config))
    shares = config.open_world
    held = hold_out_seen(full["train"], prepared.split.train, config.seed,
                         shares.seen_test_share, shares.seen_val_share)
    seen_labels = list(prepared.split.train)
    out: dict = {"protocol": "generalized", "seen_labels": seen_labels,
                 "held_out": {"val": len(held.val), "test": len(held.test)}}
    scored = {}
    for part, seen_samples in (("val", held.val), ("test", held.test)):
        labels = seen_labels + list(prepared.split.part(part))
        seen_rows = cap_per_label(seen_samples, config.data.max_per_label)
        scores, gold = score_samples(prepared, model, seen_rows + prepared.parts[part], labels,
                                     device)
        scored[part] = (scores, gold, np.arange(len(labels)) < len(seen_labels))
    stacking = choose_stacking_constant(*scored["val"])
    out["calibrated_stacking"] = {**stacking, "on": "validation: held-out seen + validation-label "
                                  "samples, H of per-sample accuracies"}
    out["val"] = generalized_metrics(*scored["val"], gamma=stacking["gamma"])
    out["test_without_stacking"] = generalized_metrics(*scored["test"], gamma=0.0)
    out["test"] = generalized_metrics(*scored["test"], gamma=stacking["gamma"])
    return out


def evaluate_protocol_prepared(
    prepared: Prepared, model: ZeroShotModel, protocol: str, run: str | Path, device
) -> dict:
    """Evaluate a prepared run (best weights loaded) under `protocol`; writes
    RUN/open_world_<protocol>.json (and, for open, open_set.json and open_pr.png)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol {protocol!r}: expected one of {list(PROTOCOLS)}")
    run = Path(run)
    evaluate = evaluate_open if protocol == "open" else evaluate_generalized
    result = evaluate(prepared, model, run, device)
    atomic_write_json(run / result_file(protocol), result)
    log.info("%s protocol: %s", protocol, json.dumps(result["test"], default=str)[:400])
    return result


def evaluate_run_protocol(run_dir: str | Path, protocol: str, data_dir: str | None = None) -> dict:
    """`zsmie evaluate --run RUN --protocol open|generalized` (with the run's score ensemble
    when it has one, as in training and `evaluate`)."""
    run = require_run_folder(run_dir, "zsmie evaluate --protocol")
    prepared, model, device = load_final_model(run, data_dir)
    return evaluate_protocol_prepared(prepared, model, protocol, run, device)


def trains_as_zero_shot(config: Config) -> bool:
    """The open protocol leaves training as in the zero-shot protocol (the None samples are
    only scored, at validation and test), so a zero-shot run of the same config is its run."""
    return config.protocol == "open" and not config.open_world.none_negatives


def open_run_from_zero_shot(source: str | Path, run: str | Path, config: Config) -> dict:
    """Make `run` the open-protocol run of `config` from `source`, a finished zero-shot run of
    the same config, instead of training it again: its weights, logs and results are copied,
    `config` is saved, and the open protocol is evaluated; results.json (written last) gains
    "open_world" and "trained_in" (`source`). Returns those results."""
    source, run = Path(source), Path(run)
    if not trains_as_zero_shot(config):
        raise ConfigError(f"{run}: protocol = {config.protocol!r} does not train as zero-shot")
    if not (source / RESULTS).is_file():
        raise FileNotFoundError(f"{source}: no {RESULTS}; not a finished run")
    twin = dataclasses.replace(config, protocol="zero_shot")
    if config_to_dict(load_config(source / CONFIG)) != config_to_dict(twin):
        raise ConfigError(f"{source}: not a zero-shot run of this config (config.toml differs)")
    with claim_run(run, overwrite=True):
        copy_trained(source, run)
        save_config(config, run / CONFIG)
        results = json.loads((source / RESULTS).read_text(encoding="utf-8"))
        prepared, model, device = load_final_model(run)
        results["open_world"] = evaluate_protocol_prepared(prepared, model, "open", run, device)
        results["trained_in"] = str(source)
        atomic_write_json(run / RESULTS, results)
    return results
