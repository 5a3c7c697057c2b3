"""Use a trained run on new data: any samples, any label names (unseen in training).

    extractor = ZeroShotExtractor.from_run("runs/demo")
    [p] = extractor.predict([{"text": "Ann was born in Oslo", "head": [0, 3], "tail": [16, 20]}],
                            labels=["place_of_birth", "subsidiary"], top_k=2)
    p.ranked  # [("place_of_birth", 7.1), ("subsidiary", 1.3)]

The model is rebuilt from the run's `config.toml` alone (no training data is read) and its
weights loaded from `best.safetensors` (no pickled code). Label prototypes come from the label
text the run used (`label_text`), or from descriptions given here. With `open_set=True` a
sample whose best score is under the run's calibrated threshold (`open_set.json`) gets the
answer "none of these".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from zsmie.assemble import build_model, label_text_map
from zsmie.config import Config
from zsmie.data.batching import SampleDataset, collate
from zsmie.data.images import apply_image_policy
from zsmie.data.jsonl import parse_jsonl_record, read_jsonl
from zsmie.data.labels import check_label_set, read_descriptions
from zsmie.data.sample import DataError, Sample, check_sample
from zsmie.evaluation.open_set import NONE_OF_THESE, OPEN_SET_FILE
from zsmie.evaluation.predict import label_prototypes, run_model
from zsmie.evaluation.run import load_run_config
from zsmie.io import atomic_write_text
from zsmie.models.pipeline import ZeroShotModel

log = logging.getLogger(__name__)
SampleLike = Sample | Mapping[str, Any]
Descriptions = Mapping[str, str] | str | Path | None


@dataclass(frozen=True)
class Prediction:
    id: str
    ranked: list[tuple[str, float]]  # the top_k labels, best first, with their scores
    prediction: str  # ranked[0]'s label, or "none of these" (open set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prediction": self.prediction,
            "ranked": [{"label": label, "score": score} for label, score in self.ranked],
        }


CALIBRATIONS = {
    "real-none": "calibrated on real 'None' samples (zsmie evaluate --protocol open)",
    "leave-one-label-out": "calibrated by leaving each validation sample's label out "
                           "(no real 'None' samples)",
}


def _read_threshold(run: Path) -> tuple[float | None, str | None]:
    """The run's open-set threshold and how it was calibrated (None, None: not calibrated).
    Records written before the field existed are leave-one-label-out calibrations."""
    path = run / OPEN_SET_FILE
    if not path.is_file():
        return None, None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        threshold = record["threshold"]
        calibration = record.get("calibration", "leave-one-label-out")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not an open-set record ({type(exc).__name__})") from None
    if not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise DataError(f"{path}: field 'threshold' should be a finite number, got {threshold!r}")
    if calibration not in CALIBRATIONS:
        raise DataError(f"{path}: field 'calibration' should be one of {sorted(CALIBRATIONS)}, "
                        f"got {calibration!r}")
    return float(threshold), calibration


def _training_texts(run: Path) -> set[str]:
    """Labels (and their label texts) the run was trained on, from data.json where present."""
    path = run / "data.json"
    if not path.is_file():
        return set()
    data = json.loads(path.read_text(encoding="utf-8"))
    train = data.get("split", {}).get("train", [])
    return set(train) | {data.get("label_text", {}).get(label, label) for label in train}


class ZeroShotExtractor:
    """A trained zero-shot model, ready to rank any labels for new samples."""

    def __init__(
        self,
        config: Config,
        model: ZeroShotModel,
        threshold: float | None = None,
        training_texts: Iterable[str] = (),
        device: str | torch.device = "cpu",
        calibration: str | None = None,
    ) -> None:
        self.config, self.model = config, model
        self.threshold = threshold  # open-set threshold; None: the run was not calibrated
        self.calibration = calibration  # how: "real-none" or "leave-one-label-out"
        self.training_texts = set(training_texts)
        self.device = torch.device(device)
        self.last_image_report: dict[str, int] = {}
        self._prototypes: dict = {}  # label texts -> prototypes (frozen text encoders)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> ZeroShotExtractor:
        """Load a finished run folder (config.toml + best.safetensors, open_set.json if any)."""
        run = Path(run_dir)
        config = load_run_config(run)
        model = build_model(config)
        model.load(run / "best.safetensors")
        model.to(device).eval()
        threshold, calibration = _read_threshold(run)
        return cls(config, model, threshold, _training_texts(run), device, calibration)

    def label_texts(self, labels: Sequence[str], descriptions: Descriptions = None) -> list[str]:
        """The text each label's prototype is built from (run's label_text, or descriptions)."""
        check_label_set(labels, "labels")
        if isinstance(descriptions, str | Path):
            descriptions = read_descriptions(descriptions)
        texts = label_text_map(self.config, list(labels), descriptions)
        return [texts[label] for label in labels]

    def samples(self, samples: Iterable[SampleLike], base_dir: Path | None = None) -> list[Sample]:
        """Samples or JSONL-style dicts -> checked Samples of the run's task."""
        out = []
        for i, item in enumerate(samples):
            if isinstance(item, Sample):
                sample = item if item.source else dataclasses.replace(item, source=item.id)
                check_sample(sample)
            elif isinstance(item, Mapping):
                sample = parse_jsonl_record(dict(item), f"samples[{i}]", base_dir)
            else:
                raise DataError(f"samples[{i}]: expected a Sample or a dict, got {type(item).__name__}")
            if sample.task != self.config.task:
                raise DataError(
                    f"{sample.source}: a {sample.task.upper()} sample ({'no ' if sample.tail is None else ''}"
                    f"tail entity), but this run does {self.config.task.upper()}"
                )
            out.append(sample)
        return out

    def _with_images(self, samples: list[Sample], images: str) -> list[Sample]:
        """Text-only runs drop images unread; others check (decode) each given image under
        `images` (error | blank). Samples without an image are kept, as under `blank`."""
        if not self.model.uses_images:
            self.last_image_report = {"samples": len(samples), "images_used": 0}
            return [dataclasses.replace(s, image=None) for s in samples]
        given = [i for i, s in enumerate(samples) if s.image is not None]
        checked, report = apply_image_policy([samples[i] for i in given], images, decode=True)
        out = list(samples)
        for i, sample in zip(given, checked, strict=True):
            out[i] = sample
        self.last_image_report = {
            "samples": len(samples), "with_image": report.with_image,
            "no_image_given": len(samples) - len(given),
            "unusable_image": report.missing + report.unreadable,
        }
        if len(samples) > len(given):
            log.info("%d of %d samples have no image: scored without one (as images=blank)",
                     len(samples) - len(given), len(samples))
        return out

    @torch.no_grad()
    def scores(self, samples: list[Sample], texts: list[str], batch_size: int | None = None):
        """Scores [N, C] of checked samples against label texts."""
        model = self.model
        preprocess = model.vision.preprocess if model.uses_images else None
        dataset = SampleDataset(samples, [model.text.encode_sample(s) for s in samples], {}, preprocess)
        loader = DataLoader(
            dataset, batch_size=batch_size or self.config.train.eval_batch_size, shuffle=False,
            collate_fn=functools.partial(collate, pad_id=model.text.tokenizer.pad_token_id or 0),
        )
        prototypes = label_prototypes(model, texts, self._prototypes)
        return run_model(model, loader, prototypes, device=self.device).scores

    def predict(
        self,
        samples: Iterable[SampleLike],
        labels: Sequence[str],
        descriptions: Descriptions = None,
        top_k: int = 5,
        open_set: bool = False,
        images: str = "error",
        batch_size: int | None = None,
        base_dir: Path | None = None,
    ) -> list[Prediction]:
        """Rank `labels` for every sample, best first, keeping the `top_k` best.

        `descriptions`: a label -> text map (or its file / packaged alias) whose text replaces
        the label text. `open_set`: answer "none of these" below the run's threshold.
        `images`: what a given but missing or unreadable image does, `error` or `blank`.
        `base_dir`: the folder relative image paths of dict samples start from.
        """
        if top_k < 1:
            raise ValueError(f"top_k = {top_k}: must be at least 1")
        if images not in ("error", "blank"):
            raise ValueError(f"images = {images!r}: expected 'error' or 'blank'")
        labels = list(labels)
        texts = self.label_texts(labels, descriptions)
        threshold = self._open_set_threshold(labels) if open_set else None
        seen = [label for label, text in zip(labels, texts, strict=True)
                if label in self.training_texts or text in self.training_texts]
        if seen:
            log.warning("labels seen in training (not zero-shot for this run): %s", seen)
        checked = self._with_images(self.samples(samples, base_dir), images)
        if not checked:
            return []
        scores = self.scores(checked, texts, batch_size)
        values, indices = scores.topk(min(top_k, len(labels)), dim=-1)  # sorted, best first
        out = []
        for sample, row_values, row_indices in zip(checked, values.tolist(), indices.tolist(),
                                                   strict=True):
            ranked = [(labels[j], float(v)) for v, j in zip(row_values, row_indices, strict=True)]
            best_label, best_score = ranked[0]
            rejected = threshold is not None and best_score < threshold
            out.append(Prediction(sample.id, ranked, NONE_OF_THESE if rejected else best_label))
        return out

    def _open_set_threshold(self, labels: list[str]) -> float:
        if self.threshold is None:
            raise DataError(
                f"this run has no {OPEN_SET_FILE}: run `zsmie calibrate --run RUN` first "
                "(it needs the run's validation data)"
            )
        if NONE_OF_THESE in labels:
            raise DataError(f"labels: {NONE_OF_THESE!r} is the open-set answer, not a label")
        log.info("open set: threshold %.4f, %s", self.threshold, self.calibration_note())
        return self.threshold

    def calibration_note(self) -> str:
        """Which calibration the open-set threshold comes from, in words."""
        return CALIBRATIONS.get(self.calibration or "", "not calibrated")


def predict_file(
    run_dir: str | Path,
    input_path: str | Path,
    labels: Sequence[str],
    descriptions: Descriptions = None,
    top_k: int = 5,
    open_set: bool = False,
    images: str = "error",
    output: str | Path | None = None,
) -> list[Prediction]:
    """`zsmie predict`: a JSONL file in, one JSON line per sample out (to `output` atomically)."""
    extractor = ZeroShotExtractor.from_run(run_dir)
    predictions = extractor.predict(read_jsonl(input_path), labels, descriptions, top_k,
                                    open_set, images)
    if output is not None:
        lines = "".join(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in predictions)
        atomic_write_text(Path(output), lines)
    log.info("%d predictions; images %s", len(predictions), extractor.last_image_report)
    return predictions
