"""Text encoder with entity markers (paper, section 4.1).

The sentence is wrapped with reserved marker tokens, [E1] ... [/E1] around the head entity
(MET: the entity) and [E2] ... [/E2] around the tail, then encoded by any Hugging Face
BERT-family model. The entity vector is [CLS] (+) [E1] for MET and [CLS] (+) [E1] (+) [E2]
for MRE. Label prototypes are the label text through the same encoder, mean-pooled over its
real tokens (R = 1/(l+2) sum_i r_i, [CLS] and [SEP] included, padding excluded).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from zsmie.data.batching import EncodedText  # the batch's input type, defined below the encoders
from zsmie.data.sample import DataError, Sample, Span
from zsmie.encoders import onnx_int8
from zsmie.encoders.packaged import EncoderError, check_hub, describe_load_failure, resolve_text_model
from zsmie.encoders.precision import DEFAULT_SCHEME, check_precision, quantize_linear_layers

MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")
# marker_init = "tokens": each marker starts from the embedding of a bracket the encoder
# already knows, so that even a frozen encoder sees distinct opening and closing markers.
MARKER_SEEDS = {"[E1]": "<", "[/E1]": ">", "[E2]": "[", "[/E2]": "]"}


def escape_markers(word: str) -> str:
    """A word of the user's text with any marker string in it ("[E1]") spaced out ("[ E1 ]"),
    so that it reads as the brackets and letters it is (as the encoder's own tokenizer splits
    it), not as an entity marker."""
    for marker in MARKERS:
        if marker in word:
            word = word.replace(marker, f"[ {marker[1:-1]} ]")
    return word


def insert_markers(tokens: tuple[str, ...], head: Span, tail: Span | None) -> list[str]:
    """Words with [E1]/[/E1] around the head and [E2]/[/E2] around the tail; marker strings
    in the words themselves are escaped (`escape_markers`).

    Where markers meet at one position, closing ones come first, and a longer span opens
    before (and closes after) a span nested inside it.
    """
    inserts: list[tuple[int, int, int, str]] = []  # (position, close-first, nesting, marker)
    spans = [(head, "[E1]", "[/E1]")] + ([(tail, "[E2]", "[/E2]")] if tail else [])
    for span, opener, closer in spans:
        inserts.append((span.start, 1, -len(span), opener))
        inserts.append((span.end, 0, len(span), closer))
    inserts.sort()
    tokens = tuple(escape_markers(token) for token in tokens)
    words: list[str] = []
    cursor = 0
    for position, _, _, marker in inserts:
        words.extend(tokens[cursor:position])
        cursor = position
        words.append(marker)
    words.extend(tokens[cursor:])
    return words


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """Mean over positions where mask is true. states [B, L, d], mask [B, L] -> [B, d]."""
    weights = mask.to(states.dtype).unsqueeze(-1)  # [B, L, 1]
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def gather_entity_vector(states: Tensor, markers: Tensor) -> Tensor:
    """[CLS] (+) marker states. states [B, L, d], markers [B, k] -> [B, (k+1) d]."""
    batch = torch.arange(states.size(0), device=states.device).unsqueeze(1)  # [B, 1]
    marked = states[batch, markers]  # [B, k, d]
    return torch.cat([states[:, 0], marked.flatten(1)], dim=-1)


def entity_token_mask(input_ids: Tensor, marker_ids: tuple[int, ...]) -> Tensor:
    """True from each opening marker to its closing one, both included.

    input_ids [B, L], marker_ids ([E1], [/E1], [E2], [/E2]) -> [B, L] bool. A span whose
    closing marker was cropped away runs to the end of the sequence.
    """
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for opener, closer in zip(marker_ids[::2], marker_ids[1::2], strict=True):
        opened = (input_ids == opener).cumsum(1)  # [B, L]
        is_closer = input_ids == closer
        mask |= (opened > is_closer.cumsum(1)) | (is_closer & (opened > 0))
    return mask


class TextEncoder(nn.Module):
    """A Hugging Face text encoder with entity markers; frozen or fine-tuned."""

    def __init__(
        self,
        model: str = "minilm",
        max_length: int = 128,
        finetune: bool = False,
        marker_init: str = "tokens",
        freeze_layers: int = 0,
    ) -> None:
        super().__init__()
        self.name = model
        self.max_length = max_length
        self.finetune = finetune
        self.marker_init = marker_init
        self.precision = "fp32"  # set_precision("int8"): quantised for inference
        self._scheme = ""  # int8's weight scheme (SCHEMES), int8-onnx's method (onnx_int8.METHODS)
        self._session = None  # int8-onnx: the ONNX Runtime session that replaces self.model
        path = resolve_text_model(model)
        hf_logging.disable_progress_bar()
        check_hub(path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise describe_load_failure(model, exc) from None
        limits = [getattr(self.model.config, "max_position_embeddings", None),
                  getattr(self.tokenizer, "model_max_length", None)]
        limit = min((n for n in limits if isinstance(n, int) and 0 < n < 1_000_000), default=None)
        if limit is not None and max_length > limit:
            raise EncoderError(f"text.max_length = {max_length}: above the {limit} tokens encoder "
                               f"{model!r} reads; set text.max_length to at most {limit}")
        self._add_markers()
        self._prefix, self._suffix = self._special_affixes()
        self.hidden_size: int = self.model.config.hidden_size
        self.model.requires_grad_(finetune)
        if not finetune:
            self.model.eval()
        elif freeze_layers:
            self.freeze_lower_layers(freeze_layers)

    def freeze_lower_layers(self, n: int) -> None:
        """Fine-tune only the layers above the lowest `n` (the embeddings stay frozen too)."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        embeddings = getattr(self.model, "embeddings", None)
        if layers is None or embeddings is None:
            raise EncoderError(f"text.freeze_layers: encoder {self.name!r} has no BERT-style "
                             "embeddings and encoder.layer list to freeze")
        if n > len(layers):
            raise EncoderError(f"text.freeze_layers = {n}: encoder {self.name!r} has only "
                             f"{len(layers)} layers")
        for module in (embeddings, *layers[:n]):
            module.requires_grad_(False)

    def set_precision(self, precision: str, scheme: str | None = None,
                      cache_dir: str | Path | None = None) -> None:
        """Run at `precision` from now on, for inference only; there is no way back. "int8"
        quantises the transformer's linear layers in place (zsmie.encoders.precision;
        `scheme` per_channel | per_tensor); "int8-onnx" runs it as an int8 ONNX Runtime
        session (zsmie.encoders.onnx_int8; `scheme` one of its METHODS), exported once into
        `cache_dir` (None: the user's cache) and reused while the weights stay the same."""
        check_precision(precision)
        if precision == self.precision:
            return
        if self.precision != "fp32":
            raise EncoderError(f"text encoder {self.name!r} is already {self.precision}: "
                               f"cannot run it at {precision}")
        device = next(self.model.parameters()).device
        if device.type != "cpu":
            raise EncoderError(f"precision {precision} runs on the CPU only, but text encoder "
                               f"{self.name!r} is on {device}: use device cpu or precision fp32")
        self.model.requires_grad_(False)  # `finetune` stays: it tells how the run was trained
        self.model.eval()
        if precision == "int8-onnx":
            scheme = scheme or onnx_int8.DEFAULT_METHOD
            path = onnx_int8.cached_int8(self.model, onnx_int8.export_dir(cache_dir), scheme)
            self._session = onnx_int8.OnnxStates(path)
        else:
            scheme = scheme or DEFAULT_SCHEME
            quantize_linear_layers(self.model, scheme)
            self.model.eval()
        self.precision, self._scheme = precision, scheme

    def _add_markers(self) -> None:
        mean = self.model.get_input_embeddings().weight.detach().mean(0)
        seeds = [self.tokenizer.convert_tokens_to_ids(MARKER_SEEDS[m]) for m in MARKERS]
        self.tokenizer.add_tokens(list(MARKERS), special_tokens=True)
        self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        self.marker_ids = tuple(self.tokenizer.convert_tokens_to_ids(list(MARKERS)))
        weight = self.model.get_input_embeddings().weight
        with torch.no_grad():
            for marker_id, seed in zip(self.marker_ids, seeds, strict=True):
                usable = self.marker_init == "tokens" and seed != self.tokenizer.unk_token_id
                weight[marker_id] = weight[seed] if usable else mean

    def _special_affixes(self) -> tuple[list[int], list[int]]:
        """The special token ids the tokenizer puts before and after a sentence ([CLS], [SEP])."""
        words = ["a", "b"]
        full = self.tokenizer(words, is_split_into_words=True)["input_ids"]
        inner = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)[
            "input_ids"
        ]
        for p in range(len(full) - len(inner) + 1):
            if full[p : p + len(inner)] == inner:
                return full[:p], full[p + len(inner) :]
        raise ValueError(f"cannot locate the special tokens of tokenizer {self.name!r}")

    def train(self, mode: bool = True) -> TextEncoder:
        # A frozen encoder stays in eval mode (no dropout): its features are deterministic.
        super().train(mode)
        if not self.finetune or self.precision != "fp32":
            self.model.eval()
        return self

    @property
    def identity(self) -> str:
        """Names everything that changes this encoder's outputs (for feature caches)."""
        config = self.model.config.to_json_string(use_diff=False)
        digest = hashlib.sha256(config.encode()).hexdigest()[:12]
        name = f"{self.name}|{digest}|max{self.max_length}|markers-{self.marker_init}"
        return name if self.precision == "fp32" else f"{name}|{self.precision}-{self._scheme}"

    def encode_sample(self, sample: Sample) -> EncodedText:
        """Tokenize a sample with its entity markers, cropped to max_length around them."""
        words = insert_markers(sample.tokens, sample.head, sample.tail)
        ids = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)[
            "input_ids"
        ]
        openers = [self.marker_ids[0]] + ([self.marker_ids[2]] if sample.tail else [])
        budget = self.max_length - len(self._prefix) - len(self._suffix)
        if len(ids) > budget:
            first, last = (ids.index(m) for m in (openers[0], openers[-1]))
            lo, hi = min(first, last), max(first, last)
            if hi - lo >= budget:
                raise DataError(
                    f"{sample.source}: the entity markers are {hi - lo} tokens apart, more "
                    f"than text.max_length={self.max_length} allows"
                )
            start = max(0, min((lo + hi - budget) // 2 + 1, len(ids) - budget))
            ids = ids[start : start + budget]
        full = [*self._prefix, *ids, *self._suffix]
        return EncodedText(tuple(full), tuple(full.index(m) for m in openers))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Token states [B, L, d]; no gradient when the encoder is frozen."""
        tracked = self.finetune and self.precision == "fp32" and torch.is_grad_enabled()
        if self._session is not None:  # int8-onnx
            return self._session(input_ids, attention_mask).to(input_ids.device)
        with torch.set_grad_enabled(tracked):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def tokenize_texts(self, texts: list[str]) -> dict[str, Tensor]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def embed_texts(self, texts: list[str]) -> Tensor:
        """Mean-pooled states of plain texts (labels, sentences): [len(texts), d]."""
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenize_texts(texts).items()}
        states = self(batch["input_ids"], batch["attention_mask"])
        return masked_mean(states, batch["attention_mask"].bool())
