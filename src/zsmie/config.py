"""Run configuration: typed dataclasses, read from TOML, overridden by `--set key=value`.

Every run saves its fully resolved configuration as `config.toml` in the run folder, so a
run can be re-evaluated or resumed from the folder alone.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from zsmie.errors import ZsmieError


class ConfigError(ZsmieError, ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


@dataclass
class DataConfig:
    format: str = "mnre"  # mnre | wikidiverse | jsonl | demo
    dir: str = ""  # dataset folder; `--data-dir` sets it
    image_dir: str = ""  # default: the format's own image folder inside `dir`
    # Keep at most this many samples per label (0 = all); for quick runs and tests.
    max_per_label: int = 0
    # At most this many VALIDATION samples per label (0 = all), drawn the same way: a smaller,
    # fixed validation set makes model selection cheaper where every pass runs the encoder
    # (fine-tuning: one pass per epoch and per WiSE-FT alpha). Test and training untouched.
    val_max_per_label: int = 0
    # Zero-shot label split: "auto" picks the task's protocol (MNRE seeded shuffle, WikiDiverse
    # rotated type groups); a list file is also accepted by later issues.
    split: str = "auto"
    # Extra training relations in the FewRel format (a file, or a folder such as
    # ../shared/data/fewrel with its overlap.toml and pid2name.json; zsmie.data.fewrel): added
    # to the training part of every split, less each relation that overlaps one of the split's
    # validation or test relations. "" = none.
    extra_train: str = ""
    # At most this many samples per extra relation (0 = all), drawn with the run's seed.
    extra_max_per_label: int = 100


@dataclass
class TextEncoderConfig:
    model: str = "minilm"  # packaged alias, Hugging Face model id, or local folder
    finetune: bool = False
    max_length: int = 128
    # How the new marker tokens' embeddings start: "tokens" copies the embeddings of
    # punctuation the encoder already knows (so a frozen encoder still tells them apart),
    # "mean" uses the mean embedding (the usual resize default).
    marker_init: str = "tokens"
    # Fine-tuning only: keep the embeddings and the lowest N transformer layers frozen.
    freeze_layers: int = 0


@dataclass
class VisionEncoderConfig:
    model: str = "none"  # "none" (text only), Hugging Face ViT-family id, folder, or tiny-random
    finetune: bool = False


@dataclass
class ModelConfig:
    name: str = "proto"  # see zsmie.models.registry
    proj_dim: int = 0  # 0 = the text encoder's hidden size
    # "identity" starts both projections at the encoder's own space (see quality notes);
    # "random" is the usual initialisation.
    proj_init: str = "identity"
    score: str = "dot"  # dot | cosine
    scale: float = 1.0  # multiplies cosine scores (inverse temperature)
    dropout: float = 0.1
    margin: float = 1.0  # max-margin ranking loss (Eq. 13)
    # MG-VMoE (issue 3); ignored by models that do not use them.
    experts: int = 8
    beta: float = 1.0
    vmoe: bool = True
    mgvat: bool = True
    fusion: str = "query"  # "paper" (as written, ignores the entity) | "query"
    # VMoE (Eqs. 2-6): experts start "random" (the release) or at "identity" + noise (the
    # validated choice of configs/mre_mgvmoe.toml)
    vmoe_init: str = "random"
    vmoe_init_std: float = 1e-3  # the noise of "identity" init
    kl_reduction: str = "mean"  # Eq. 6 over experts and dims: "sum" (paper) or "mean"
    # MG-VAT (Eqs. 9-12). vat_mode "radius": tau at a fixed radius (vat_epsilon x the mean
    # node norm) along the power-iterated KL gradient (Miyato et al.); "penalty": the paper's
    # ascent with a squared penalty, KL - vat_penalty ||tau||^2, step tau_lr
    vat_mode: str = "radius"
    vat_epsilon: float = 0.1
    vat_power_steps: int = 1
    vat_penalty: float = 1e-4
    tau_lr: float = 1e-3
    vat_score: str = "cosine"  # Eq. 10 logits: "dot" (paper) or "cosine" (bounded)
    vat_complement: str = "ones"  # Eq. 10's irrelevant aggregate: P(1 - A) or P(I - A)
    force_expert: int = -1  # >= 0: evaluation with one expert forced on (Figure 5)
    # Scores mixed with the training-free similarity: (1 - w) trained + w training-free,
    # each standardised per sample (zsmie.models.ensemble); 0 = off.
    ensemble_weight: float = 0.0
    # Cross-encoder (model.name = "cross"): other training labels scored with each sample's
    # gold label in a training step (0 = all of them).
    negatives: int = 3


@dataclass
class TrainConfig:
    lr: float = 1e-5
    batch_size: int = 16
    epochs: int = 20
    patience: int = 10
    balanced: bool = True  # equal samples per training label in every batch
    steps_per_epoch: int = 0  # 0 = training samples / batch size
    eval_batch_size: int = 64
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # 0 = off
    device: str = "auto"  # auto | cpu | cuda
    mixed_precision: str = "no"  # no | bf16 | fp16 (Accelerate autocast; bf16 on GPU or CPU)
    num_workers: int = 0  # data-loader worker processes (images decode there, lazily)
    progress: bool = True
    # Robust fine-tuning (zsmie.training.robust), applied to the best weights after training:
    # WiSE-FT theta = (1 - a) theta_0 + a theta_ft (1 = the fine-tuned weights as they are),
    # and the searches that choose a and model.ensemble_weight on validation F1.
    wise_alpha: float = 1.0
    wise_search: bool = False
    ensemble_search: bool = False
    # L2-SP: l2sp / 2 * ||theta - theta_0||^2 over the trainable weights (0 = off).
    l2sp: float = 0.0
    # The type-aware score (zsmie.models.typing, MRE only): after the searches above, the
    # typing source, temperature and weight lambda chosen on validation F1 (type_prior.json).
    type_search: bool = False


@dataclass
class OpenWorldConfig:
    """Shares held out of each training relation under protocol = "generalized"; the "no
    relation" class under protocol = "open"."""

    seen_test_share: float = 0.2  # seen-label test samples
    seen_val_share: float = 0.1  # seen-label validation samples (calibrated stacking)
    # Open protocol: train on the train part's None samples as one more label, whose prototype
    # is built from `none_text`; a sample is then answered with its top label only when that
    # label's score beats the none score by the threshold (chosen on validation).
    none_negatives: bool = False
    none_text: str = "no relation"


@dataclass
class Config:
    task: str = "mre"  # mre | met
    seed: int = 0
    images: str = "error"  # missing-image policy: error | blank
    label_text: str = "name"  # raw | name | description | verbalised (zsmie.data.verbalise)
    # label -> description map for label_text = "description": a TOML or JSON file, or a
    # packaged alias ("mnre"); see zsmie.data.labels.
    label_descriptions: str = ""
    # Frozen-encoder features: "auto" (on disk in $ZSMIE_CACHE or ~/.cache/zsmie/features),
    # a folder, "memory" (computed once per run), or "off" (encoders run at every step).
    feature_cache: str = "auto"
    # Evaluation protocol (README, "Open world"): "zero_shot" (the paper's), "open" (MNRE's
    # None samples added, answer a label or none), "generalized" (training labels offered
    # too; their held-out share is then removed from training). Non-zero-shot runs also write
    # open_world.json at the end of training.
    protocol: str = "zero_shot"
    open_world: OpenWorldConfig = field(default_factory=OpenWorldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vision: VisionEncoderConfig = field(default_factory=VisionEncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> Config:
        choices = {
            "task": (self.task, {"mre", "met"}),
            "images": (self.images, {"error", "blank"}),
            "label_text": (self.label_text, {"raw", "name", "description", "verbalised"}),
            "model.score": (self.model.score, {"dot", "cosine"}),
            "model.proj_init": (self.model.proj_init, {"identity", "random"}),
            "model.fusion": (self.model.fusion, {"paper", "query"}),
            "text.marker_init": (self.text.marker_init, {"tokens", "mean"}),
            "model.kl_reduction": (self.model.kl_reduction, {"sum", "mean"}),
            "train.mixed_precision": (self.train.mixed_precision, {"no", "bf16", "fp16"}),
            "model.vat_score": (self.model.vat_score, {"dot", "cosine"}),
            "model.vat_mode": (self.model.vat_mode, {"radius", "penalty"}),
            "model.vat_complement": (self.model.vat_complement, {"ones", "identity"}),
            "model.vmoe_init": (self.model.vmoe_init, {"random", "identity"}),
            "train.device": (self.train.device, {"auto", "cpu", "cuda"}),
            "protocol": (self.protocol, {"zero_shot", "open", "generalized"}),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"{key} = {value!r}: expected one of {sorted(allowed)}")
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
        return self

    def _ranges(self) -> list[tuple[str, Any, bool, str]]:
        """(key, value, whether it is in range, the range in words) for bounded numbers."""
        t, m = self.train, self.model
        finite = math.isfinite
        counts = {"train.steps_per_epoch": t.steps_per_epoch, "train.num_workers": t.num_workers,
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


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                set_flag: str | None = None) -> Config:
    """Read a TOML config (None = all defaults) and apply `key=value` overrides.

    With `set_flag` (the CLI's "--set"), an error that the overrides cause names the first
    override that brings it (`--set model.experts=abc: ...`), not the config file."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        data = read_toml(path)
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
    from zsmie.io import atomic_write_text

    atomic_write_text(Path(path), tomli_w.dumps(config_to_dict(config)))
