"""Robust fine-tuning of the zero-shot space, applied to the best weights after training:

- WiSE-FT (Wortsman et al., 2022): every trainable weight interpolated between the starting
  model and the fine-tuned one, theta = (1 - a) theta_0 + a theta_ft (`train.wise_alpha`,
  or a chosen on validation from WISE_GRID with `train.wise_search`);
- score ensembling with the training-free similarity (zsmie.models.ensemble;
  `model.ensemble_weight`, or w chosen on validation from ENSEMBLE_GRID with
  `train.ensemble_search`).

Searched together: every (a, w) pair is scored by validation macro-F1 (one validation pass
per a, one for the training-free scores; mixing is free). Ties keep the plainer setting
(larger a, smaller w). theta_0 is rebuilt from the config (same seed: the same initial
weights), so a resumed run gets the same starting point.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from zsmie.assemble import build_model
from zsmie.config import Config
from zsmie.evaluation.metrics import metrics_of
from zsmie.inference.scoring import Predictions, label_prototypes, run_model
from zsmie.io import atomic_write_json
from zsmie.models.ensemble import mix_scores, reference_model
from zsmie.run_folder import ENSEMBLE, FINETUNED_WEIGHTS, RUN_WEIGHTS

log = logging.getLogger(__name__)
WISE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
ENSEMBLE_GRID = tuple(i / 10 for i in range(11))
FINETUNED_FILE = FINETUNED_WEIGHTS  # the fine-tuned end (alpha = 1) when a < 1 is chosen


def interpolate_weights(
    initial: dict[str, Tensor], finetuned: dict[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """(1 - alpha) initial + alpha finetuned for every floating tensor; the two must hold the
    same keys and shapes, and non-floating tensors (counters, ids) must be equal."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"WiSE-FT alpha {alpha}: expected a value in [0, 1]")
    if set(initial) != set(finetuned):
        diff = sorted(set(initial) ^ set(finetuned))
        raise ValueError(f"WiSE-FT: the two weight sets differ in keys {diff[:5]}")
    out = {}
    for name, end in finetuned.items():
        start = initial[name].to(end.device)
        if start.shape != end.shape:
            raise ValueError(f"WiSE-FT: {name} has shape {tuple(start.shape)} and {tuple(end.shape)}")
        if end.is_floating_point():  # the two ends exactly, not up to rounding
            start = start.to(end.dtype)
            out[name] = (start.clone() if alpha == 0 else end.clone() if alpha == 1
                         else torch.lerp(start, end, alpha))
        elif not torch.equal(start, end):
            raise ValueError(f"WiSE-FT: non-floating tensor {name} differs between the two")
        else:
            out[name] = end.clone()
    return out


def snapshot(model) -> dict[str, Tensor]:
    """A copy of the trainable weights (on CPU `trainable_state_dict` shares their storage)."""
    return {name: tensor.clone() for name, tensor in model.trainable_state_dict().items()}


def initial_weights(config: Config) -> dict[str, Tensor]:
    """The trainable weights a run started from: the model rebuilt under the run's seed,
    leaving the caller's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return snapshot(build_model(config))


def wanted(config: Config) -> bool:
    t, m = config.train, config.model
    return t.wise_search or t.ensemble_search or t.wise_alpha != 1.0 or m.ensemble_weight > 0


def mixed(trained: Predictions, reference: Predictions | None, weight: float) -> Predictions:
    """`trained` with its scores mixed with the reference's at `weight` (as it is for none)."""
    if reference is None:
        return trained
    return dataclasses.replace(trained, scores=mix_scores(trained.scores, reference.scores, weight))


def best_setting(
    trained: dict[float, Predictions], reference: Predictions | None,
    weights: Sequence[float], labels: list[str],
) -> tuple[float, float, dict[str, float]]:
    """The (alpha, weight) of highest macro-F1 given each alpha's predictions and the
    training-free ones; ties keep the plainer setting (larger alpha, then smaller weight).
    Returns alpha, weight and every pair's F1."""
    pairs = {(alpha, weight): metrics_of(mixed(trained[alpha], reference, weight), labels)["f1"]
             for alpha in trained for weight in weights}
    alpha, weight = best_pair(pairs)
    f1s = {f"a={a:g} w={w:g}": round(f1, 6) for (a, w), f1 in sorted(pairs.items(), key=_plainer)}
    return alpha, weight, f1s


def _plainer(item) -> tuple[float, float]:
    (alpha, weight), _ = item
    return -alpha, weight


def best_pair(f1s: dict[tuple[float, float], float]) -> tuple[float, float]:
    """The (alpha, weight) of highest F1; ties keep the plainer setting (larger alpha, then
    smaller weight)."""
    best = None
    for pair, f1 in sorted(f1s.items(), key=_plainer):
        if best is None or f1 > best[1]:
            best = (pair, f1)
    return best[0]


def scores_by_alpha(core, initial, finetuned, alphas, loader, texts, accelerator=None):
    """alpha -> the model's predictions over `loader` with the interpolated weights."""
    out = {}
    for alpha in alphas:
        core.load_trainable(interpolate_weights(initial, finetuned, alpha))
        out[alpha] = run_model(core, loader, label_prototypes(core, texts, {}),
                               accelerator=accelerator)
    return out


def reference_scores(core, config: Config, loader, texts, accelerator=None) -> Predictions:
    """The training-free similarity's predictions over `loader`."""
    reference = reference_model(core, config)
    return run_model(reference, loader, label_prototypes(reference, texts, {}),
                     accelerator=accelerator)


def choose(config: Config, prepared, core, val_loader, accelerator, out: Path) -> dict:
    """Search (alpha, weight) on validation, leave `core` with the chosen weights, write them
    to best.safetensors (and the weight to ensemble.json); the fine-tuned end itself goes to
    finetuned.safetensors when the chosen alpha is below 1 (so every (a, w) stays
    reachable). Returns the record for results."""
    alphas = WISE_GRID if config.train.wise_search else (config.train.wise_alpha,)
    weights = ENSEMBLE_GRID if config.train.ensemble_search else (config.model.ensemble_weight,)
    texts = prepared.texts("val")
    finetuned = snapshot(core)
    initial = initial_weights(config) if any(a != 1.0 for a in alphas) else finetuned
    reference = None
    if any(w > 0 for w in weights):
        reference = reference_scores(core, config, val_loader, texts, accelerator)
    trained = scores_by_alpha(core, initial, finetuned, alphas, val_loader, texts, accelerator)
    alpha, weight, val_f1 = best_setting(trained, reference, weights, list(prepared.split.part("val")))
    if accelerator.is_main_process and alpha != 1.0:
        core.load_trainable(finetuned)
        core.save(out / FINETUNED_WEIGHTS, {"model": config.model.name, "text": core.text.identity})
    core.load_trainable(interpolate_weights(initial, finetuned, alpha))
    if accelerator.is_main_process:
        metadata = {"model": config.model.name, "text": core.text.identity, "wise_alpha": f"{alpha:g}"}
        core.save(out / RUN_WEIGHTS, metadata)
        if weight > 0:
            atomic_write_json(out / ENSEMBLE, {"weight": weight, "chosen_on": "validation f1"})
    log.info("robust fine-tuning: WiSE-FT alpha %g, ensemble weight %g (validation F1 %.4f)",
             alpha, weight, val_f1[f"a={alpha:g} w={weight:g}"])
    return {"wise_alpha": alpha, "ensemble_weight": weight, "val_f1": val_f1}
