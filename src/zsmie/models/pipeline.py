"""ZeroShotModel: encoders + a model head. Batch in, label scores out."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from zsmie.data.batching import Batch
from zsmie.encoders.text import TextEncoder, entity_token_mask, gather_entity_vector
from zsmie.encoders.vision import VisionEncoder
from zsmie.errors import CheckpointError
from zsmie.io import atomic_write
from zsmie.models.base import Features, HeadOutput, ZeroShotHead


def read_weights(path: str | Path, header_only: bool = False) -> dict[str, Tensor]:
    """A safetensors file's tensors; anything else (random bytes, a pickle) is a CheckpointError.

    `header_only` checks the file's header (cheap, before any slow setup) and returns {}."""
    try:
        if header_only:
            with safe_open(str(path), "pt"):
                return {}
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a safetensors weights file ({reason:.160})") from None


class ZeroShotModel(nn.Module):
    def __init__(
        self, text: TextEncoder, head: ZeroShotHead, vision: VisionEncoder | None = None
    ) -> None:
        super().__init__()
        self.text, self.head, self.vision = text, head, vision

    @property
    def uses_images(self) -> bool:
        return self.head.uses_images and self.vision is not None

    def encode_text(self, batch: Batch) -> Tensor:
        if batch.text_states is not None:
            return batch.text_states
        return self.text(batch.input_ids, batch.attention_mask)

    def encode_images(self, batch: Batch) -> tuple[Tensor | None, Tensor | None]:
        """Patch tokens [B, P, d_v] with zeros for imageless samples, and their mask [B, P]."""
        if not self.uses_images:
            return None, None
        if batch.image_states is not None:
            tokens = batch.image_states
        elif batch.pixel_values is not None:
            found = self.vision(batch.pixel_values)  # [n_with_image, P, d_v]
            tokens = found.new_zeros(len(batch), *found.shape[1:])
            tokens[batch.has_image] = found
        else:
            return None, None
        mask = batch.has_image.unsqueeze(1).expand(-1, tokens.size(1))
        return tokens, mask

    def features(self, batch: Batch) -> Features:
        states = self.encode_text(batch)
        image, image_mask = self.encode_images(batch)
        return Features(
            text=states,
            text_mask=batch.attention_mask,
            entity=gather_entity_vector(states, batch.markers),
            has_image=batch.has_image,
            image=image,
            image_mask=image_mask,
            entity_mask=entity_token_mask(batch.input_ids, self.text.marker_ids),
        )

    def prototypes(self, label_texts: list[str]) -> Tensor:
        """Label prototypes R [C, d], each label text encoded once."""
        return self.text.embed_texts(label_texts)

    def forward(self, batch: Batch, prototypes: Tensor) -> HeadOutput:
        return self.head(self.features(batch), prototypes)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Weights to save: everything but frozen encoders (those reload from their source)."""
        skip = []
        if not self.text.finetune:
            skip.append("text.model.")
        if self.vision is not None and not self.vision.finetune:
            skip.append("vision.model.")
        return {
            name: tensor.detach().cpu().contiguous()
            for name, tensor in self.state_dict().items()
            if not any(name.startswith(prefix) for prefix in skip)
        }

    def save(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        """Trainable weights to safetensors, atomically (no pickled code, no half files)."""
        state = self.trainable_state_dict()
        atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))

    def load(self, path: Path) -> None:
        """Weights from safetensors only: a file holding anything else (a pickle) is refused."""
        state = read_weights(path)
        self.load_trainable(state, str(path))

    @torch.no_grad()
    def load_trainable(self, state: dict[str, Tensor], source: str = "checkpoint") -> None:
        """Load what `trainable_state_dict` saved; any other key set is a clear error."""
        expected = set(self.trainable_state_dict())
        absent, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if absent or unexpected:
            raise CheckpointError(
                f"{source}: weights do not fit this model (missing {absent[:5]}, "
                f"unexpected {unexpected[:5]})"
            )
        own = self.state_dict()
        for key, value in state.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise CheckpointError(
                    f"{source}: weights do not fit this model: {key} has shape "
                    f"{list(value.shape)} there, {list(own[key].shape)} here (saved with another "
                    "model size, e.g. model.proj_dim, or another encoder)")
        self.load_state_dict(state, strict=False)


class WrappedModel(nn.Module):
    """A model around another (`wrapped`: a score ensemble, a type prior) that keeps the
    faces of a ZeroShotModel that evaluation and prediction read."""

    @property
    def wrapped(self) -> nn.Module:
        raise NotImplementedError

    @property
    def text(self) -> TextEncoder:
        return self.wrapped.text

    @property
    def uses_images(self) -> bool:
        return self.wrapped.uses_images

    @property
    def vision(self):
        return self.wrapped.vision


class AddedTerm(WrappedModel):
    """A model plus a score term weighed after training (the type prior, the entity-filled
    label templates): `inner` scores, the subclass adds `weight` times its term."""

    what = "term"  # named in the error for a negative weight

    def __init__(self, inner: nn.Module, weight: float) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"{self.what} weight {weight}: must not be negative")
        self.inner, self.weight = inner, weight

    @property
    def wrapped(self) -> nn.Module:
        return self.inner

    @property
    def trained(self) -> nn.Module:
        """The trained model inside (what reads the samples' tokens and feature cache)."""
        return getattr(self.inner, "trained", self.inner)
