"""A trained model on disk, in the Hugging Face convention: `save_pretrained(dir)` and
`from_pretrained(dir)` (zsmie.ZeroShotExtractor's, which call `save_model` and `read_folder`).

A model folder holds four files (their names are zsmie.run_folder's):

- config.toml: the model's configuration (zsmie.config);
- model.safetensors: its weights (the trainable ones; frozen encoders reload from their source);
- inference.json: everything its answers depend on besides those: the score-ensemble weight,
  the WiSE-FT alpha the weights were interpolated with, the type prior, the open-set threshold
  and its rule, and the label texts and label split of its training;
- README.md: the model card (what it was trained on, the split, its validation and test
  figures, how to load it).

A run folder (what `zsmie train` writes) holds the same model in the run layout (weights in
best.safetensors, the answer records in ensemble.json, type_prior.json, open_set.json and
data.json) beside its training state; it loads here as it is, so every run trained before the
model folder existed still loads, evaluates and predicts unchanged. This module is the one
implementation of "load a run": prediction, evaluation, calibration, the type-prior fit and
the benchmarks all read a folder through `read_folder`, build its model with `core_model` and
wrap it as it answers with `answering_model`.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from zsmie import __version__
from zsmie.assemble import build_model
from zsmie.config import Config, load_config, save_config
from zsmie.encoders.precision import set_precision
from zsmie.io import atomic_write, atomic_write_json, atomic_write_text
from zsmie.models.ensemble import ensembled
from zsmie.models.pipeline import ZeroShotModel, read_weights
from zsmie.models.templates import templated
from zsmie.models.typing import frozen_encoder, typed
from zsmie.run_folder import (
    CONFIG,
    DATA,
    ENSEMBLE,
    INFERENCE,
    MODEL_CARD,
    MODEL_FILES,
    MODEL_WEIGHTS,
    ONNX,
    OPEN_SET,
    RESULTS,
    RUN_WEIGHTS,
    TYPE_PRIOR,
    ModelFolderError,
    read_record,
)

FORMAT = 1  # inference.json's "format": a later change of its fields raises it
# How an open-set threshold was calibrated (open_set.json's "calibration"), in words.
CALIBRATIONS = {
    "real-none": "calibrated on real 'None' samples (zsmie evaluate --protocol open)",
    "leave-one-label-out": "calibrated by leaving each validation sample's label out "
                           "(no real 'None' samples)",
}
TYPE_PRIOR_FIELDS = ("weight", "source", "temperature", "types")


@dataclass(frozen=True)
class OpenSet:
    """The open-set answer: "none of these" when the best score (minus the none class's
    score, for a run trained with one) is under `threshold`."""

    threshold: float
    calibration: str  # a key of CALIBRATIONS
    none_text: str | None = None


@dataclass
class Inference:
    """Everything a model's answers depend on besides its config and weights: the records a
    run chose on validation (each as the run wrote it; None when it chose none) and its data."""

    ensemble: dict[str, Any] | None = None  # {"weight": w, ...}; None: config's model.ensemble_weight
    type_prior: dict[str, Any] | None = None  # zsmie.models.typing's record; None: no type term
    open_set: dict[str, Any] | None = None  # {"threshold", "calibration", ...}; None: not calibrated
    wise_alpha: float | None = None  # the WiSE-FT alpha of the weights (None: not interpolated)
    # the data of its training: {"split": {part: labels}, "label_text": {label: text}, ...}
    data: dict[str, Any] = field(default_factory=dict)

    def ensemble_weight(self, config: Config) -> float:
        """The run's chosen weight, else the config's `model.ensemble_weight`."""
        return float(self.ensemble["weight"]) if self.ensemble else config.model.ensemble_weight

    def threshold(self) -> OpenSet | None:
        """The open-set threshold (None: not calibrated); checked when the folder is read."""
        if self.open_set is None:
            return None
        return OpenSet(float(self.open_set["threshold"]),
                       self.open_set.get("calibration", "leave-one-label-out"),
                       self.open_set.get("none_text"))

    def training_texts(self) -> set[str]:
        """Labels (and their label texts) the model was trained on."""
        train = self.data.get("split", {}).get("train", [])
        return set(train) | {self.data.get("label_text", {}).get(label, label) for label in train}

    def as_record(self) -> dict[str, Any]:
        """inference.json's content."""
        return {"format": FORMAT, "ensemble": self.ensemble, "wise_alpha": self.wise_alpha,
                "type_prior": self.type_prior, "open_set": self.open_set, "data": self.data}


@dataclass
class ModelFolder:
    """A model folder or a run folder, read and checked (nothing built yet)."""

    path: Path
    layout: str  # "model" (save_pretrained) or "run" (zsmie train)
    config: Config  # with the overrides it was read with
    weights: Path
    inference: Inference
    results: dict[str, Any] | None  # the figures a model folder keeps (a run's: results.json)


def _check_ensemble(record: dict | None, path: Path) -> dict | None:
    if record is None:
        return None
    weight = record.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise ModelFolderError(f"{path}: field 'weight' should be a number in [0, 1], got {weight!r}")
    return record


def _check_type_prior(record: dict | None, path: Path) -> dict | None:
    if record is None:
        return None
    for key in TYPE_PRIOR_FIELDS:
        if key not in record:
            raise ModelFolderError(f"{path}: field {key!r} missing")
    templates = record.get("templates")
    if templates is not None:
        weight, mapping = templates.get("weight"), templates.get("map")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
            raise ModelFolderError(f"{path}: field 'templates.weight' should be a number >= 0, "
                                   f"got {weight!r}")
        if not isinstance(mapping, dict) or not all(
                isinstance(t, str) and "{head}" in t and "{tail}" in t for t in mapping.values()):
            raise ModelFolderError(f"{path}: field 'templates.map' should map labels to "
                                   "templates holding {head} and {tail}")
    return record


def _check_open_set(record: dict | None, path: Path) -> dict | None:
    """An open-set record with a finite threshold, a known calibration (records written
    before the field existed are leave-one-label-out) and an optional none class text."""
    if record is None:
        return None
    if "threshold" not in record:
        raise ModelFolderError(f"{path}: not an open-set record (field 'threshold' missing)")
    threshold = record["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise ModelFolderError(f"{path}: field 'threshold' should be a finite number, got {threshold!r}")
    calibration = record.get("calibration", "leave-one-label-out")
    if calibration not in CALIBRATIONS:
        raise ModelFolderError(f"{path}: field 'calibration' should be one of {sorted(CALIBRATIONS)}, "
                               f"got {calibration!r}")
    none_text = record.get("none_text")
    if none_text is not None and not (isinstance(none_text, str) and none_text.strip()):
        raise ModelFolderError(f"{path}: field 'none_text' should be a non-empty string, "
                               f"got {none_text!r}")
    return record


def _wise_alpha(weights: Path) -> float | None:
    """The WiSE-FT alpha recorded in the weights' metadata (robust fine-tuning writes it)."""
    with safe_open(str(weights), "pt") as handle:
        alpha = (handle.metadata() or {}).get("wise_alpha")
    return None if alpha is None else float(alpha)


def _read_run_inference(path: Path, weights: Path) -> Inference:
    """The answer records of a run folder, one file each (the run layout)."""
    return Inference(
        ensemble=_check_ensemble(read_record(path / ENSEMBLE, "an ensemble record"), path / ENSEMBLE),
        type_prior=_check_type_prior(read_record(path / TYPE_PRIOR, "a type-prior record"),
                                     path / TYPE_PRIOR),
        open_set=_check_open_set(read_record(path / OPEN_SET, "an open-set record"), path / OPEN_SET),
        wise_alpha=_wise_alpha(weights),
        data=read_record(path / DATA, "a data summary") or {},
    )


def _read_model_inference(path: Path) -> tuple[Inference, dict[str, Any] | None]:
    """inference.json of a model folder (the model layout), and the figures it keeps."""
    file = path / INFERENCE
    record = read_record(file, "a zsmie inference record")
    if record is None:
        raise FileNotFoundError(f"{path}: no {INFERENCE}; a model folder holds "
                                f"{', '.join(MODEL_FILES)} (written by save_pretrained)")
    if record.get("format") != FORMAT:
        raise ModelFolderError(f"{file}: field 'format' should be {FORMAT}, got "
                               f"{record.get('format')!r} (written by another zsmie version)")
    alpha = record.get("wise_alpha")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, int | float)):
        raise ModelFolderError(f"{file}: field 'wise_alpha' should be a number or null, got {alpha!r}")
    data = record.get("data") or {}
    if not isinstance(data, dict):
        raise ModelFolderError(f"{file}: field 'data' should be an object, got {data!r}")
    for key in ("ensemble", "type_prior", "open_set"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise ModelFolderError(f"{file}: field {key!r} should be an object or null, "
                                   f"got {record[key]!r}")
    results = record.get("results")
    if results is not None and not isinstance(results, dict):
        raise ModelFolderError(f"{file}: field 'results' should be an object or null, got {results!r}")
    return Inference(
        ensemble=_check_ensemble(record.get("ensemble"), file),
        type_prior=_check_type_prior(record.get("type_prior"), file),
        open_set=_check_open_set(record.get("open_set"), file),
        wise_alpha=alpha, data=data), results


def is_model_folder(path: Path) -> bool:
    """Whether `path` is in the model layout (save_pretrained) rather than a run's."""
    return (path / MODEL_WEIGHTS).exists() or (path / INFERENCE).exists()


def read_folder(path: str | Path, overrides: list[str] | None = None,
                data_dir: str | None = None) -> ModelFolder:
    """A model folder (model.safetensors) or a run folder (best.safetensors), read and
    checked before anything slow: a missing file or a damaged record is a one-line error
    naming it. `overrides` change evaluation-time settings (`text.precision="int8"`,
    `model.force_expert=3`); overriding anything that shapes the weights makes loading them
    fail with a clear error. `data_dir` replaces the config's data.dir."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a zsmie run folder or a model "
                                "folder written by save_pretrained)")
    layout = "model" if is_model_folder(path) else "run"
    weights = path / (MODEL_WEIGHTS if layout == "model" else RUN_WEIGHTS)
    for name in (CONFIG, weights.name):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path}: no {name}; is this a finished zsmie run folder (or a "
                                    "model folder written by save_pretrained)?")
    read_weights(weights, header_only=True)  # fail before the data is read
    config = load_config(path / CONFIG, overrides, set_flag="--set")  # zsmie evaluate --set
    if data_dir:
        config.data.dir = str(data_dir)
    if layout == "model":
        inference, results = _read_model_inference(path)
    else:  # results.json is read when the model is saved (a damaged one never stops a load)
        inference, results = _read_run_inference(path, weights), None
    return ModelFolder(path, layout, config, weights, inference, results)


def require_run_folder(path: str | Path, command: str) -> Path:
    """`path`, unless it is a model folder: `command` writes a run's records (open_set.json,
    type_prior.json), which a model folder keeps in inference.json instead."""
    path = Path(path)
    if is_model_folder(path):
        raise ModelFolderError(f"{path}: a model folder (save_pretrained); {command} works on the "
                               "run folder it was saved from (save it again afterwards)")
    return path


def core_model(folder: ModelFolder, device: torch.device | str | None = None) -> ZeroShotModel:
    """The folder's model built from its config, on `device`, with its weights loaded."""
    model = build_model(folder.config)
    if device is not None:
        model.to(device)
    model.load(folder.weights)
    return model


def answering_model(core: nn.Module, folder: ModelFolder, type_prior: bool = True) -> nn.Module:
    """`core` (the folder's weights loaded) as the model answers, in eval mode: with the score
    ensemble and (unless `type_prior` is False) the type prior the run chose, and every text
    encoder in it at `text.precision`."""
    config = folder.config
    model = ensembled(core, config, folder.inference.ensemble_weight(config))
    record = folder.inference.type_prior
    if type_prior and record is not None:
        templates = record.get("templates")
        encoder = (frozen_encoder(model, config) if float(record["weight"]) or
                   (templates and float(templates["weight"])) else None)
        model = typed(templated(model, config, templates, encoder), config, record, encoder)
    return set_precision(model.eval(), config.text.precision, config.text.int8_scheme or None,
                         folder.path / ONNX)


def _figures(results: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """The validation and test summary figures of a results record."""
    keys = ("precision", "recall", "f1", "accuracy")
    return {part: {k: results[part][k] for k in keys if k in results[part]}
            for part in ("val", "test") if isinstance((results or {}).get(part), dict)}


def model_card(config: Config, inference: Inference, results: dict[str, Any] | None,
               source: Path | None = None) -> str:
    """README.md of a model folder: what it was trained on, the split, its figures, how to
    load it."""
    data, split = inference.data, inference.data.get("split", {})
    lines = ["---", "library_name: zsmie", "tags:", "- zero-shot",
             f"- {'relation-extraction' if config.task == 'mre' else 'entity-typing'}",
             "- multimodal", "---", "",
             f"# zsmie {config.model.name} model ({config.task.upper()})", "",
             f"A zero-shot {'relation' if config.task == 'mre' else 'entity type'} ranker: given "
             "a sample and any label names (unseen in training too), it ranks the labels. "
             f"Saved by zsmie {__version__}" + (f" from `{source}`." if source else "."), "",
             "## Training", "",
             f"- model: `{config.model.name}`, text encoder `{config.text.model}` "
             f"({'fine-tuned' if config.text.finetune else 'frozen'}), vision encoder "
             f"`{config.vision.model}`",
             f"- data: `{config.data.format}`"
             + (f" from `{config.data.dir}`" if config.data.dir else " (packaged with zsmie)")
             + f", seed {config.seed}, "
             f"protocol `{config.protocol}`, label text `{config.label_text}`"]
    if split:
        lines.append("- label split (disjoint labels): " + ", ".join(
            f"{part} {len(labels)}" for part, labels in split.items()))
        lines += [f"  - {part}: {', '.join(labels)}" for part, labels in split.items()]
    if data.get("samples"):
        lines.append("- samples: " + ", ".join(f"{k} {v}" for k, v in data["samples"].items()))
    lines += ["", "## Results", ""]
    figures = _figures(results)
    if figures:
        lines += ["Macro-averaged over each part's labels (unseen in training):", "",
                  "| part | precision | recall | macro-F1 | accuracy |", "|---|---|---|---|---|"]
        lines += [f"| {part} | " + " | ".join(f"{row.get(k, float('nan')):.4f}" for k in
                                             ("precision", "recall", "f1", "accuracy")) + " |"
                  for part, row in figures.items()]
    else:
        lines.append("Not recorded (no results.json in the folder it was saved from).")
    open_set = inference.threshold()
    lines += ["", "## What its answers depend on", "",
              f"- score ensemble weight: {inference.ensemble_weight(config):g}"
              + (" (chosen on validation)" if inference.ensemble else " (the config's)"),
              "- WiSE-FT alpha: " + ("none (the trained weights)" if inference.wise_alpha is None
                                     else f"{inference.wise_alpha:g}"),
              "- type prior: " + ("none" if not inference.type_prior else
                                  f"{inference.type_prior['source']}, lambda "
                                  f"{float(inference.type_prior['weight']):.4g}"),
              "- entity-filled label templates: " + (
                  f"weight {float(inference.type_prior['templates']['weight']):.4g}"
                  if inference.type_prior and inference.type_prior.get("templates") else "none"),
              "- open set: " + ("not calibrated" if open_set is None else
                                f"threshold {open_set.threshold:.4f}, "
                                f"{CALIBRATIONS[open_set.calibration]}"),
              "", "## How to load it", "", "```python", "import zsmie", "",
              'extractor = zsmie.ZeroShotExtractor.from_pretrained("THIS_FOLDER")',
              'extractor.predict([{"text": "Ann was born in Oslo", "head": [0, 3], "tail": [16, 20]}],',
              '                  labels=["place_of_birth", "subsidiary"], top_k=2)', "```", "",
              "or `zsmie predict --run THIS_FOLDER --input samples.jsonl --labels a,b,c`.", ""]
    return "\n".join(lines)


def save_model(out: str | Path, config: Config | str, inference: Inference,
               results: dict[str, Any] | None, *, weights: Path | None = None,
               model: ZeroShotModel | None = None, source: Path | None = None) -> Path:
    """Write a model folder: config.toml (`config`, or its text), model.safetensors (a copy of
    `weights`, or `model`'s trainable weights), inference.json and README.md. `out` may not be
    a run folder nor the folder read from."""
    out = Path(out)
    if (out / RUN_WEIGHTS).exists():
        raise ModelFolderError(f"{out}: a run folder ({RUN_WEIGHTS}); save the model into "
                               "another folder")
    if source is not None and out.resolve() == Path(source).resolve():
        raise ModelFolderError(f"{out}: the folder the model was read from; save it into another")
    if weights is None and model is None:
        raise ValueError("save_model: give the weights file or the model")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFolderError(f"{out}: cannot write this folder ({exc.strerror or exc})") from None
    if isinstance(config, str):
        atomic_write_text(out / CONFIG, config)
    else:
        save_config(config, out / CONFIG)
    config = load_config(out / CONFIG)  # what is written loads again
    if weights is not None:
        atomic_write(out / MODEL_WEIGHTS, lambda tmp: shutil.copyfile(weights, tmp))
    else:
        metadata = {"model": config.model.name, "text": model.text.identity}
        if inference.wise_alpha is not None:
            metadata["wise_alpha"] = f"{inference.wise_alpha:g}"
        model.save(out / MODEL_WEIGHTS, metadata)
    record = inference.as_record()
    if results is not None:
        record["results"] = {"model": results.get("model"), "task": results.get("task"),
                             "seed": results.get("seed"), "best_epoch": results.get("best_epoch"),
                             **_figures(results)}
    atomic_write_json(out / INFERENCE, record)
    atomic_write_text(out / MODEL_CARD, model_card(config, inference, results, source))
    return out


def save_folder(folder: ModelFolder, out: str | Path) -> Path:
    """`folder`'s model as a model folder: its config file and its records as they are, its
    weights copied byte for byte, so the saved model answers exactly as the folder's does."""
    results = (folder.results if folder.layout == "model"
               else read_record(folder.path / RESULTS, "a results record"))
    return save_model(out, (folder.path / CONFIG).read_text(encoding="utf-8"), folder.inference,
                      results, weights=folder.weights, source=folder.path)


def convert_run(run: str | Path, out: str | Path) -> Path:
    """A run folder's model as a model folder (save_pretrained without building the model)."""
    return save_folder(read_folder(run), out)
