"""From samples to padded tensor batches; balanced batches for training.

A dataset item holds a sample's marked token ids, its label index, and (when the model uses
images) its preprocessed image. When the text encoder is frozen its token states can be
precomputed once (a feature store) and travel in the batch instead of being re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from zsmie.data.images import load_rgb
from zsmie.data.sample import Sample


@dataclass(frozen=True)
class EncodedText:
    """Token ids of one marked sentence and the positions of its opening markers (made by
    zsmie.encoders.text.TextEncoder.encode_sample; defined here, below the encoders)."""

    input_ids: tuple[int, ...]
    markers: tuple[int, ...]  # position of [E1] (and [E2] for MRE) in input_ids


@dataclass
class Batch:
    index: Tensor  # [B] position of each sample in its dataset
    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L] bool
    markers: Tensor  # [B, k] positions of [E1] (and [E2])
    labels: Tensor  # [B] index into the label set of the split, -1 if none
    has_image: Tensor  # [B] bool
    pixel_values: Tensor | None = None  # [n_with_image, 3, H, W]
    text_states: Tensor | None = None  # [B, L, d] precomputed, frozen encoder
    image_states: Tensor | None = None  # [B, P, d_v] precomputed, frozen encoder
    entities: tuple[tuple[str, str | None], ...] | None = None  # (head, tail) mention texts
    sentences: tuple[str, ...] | None = None  # each sample's tokens joined by spaces

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            f.name: (v.to(device) if isinstance(v := getattr(self, f.name), Tensor) else v)
            for f in fields(self)
        }
        return Batch(**moved)

    def __len__(self) -> int:
        return int(self.index.numel())


class SampleDataset(Dataset):
    """Samples with their encoded text; images are decoded lazily, in the loader worker."""

    def __init__(
        self,
        samples: Sequence[Sample],
        encoded: Sequence[EncodedText],
        label_index: Mapping[str, int],
        preprocess_image: Callable | None = None,
        text_states: Sequence[Tensor] | None = None,
        image_states: Sequence[Tensor | None] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.encoded = list(encoded)
        self.labels = [label_index.get(s.label, -1) if s.label else -1 for s in self.samples]
        self.preprocess_image = preprocess_image
        self.text_states = text_states
        self.image_states = image_states  # precomputed patch tokens: no decoding at all

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        item = {"index": i, "encoded": self.encoded[i], "label": self.labels[i],
                "entities": (sample.entity_text(sample.head),
                             sample.entity_text(sample.tail) if sample.tail else None),
                "sentence": " ".join(sample.tokens)}
        if self.image_states is not None:
            if self.image_states[i] is not None:
                item["image_states"] = self.image_states[i]
        elif self.preprocess_image is not None and sample.image is not None:
            image = load_rgb(sample.image, sample.source)
            item["pixels"] = self.preprocess_image([image])[0]
        if self.text_states is not None:
            item["text_states"] = self.text_states[i]
        return item


def pad_sequences(rows: Sequence[Tensor], value: float = 0.0) -> Tensor:
    """[n_i, ...] tensors -> [B, max n_i, ...], padded with `value`."""
    return torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True, padding_value=value)


def collate(items: list[dict], pad_id: int = 0) -> Batch:
    ids = [torch.tensor(it["encoded"].input_ids) for it in items]
    input_ids = pad_sequences(ids, pad_id).long()
    lengths = torch.tensor([len(x) for x in ids])
    mask = torch.arange(input_ids.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    has_image = torch.tensor(["pixels" in it or "image_states" in it for it in items])
    pixels = [it["pixels"] for it in items if "pixels" in it]
    states = [it["text_states"] for it in items if "text_states" in it]
    return Batch(
        index=torch.tensor([it["index"] for it in items]),
        input_ids=input_ids,
        attention_mask=mask,
        markers=torch.tensor([it["encoded"].markers for it in items]),
        labels=torch.tensor([it["label"] for it in items]),
        has_image=has_image,
        pixel_values=torch.stack(pixels) if pixels else None,
        text_states=pad_sequences(states) if len(states) == len(items) else None,
        image_states=_image_states(items),
        entities=tuple(it["entities"] for it in items) if all("entities" in it for it in items)
        else None,
        sentences=tuple(it["sentence"] for it in items) if all("sentence" in it for it in items)
        else None,
    )


def _image_states(items: list[dict]) -> Tensor | None:
    """Precomputed patch tokens [B, P, d_v], zeros for samples without an image."""
    found = [it["image_states"] for it in items if "image_states" in it]
    if not found:
        return None
    out = found[0].new_zeros(len(items), *found[0].shape)
    for row, it in enumerate(items):
        if "image_states" in it:
            out[row] = it["image_states"]
    return out


class BalancedBatchSampler(Sampler[list[int]]):
    """Batches holding an equal number of samples per label (the release's sampling).

    Each label's samples are drawn in a shuffled cycle (every sample once before any repeats);
    when the batch size is not a multiple of the label count, the remaining places go to
    labels chosen at random for that batch.
    """

    def __init__(self, labels: Sequence[int], batch_size: int, steps: int, seed: int) -> None:
        self.by_label = [np.flatnonzero(np.asarray(labels) == c) for c in sorted(set(labels))]
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        pools = [rng.permutation(idx) for idx in self.by_label]
        cursors = [0] * len(pools)
        n_labels = len(pools)
        for _ in range(self.steps):
            quota = np.full(n_labels, self.batch_size // n_labels)
            quota[rng.choice(n_labels, self.batch_size % n_labels, replace=False)] += 1
            batch: list[int] = []
            for c, count in enumerate(quota):
                for _ in range(count):
                    if cursors[c] == len(pools[c]):
                        pools[c], cursors[c] = rng.permutation(self.by_label[c]), 0
                    batch.append(int(pools[c][cursors[c]]))
                    cursors[c] += 1
            yield batch


class ShuffledBatchSampler(BalancedBatchSampler):
    """Plain shuffled batches (`train.balanced = false`), drawn like the balanced ones from
    (seed, epoch), so that a resumed run replays an epoch exactly."""

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n = sum(len(idx) for idx in self.by_label)
        order = rng.permutation(n)
        for step in range(min(self.steps, n // self.batch_size)):
            yield [int(i) for i in order[step * self.batch_size : (step + 1) * self.batch_size]]
