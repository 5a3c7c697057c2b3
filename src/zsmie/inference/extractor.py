"""Use a trained run on new data: any samples, any label names (unseen in training).

    extractor = ZeroShotExtractor.from_pretrained("runs/demo")
    [p] = extractor.predict([{"text": "Ann was born in Oslo", "head": [0, 3], "tail": [16, 20]}],
                            labels=["place_of_birth", "subsidiary"], top_k=2)
    p.ranked  # [("place_of_birth", 7.1), ("subsidiary", 1.3)]

The model is rebuilt from the folder's `config.toml` alone (no training data is read) and its
weights loaded from safetensors (no pickled code), by zsmie.pretrained: a run folder or a model
folder (`save_pretrained`). Label prototypes come from the label text the run used
(`label_text`), or from descriptions given here. With `open_set=True` a sample whose best
score is under the run's calibrated threshold (its open-set record) gets the
answer "none of these"; for a run trained with a none class (`open_world.none_negatives`) the
threshold is on the best score minus the score of the none class's text.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from zsmie.assemble import label_text_map
from zsmie.config import Config
from zsmie.data.batching import EncodedText, SampleDataset, collate
from zsmie.data.images import apply_image_policy
from zsmie.data.jsonl import parse_jsonl_record
from zsmie.data.labels import check_label_set, read_descriptions, split_labels
from zsmie.data.sample import DataError, Sample, check_sample
from zsmie.data.types import LabelTexts, Types, parse_labels, types_from_name
from zsmie.display import SCORE_DECIMALS
from zsmie.inference.open_set import NONE_OF_THESE
from zsmie.inference.scoring import run_model
from zsmie.models.pipeline import WrappedModel, ZeroShotModel
from zsmie.models.templates import TEMPLATE_PAIR_TOKENS, Templated
from zsmie.pretrained import (
    CALIBRATIONS,
    Inference,
    ModelFolder,
    answering_model,
    core_model,
    read_folder,
    save_folder,
    save_model,
)
from zsmie.run_folder import OPEN_SET

log = logging.getLogger(__name__)
# the end of a missing or unreadable image's error under images="error" (zsmie predict's options)
PREDICT_ADVICE = ("Pass --images blank (Python: images=\"blank\") to score them without an image, or "
                  "fix their 'image' paths (relative to the JSONL file's folder).")
SampleLike = Sample | Mapping[str, Any]
Descriptions = Mapping[str, str] | str | Path | None
PROTOTYPE_CACHE = 4096  # label texts whose prototypes are kept (least recently used dropped)


@dataclass(frozen=True)
class Prediction:
    id: str
    ranked: list[tuple[str, float]]  # the top_k labels, best first, with their scores
    prediction: str  # ranked[0]'s label, or "none of these" (open set)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: scores rounded to SCORE_DECIMALS (`ranked` keeps them whole)."""
        return {
            "id": self.id,
            "prediction": self.prediction,
            "ranked": [{"label": label, "score": round(score, SCORE_DECIMALS)}
                       for label, score in self.ranked],
        }


@dataclass(frozen=True)
class LabelSet:
    """Candidate labels with the text of their prototypes and how to answer."""

    labels: tuple[str, ...]
    texts: tuple[str, ...]  # the text each label's prototype is built from
    top_k: int
    threshold: float | None  # open set: "none of these" under it; None: always a label
    # A run trained with a none class: the threshold is on the top score minus the score of
    # this text's prototype.
    none_text: str | None = None
    # Each label's (head, tail) argument types (zsmie.data.types), for a run with a type
    # prior; empty: untyped.
    types: tuple[Types, ...] = ()

    def label_texts(self) -> LabelTexts:
        """The labels' texts with their types, as a model's label side reads them."""
        return LabelTexts(self.texts, self.types or None, self.labels)

    def predictions(
        self, samples: Sequence[Sample], scores: torch.Tensor, none_scores: torch.Tensor | None = None
    ) -> list[Prediction]:
        """Scores [N, C] of `samples` against these labels (and [N] against `none_text`) ->
        the top_k best of each, in order."""
        values, indices = scores.topk(min(self.top_k, len(self.labels)), dim=-1)  # best first
        offsets = [0.0] * len(samples) if none_scores is None else none_scores.tolist()
        out = []
        for sample, row_values, row_indices, offset in zip(
                samples, values.tolist(), indices.tolist(), offsets, strict=True):
            ranked = [(self.labels[j], float(v)) for v, j in zip(row_values, row_indices, strict=True)]
            best_label, best_score = ranked[0]
            rejected = self.threshold is not None and best_score - offset < self.threshold
            out.append(Prediction(sample.id, ranked, NONE_OF_THESE if rejected else best_label))
        return out


def concat_prototypes(parts: Sequence[Any]) -> Any:
    """Label sides of several label lists -> the label side of them all, in order: tensors are
    concatenated along the labels, lists and tuples joined, dataclasses field by field (the
    models' prototype types: a tensor, LabelTokens, EnsemblePrototypes, TypedPrototypes)."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(parts))
    if first is None:
        return None
    if isinstance(first, list | tuple):
        return type(first)(x for part in parts for x in part)
    if dataclasses.is_dataclass(first):
        return dataclasses.replace(first, **{
            f.name: concat_prototypes([getattr(p, f.name) for p in parts])
            for f in dataclasses.fields(first)})
    raise TypeError(f"cannot join label sides of type {type(first).__name__}")


def warn_repeated_ids(samples: Sequence[Sample], seen: set[str] | None = None) -> None:
    """Log the sample ids used more than once (their output lines would share an id); `seen`
    carries the ids of earlier chunks of a stream."""
    counts = Counter(s.id for s in samples)
    seen = set() if seen is None else seen
    repeated = [i for i, n in counts.items() if n > 1 or i in seen]
    seen.update(counts)
    if repeated:
        log.warning("%d sample id(s) are used by more than one sample, so their predictions "
                    "share an id: %s", len(repeated), repeated[:5])


class ZeroShotExtractor:
    """A trained zero-shot model, ready to rank any labels for new samples."""

    def __init__(
        self,
        config: Config,
        model: ZeroShotModel,
        *,
        threshold: float | None = None,
        training_texts: Iterable[str] = (),
        device: str | torch.device = "cpu",
        calibration: str | None = None,
        none_text: str | None = None,
    ) -> None:
        self.config, self.model = config, model
        self.threshold = threshold  # open-set threshold; None: the run was not calibrated
        self.calibration = calibration  # how: "real-none" or "leave-one-label-out"
        self.none_text = none_text  # the threshold is on the margin over this text's score
        self.training_texts = set(training_texts)
        self.device = torch.device(device)
        self.precision = config.text.precision  # the text encoders' (fp32 | int8)
        self.last_image_report: dict[str, int] = {}
        # (label text, types) -> that label's prototype (one row), least recently used first:
        # the weights never change here, so a label set shares the prototypes of earlier ones
        self._prototypes: OrderedDict = OrderedDict()
        self.prototype_cache = PROTOTYPE_CACHE
        # called with each model batch's sample count once scored (zsmie predict's progress bar)
        self.on_batch: Callable[[int], object] | None = None
        # score a call's samples sorted by token length (less padding), answers in input order
        self.by_length = False
        # the folder it was read from (from_pretrained); save_pretrained copies its weights
        self.folder: ModelFolder | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        precision: str | None = None, int8_scheme: str | None = None
                        ) -> ZeroShotExtractor:
        """Load a saved model (`save_pretrained`: config.toml, model.safetensors,
        inference.json) or a finished run folder (config.toml, best.safetensors, and the
        ensemble.json, type_prior.json and open_set.json it chose), with zsmie.pretrained.

        `precision`: "fp32", "int8" or "int8-onnx" (zsmie.encoders.precision; CPU only);
        None: the model's `text.precision` (fp32 unless its config says otherwise).
        `int8_scheme`: that precision's quantisation scheme (text.int8_scheme; None: the
        model's, by default the precision's default)."""
        overrides = [] if precision is None else [f'text.precision="{precision}"']
        overrides += [] if int8_scheme is None else [f'text.int8_scheme="{int8_scheme}"']
        folder = read_folder(path, overrides=overrides)
        model = answering_model(core_model(folder, device), folder).to(device).eval()
        open_set = folder.inference.threshold()
        extractor = cls(folder.config, model,
                        threshold=None if open_set is None else open_set.threshold,
                        training_texts=folder.inference.training_texts(), device=device,
                        calibration=None if open_set is None else open_set.calibration,
                        none_text=None if open_set is None else open_set.none_text)
        extractor.folder = folder
        return extractor

    def save_pretrained(self, path: str | Path) -> Path:
        """Write this model as a model folder: config.toml, model.safetensors, inference.json
        (ensemble weight, WiSE-FT alpha, type prior, open-set threshold, label texts) and a
        README.md model card; `from_pretrained(path)` loads it back, answering the same.
        An extractor read from a folder writes that folder's weights byte for byte."""
        if self.folder is not None:
            return save_folder(self.folder, path)
        if isinstance(self.model, WrappedModel):  # its ensemble / type prior records are unknown
            raise ValueError("save_pretrained: this extractor was built around a wrapped model "
                             "(a score ensemble or type prior); load it with from_pretrained to "
                             "save it")
        if self.precision != "fp32":
            raise ValueError(f"save_pretrained: the model runs at {self.precision}; save it at fp32")
        open_set = None
        if self.threshold is not None:
            open_set = {"threshold": self.threshold,
                        "calibration": self.calibration or "leave-one-label-out"}
            if self.none_text:
                open_set["none_text"] = self.none_text
        inference = Inference(ensemble={"weight": 0.0} if self.config.model.ensemble_weight else None,
                              open_set=open_set)
        return save_model(path, self.config, inference, None, model=self.model)

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
        checked, report = apply_image_policy([samples[i] for i in given], images, advice=PREDICT_ADVICE)
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

    def encode(self, samples: Sequence[Sample]) -> list[EncodedText]:
        """Each checked sample's marked tokens, as the model reads them; a sample the model
        cannot read (entities further apart than text.max_length tokens) is a DataError naming
        it. `scores` takes them back (`encoded`), so a service checks before batching."""
        return [self.model.text.encode_sample(s) for s in samples]

    def label_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens the encoder reads of each label text (at most text.max_length)."""
        if not texts:
            return []
        ids = self.model.text.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        return [min(len(i), self.config.text.max_length) for i in ids]

    def cached(self, texts: Sequence[str]) -> list[bool]:
        """Whether each label's prototype is cached (no encoder work for it); a LabelTexts
        carries the labels' types and names."""
        columns = (texts if isinstance(texts, LabelTexts) else LabelTexts(texts)).columns()
        return [column in self._prototypes for column in columns]

    @property
    def pairs(self) -> bool:
        """The model reads every (sample, label) pair (a cross-encoder)."""
        return self.config.model.name == "cross"

    @property
    def template_tokens(self) -> int:
        """Encoder tokens each (sample, label) pair adds: TEMPLATE_PAIR_TOKENS when the model
        weighs entity-filled label templates (one short sentence per pair), else 0."""
        model = self.model
        while isinstance(model, WrappedModel):
            if isinstance(model, Templated):
                return TEMPLATE_PAIR_TOKENS
            model = model.wrapped
        return 0

    def work(self, sample_tokens: Sequence[int], label_tokens: Sequence[int]) -> int:
        """Tokens the encoder reads for these samples against these labels: each sample once
        and each label text once; a cross-encoder reads every (sample, label) pair, and a model
        with label templates a filled template per pair."""
        pairs = self.template_tokens * len(sample_tokens) * len(label_tokens)
        if self.pairs:
            return (sum(sample_tokens) * len(label_tokens) + sum(label_tokens) * len(sample_tokens)
                    + pairs)
        return sum(sample_tokens) + sum(label_tokens) + pairs

    @torch.no_grad()
    def prototypes(self, texts: Sequence[str]):
        """The label side for these texts (a LabelTexts carries their types and names), from
        the cache where present; the missing ones are encoded in one call and cached."""
        keys = (texts if isinstance(texts, LabelTexts) else LabelTexts(texts)).columns()
        missing = list(dict.fromkeys(k for k in keys if k not in self._prototypes))
        if missing:
            fresh = self.model.prototypes(LabelTexts.of(missing))
            for i, key in enumerate(missing):
                self._prototypes[key] = fresh[[i]]
        parts = []
        for key in keys:
            self._prototypes.move_to_end(key)
            parts.append(self._prototypes[key])
        out = concat_prototypes(parts)
        while len(self._prototypes) > max(self.prototype_cache, len(keys)):
            self._prototypes.popitem(last=False)
        return out

    @torch.no_grad()
    def scores(self, samples: list[Sample], texts: list[str], *, batch_size: int | None = None,
               encoded: Sequence[EncodedText] | None = None):
        """Scores [N, C] of checked samples against label texts (`encoded`: the samples'
        `encode` output, when already computed)."""
        model = self.model
        preprocess = model.vision.preprocess if model.uses_images else None
        encoded = list(encoded) if encoded is not None else self.encode(samples)
        order = list(range(len(samples)))
        if self.by_length:  # batches of alike lengths: less padding; scores returned in input order
            order.sort(key=lambda i: len(encoded[i].input_ids))
        dataset = SampleDataset([samples[i] for i in order], [encoded[i] for i in order], {},
                                preprocess)
        loader = DataLoader(
            dataset, batch_size=batch_size or self.config.train.eval_batch_size, shuffle=False,
            collate_fn=functools.partial(collate, pad_id=model.text.tokenizer.pad_token_id or 0),
        )
        scores = run_model(model, loader, self.prototypes(texts), device=self.device,
                           on_batch=self.on_batch).scores
        restored = torch.empty_like(scores)
        restored[torch.tensor(order, dtype=torch.long)] = scores
        return restored

    def label_set(
        self,
        labels: Sequence[str],
        *,
        descriptions: Descriptions = None,
        top_k: int = 5,
        open_set: bool = False,
    ) -> LabelSet:
        """Check the candidate labels and the answer settings once, for any number of samples.

        `labels`: names (a typed path such as `/per/loc/place_of_birth` carries its argument
        types), or objects {"name", "head_type", "tail_type"} (zsmie.data.types)."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k = {top_k!r}: must be an integer, at least 1")
        # A string is one comma-separated list, as `--labels` reads it (not its characters).
        labels = split_labels(labels) if isinstance(labels, str) else list(labels)
        if any(not isinstance(label, str) for label in labels):  # typed label objects
            parsed = parse_labels(labels)
            labels, types = [p.name for p in parsed], tuple(p.types for p in parsed)
        else:  # names: the types their paths spell (`/per/loc/place_of_birth`), if any
            check_label_set(labels, "labels")
            types = tuple(types_from_name(label) for label in labels)
        texts = self.label_texts(labels, descriptions)
        threshold = self._open_set_threshold(labels) if open_set else None
        seen = [label for label, text in zip(labels, texts, strict=True)
                if label in self.training_texts or text in self.training_texts]
        if seen:
            log.warning("labels seen in training (not zero-shot for this run): %s", seen)
        return LabelSet(tuple(labels), tuple(texts), top_k, threshold,
                        self.none_text if open_set else None, types)

    def rank(
        self, samples: list[Sample], label_set: LabelSet, *, images: str = "error",
        batch_size: int | None = None,
    ) -> list[Prediction]:
        """Predictions for samples checked by `samples()`, in their order."""
        return self.rank_many([(samples, label_set)], images=images, batch_size=batch_size)[0]

    def rank_many(
        self, requests: Sequence[tuple[list[Sample], LabelSet]], *, images: str = "error",
        batch_size: int | None = None, encoded: Sequence[EncodedText] | None = None,
    ) -> list[list[Prediction]]:
        """Several requests, each its samples against its own labels, in one model call: the
        samples are scored against the union of the label texts and each request keeps its
        own columns (a label's score does not depend on the other labels offered).
        `encoded`: every sample's `encode` output, in order, when already computed."""
        if images not in ("error", "blank"):
            raise ValueError(f"images = {images!r}: expected 'error' or 'blank'")
        checked = self._with_images([s for samples, _ in requests for s in samples], images)
        if not checked:
            return [[] for _ in requests]
        plain = (None, None), None  # the none text: no types, no name
        columns = dict.fromkeys(
            column for _, label_set in requests
            for column in (*label_set.label_texts().columns(), (label_set.none_text, *plain))
            if column[0])
        union = {column: j for j, column in enumerate(columns)}
        scores = self.scores(checked, LabelTexts.of(union), batch_size=batch_size,
                             encoded=encoded)
        out, start = [], 0
        for samples, label_set in requests:
            block = scores[start:start + len(samples)]
            rows = block[:, [union[c] for c in label_set.label_texts().columns()]]
            none = (block[:, union[(label_set.none_text, *plain)]] if label_set.none_text
                    else None)
            out.append(label_set.predictions(checked[start:start + len(samples)], rows, none))
            start += len(samples)
        return out

    def predict(
        self,
        samples: Iterable[SampleLike],
        labels: Sequence[str],
        *,
        descriptions: Descriptions = None,
        top_k: int = 5,
        open_set: bool = False,
        images: str = "error",
        batch_size: int | None = None,
        base_dir: Path | None = None,
    ) -> list[Prediction]:
        """Rank `labels` for every sample, best first, keeping the `top_k` best.

        `labels`: a list of names, or one string of comma-separated names ("a,b,c").
        `descriptions`: a label -> text map (or its file / packaged alias) whose text replaces
        the label text. `open_set`: answer "none of these" below the run's threshold.
        `images`: what a given but missing or unreadable image does, `error` or `blank`.
        `base_dir`: the folder relative image paths of dict samples start from.
        """
        samples = self.samples(samples, base_dir)
        warn_repeated_ids(samples)
        label_set = self.label_set(labels, descriptions=descriptions, top_k=top_k,
                                   open_set=open_set)
        return self.rank(samples, label_set, images=images, batch_size=batch_size)

    def _open_set_threshold(self, labels: list[str]) -> float:
        if self.threshold is None:
            raise DataError(
                f"this run has no {OPEN_SET}: run `zsmie calibrate --run RUN` first "
                "(it needs the run's validation data)"
            )
        if NONE_OF_THESE in labels:
            raise DataError(f"labels: {NONE_OF_THESE!r} is the open-set answer, not a label")
        log.info("open set: threshold %.4f, %s", self.threshold, self.calibration_note())
        return self.threshold

    def calibration_note(self) -> str:
        """Which calibration the open-set threshold comes from, in words."""
        note = CALIBRATIONS.get(self.calibration or "", "not calibrated")
        if self.none_text:
            note += f", on the margin over the trained none class ({self.none_text!r})"
        return note

