"""Everything a run needs before its first step: samples, zero-shot split, label texts,
encoders, model and datasets. Shared by `train`, `evaluate` and the experiment runner."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from zsmie.config import Config, ConfigError
from zsmie.data.batching import (
    BalancedBatchSampler,
    SampleDataset,
    ShuffledBatchSampler,
    collate,
)
from zsmie.data.datasets import LABEL_ABBREVIATIONS, cap_per_label, load_samples
from zsmie.data.fewrel import read_extra
from zsmie.data.images import ImageReport, apply_image_policy, load_rgb
from zsmie.data.labels import label_texts, read_descriptions
from zsmie.data.open_world import NONE_CLASS, hold_out_seen, with_none_class
from zsmie.data.sample import DataError, Sample
from zsmie.data.splits import LabelSplit, make_label_split, samples_by_part
from zsmie.data.types import LabelTexts, types_from_name
from zsmie.encoders.cache import FeatureCache, content_key, default_cache_dir, file_digest
from zsmie.encoders.precision import set_precision
from zsmie.encoders.text import EncodedText, TextEncoder
from zsmie.encoders.vision import VisionEncoder, build_vision_encoder
from zsmie.models.cross import CrossEncoderModel
from zsmie.models.pipeline import ZeroShotModel
from zsmie.models.registry import build_head

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test")


@dataclass
class Prepared:
    config: Config
    split: LabelSplit
    parts: dict[str, list[Sample]]
    label_text: dict[str, str]  # label -> the text its prototype is built from
    image_report: ImageReport
    model: ZeroShotModel
    datasets: dict[str, SampleDataset]

    def texts(self, part: str) -> LabelTexts:
        """The part's label texts, with the argument types their names spell (data.types)."""
        labels = self.split.part(part)
        return LabelTexts([self.label_text[label] for label in labels],
                          [types_from_name(label) for label in labels], labels)

    def data_summary(self) -> dict:
        return {
            "split": self.split.as_dict(),
            "samples": {name: len(samples) for name, samples in self.parts.items()},
            "label_text": {label: self.label_text[label] for part in PARTS
                           for label in self.split.part(part)},
            "images": self.image_report.as_dict(),
        }


def label_text_map(
    config: Config, labels: list[str], descriptions: Mapping[str, str] | None = None
) -> dict[str, str]:
    """label -> the text its prototype is built from, as `config` says (training and prediction).

    `descriptions`, when given, replaces the configured label text with these descriptions.
    """
    mode = config.label_text
    if descriptions is None and mode == "description":
        descriptions = read_descriptions(config.label_descriptions)
    if descriptions is not None:
        mode = "description"
    texts = label_texts(labels, mode, LABEL_ABBREVIATIONS, descriptions, config.task)
    return dict(zip(labels, texts, strict=True))


def build_model(config: Config) -> ZeroShotModel:
    t = config.text
    text = TextEncoder(t.model, t.max_length, t.finetune, t.marker_init, t.freeze_layers)
    vision = build_vision_encoder(config.vision.model, config.vision.finetune)
    head = build_head(config, text.hidden_size, vision.hidden_size if vision else 0)
    model_type = CrossEncoderModel if head.pair_scoring else ZeroShotModel
    return model_type(text, head, vision if head.uses_images else None)


def feature_cache(config: Config) -> FeatureCache | None:
    """Where frozen-encoder features live: None ("off": encoders run at every step), memory,
    or a folder on disk (default)."""
    if config.feature_cache == "off":
        return None
    if config.feature_cache == "memory":
        return FeatureCache.in_memory()
    root = default_cache_dir() if config.feature_cache == "auto" else Path(config.feature_cache)
    return FeatureCache(root)


class _ImageFiles(Dataset):
    """Decodes and preprocesses images in loader workers (never all at once in memory)."""

    def __init__(self, paths: list[str], preprocess) -> None:
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess([load_rgb(self.paths[i], self.paths[i])])[0]


@torch.no_grad()
def precompute_image_states(
    vision: VisionEncoder,
    samples: list[Sample],
    batch_size: int,
    cache: FeatureCache,
    workers: int = 0,
    progress: bool = False,
) -> list[torch.Tensor | None]:
    """Patch tokens of a frozen vision encoder per sample (None without image), each distinct
    image encoded once; keyed by the image file's bytes and the encoder's identity."""
    device = next(vision.parameters()).device
    paths = sorted({s.image for s in samples if s.image is not None})
    keys = [content_key(vision.identity, file_digest(p)) for p in paths]

    def compute(positions: list[int]) -> list[torch.Tensor]:
        files = _ImageFiles([paths[i] for i in positions], vision.preprocess)
        loader = DataLoader(files, batch_size=batch_size, num_workers=workers)
        out = [vision(pixels.to(device)).float().cpu() for pixels in loader]
        return list(torch.cat(out)) if out else []

    bar = functools.partial(tqdm, desc="encode images", disable=not progress, leave=False)
    # One compute call covers all missing images, so the loader's workers stay busy.
    values = cache.get_or_compute(keys, compute, max(len(keys), 1), bar)
    by_path = dict(zip(paths, values, strict=True))
    return [by_path[s.image] if s.image is not None else None for s in samples]


@torch.no_grad()
def precompute_text_states(
    text: TextEncoder,
    encoded: list[EncodedText],
    batch_size: int,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> list[torch.Tensor]:
    """Token states of a frozen encoder, one [L_i, d] tensor per sample, computed once."""
    device = next(text.parameters()).device

    def compute(positions: list[int]) -> list[torch.Tensor]:
        batch = collate([{"index": i, "encoded": encoded[i], "label": -1} for i in positions])
        out = text(batch.input_ids.to(device), batch.attention_mask.to(device)).float().cpu()
        return [out[row, : len(encoded[i].input_ids)].clone() for row, i in enumerate(positions)]

    # Encode in length order (less padding); the cache keys by encoder and exact token ids.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    store = cache or FeatureCache.in_memory()
    keys = [content_key(text.identity, repr(encoded[i].input_ids).encode()) for i in order]
    bar = functools.partial(tqdm, desc="encode text", disable=not progress, leave=False)
    values = store.get_or_compute(keys, lambda pos: compute([order[p] for p in pos]),
                                  batch_size, bar)
    states: list[torch.Tensor] = [torch.empty(0)] * len(encoded)
    for i, value in zip(order, values, strict=True):
        states[i] = value
    return states


def encode_dataset(
    model: ZeroShotModel, config: Config, samples: list[Sample], label_index: Mapping[str, int],
    cache: FeatureCache | None,
) -> SampleDataset:
    """Samples (already past the image policy) as a dataset: marked token ids, and frozen
    encoders' states from the feature cache where it is on."""
    preprocess = model.vision.preprocess if model.uses_images else None
    batch, show = config.train.eval_batch_size, config.train.progress
    encoded = [model.text.encode_sample(s) for s in samples]
    states = images = None
    if cache is not None and not config.text.finetune and not model.head.pair_scoring:
        states = precompute_text_states(model.text, encoded, batch, cache, show)
    if cache is not None and preprocess is not None and not config.vision.finetune:
        images = precompute_image_states(
            model.vision, samples, batch, cache, config.train.num_workers, show
        )
    return SampleDataset(samples, encoded, label_index, preprocess, states, images)


def none_class(config: Config) -> tuple[str, ...]:
    """The none class's label when the run trains one (open_world.none_negatives), else ()."""
    return (NONE_CLASS,) if config.open_world.none_negatives else ()


def split_parts(config: Config, samples: list[Sample]) -> tuple[LabelSplit, dict[str, list[Sample]]]:
    """The label split and its sample parts; protocol = "generalized" removes the held-out
    seen-label share from training, open_world.none_negatives adds the none class to it
    (zsmie.data.open_world)."""
    split = make_label_split(config.task, samples, config.seed)
    parts = samples_by_part(samples, split)
    if config.protocol == "generalized":
        shares = config.open_world
        parts["train"] = hold_out_seen(parts["train"], split.train, config.seed,
                                       shares.seen_test_share, shares.seen_val_share).train
    if config.open_world.none_negatives:  # protocol = "open" (Config.validate)
        split, parts["train"] = with_none_class(split, parts["train"], samples, config.seed)
    return split, parts


def with_extra_relations(config: Config, split: LabelSplit, parts: dict[str, list[Sample]],
                         text: TextEncoder | None = None,
                         ) -> tuple[LabelSplit, dict[str, list[Sample]], dict[str, str]]:
    """`data.extra_train`'s relations added to the training part and labels, less those that
    overlap a validation or test relation (zsmie.data.fewrel), and the added labels' texts.
    With `text`, an extra sample it cannot encode (entities further apart than
    text.max_length) is skipped and counted: the extra data is not the user's to fix."""
    if not config.data.extra_train:
        return split, parts, {}
    extra = read_extra(config.data.extra_train, config.data.extra_max_per_label, config.seed)
    dropped: list[str] = []

    def encodable(sample: Sample) -> bool:
        try:
            text.encode_sample(sample)
        except DataError as exc:
            dropped.append(str(exc))
            return False
        return True

    samples = {label: [s for s in rows if text is None or encodable(s)]
               for label, rows in extra.samples.items()}
    if dropped:
        log.warning("extra relations: skipped %d sample(s) the text encoder cannot take, "
                    "e.g. %s", len(dropped), dropped[0])
    keep = [label for label in extra.usable(split.val + split.test) if samples[label]]
    log.info("extra relations: %d of %d used; left out as overlapping this split's validation "
             "or test relations: %s", len(keep), len(samples),
             [label for label in samples if label not in keep])
    texts = extra.descriptions if config.label_text == "description" else extra.names
    split = LabelSplit(split.train + tuple(keep), split.val, split.test)
    parts = {**parts, "train": parts["train"] + [s for label in keep for s in samples[label]]}
    return split, parts, {label: texts[label] for label in keep}


def prepare(config: Config, device: torch.device | None = None,
            model: ZeroShotModel | None = None, onnx_dir: Path | None = None) -> Prepared:
    """The config's data, split and encoded, and its model: `model` (a finished run's, its
    weights loaded: zsmie.pretrained.core_model) with its text encoder at `text.precision`
    before anything is encoded, so that frozen-encoder features are those of the final
    encoder (int8-onnx exports under `onnx_dir`: the run's); else one built from the config."""
    samples = load_samples(config)
    split, parts = split_parts(config, samples)
    parts = {name: cap_per_label(part, config.data.max_per_label) for name, part in parts.items()}
    parts["val"] = cap_per_label(parts["val"], config.data.val_max_per_label)
    trained = model is not None
    model = model if trained else build_model(config)
    if device is not None:
        model.to(device)
    if trained:
        set_precision(model, config.text.precision, config.text.int8_scheme or None, onnx_dir)
    split, parts, extra_texts = with_extra_relations(config, split, parts, model.text)
    none = none_class(config)  # its text is open_world.none_text, whatever label_text says
    texts = label_text_map(config, [label for name in PARTS for label in split.part(name)
                                    if label not in none and label not in extra_texts])
    texts.update({label: config.open_world.none_text for label in none})
    texts.update(extra_texts)
    kept = [s for name in PARTS for s in parts[name]]
    kept, report = apply_image_policy(kept, config.images, used=model.uses_images)
    it = iter(kept)
    parts = {name: [next(it) for _ in parts[name]] for name in PARTS}
    log.info("split %s; samples %s; images %s", split.as_dict(),
             {k: len(v) for k, v in parts.items()}, report.as_dict())

    cache = feature_cache(config)
    datasets = {
        name: encode_dataset(model, config, parts[name],
                             {label: i for i, label in enumerate(split.part(name))}, cache)
        for name in PARTS
    }
    return Prepared(config, split, parts, texts, report, model, datasets)


def make_accelerator(config: Config) -> Accelerator:
    """One process, one GPU, or several processes (torchrun / accelerate launch).

    Batches are split between processes (`split_batches`), so `train.batch_size` is the
    global batch and N processes take the same optimisation steps as one process.
    """
    device = config.train.device
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    accelerator = Accelerator(cpu=cpu, split_batches=True,
                              mixed_precision=config.train.mixed_precision)
    n = accelerator.num_processes
    for key in ("batch_size", "eval_batch_size"):
        if getattr(config.train, key) % n:
            raise ConfigError(f"train.{key} = {getattr(config.train, key)} must be a multiple "
                              f"of the {n} processes (each takes an equal share of a batch)")
    return accelerator


def loaders(prepared: Prepared, config: Config) -> dict[str, DataLoader]:
    pad = prepared.model.text.tokenizer.pad_token_id or 0
    collate_fn = functools.partial(collate, pad_id=pad)
    train = prepared.datasets["train"]
    steps = config.train.steps_per_epoch or math.ceil(len(train) / config.train.batch_size)
    sampler_type = BalancedBatchSampler if config.train.balanced else ShuffledBatchSampler
    sampler = sampler_type(train.labels, config.train.batch_size, steps, config.seed)
    workers = config.train.num_workers  # images decode lazily in these worker processes
    train_loader = DataLoader(train, batch_sampler=sampler, collate_fn=collate_fn,
                              num_workers=workers)
    out = {"train": train_loader}
    for name in ("val", "test"):
        out[name] = DataLoader(
            prepared.datasets[name], batch_size=config.train.eval_batch_size,
            shuffle=False, collate_fn=collate_fn, num_workers=workers,
        )
    return out
