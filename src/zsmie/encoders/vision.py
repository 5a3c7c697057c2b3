"""Image encoder: any Hugging Face ViT-family model (ViT, DINOv2, CLIP/SigLIP vision) that
returns patch tokens V = {v_1 .. v_|V|} (paper, section 4.1). Frozen by default."""

from __future__ import annotations

import hashlib

import torch
from PIL import Image
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    CLIPVisionModel,
    SiglipVisionModel,
    ViTConfig,
    ViTModel,
)
from transformers.utils import logging as hf_logging

try:  # transformers >= 5: the PIL processor by name (the plain name warns about torchvision
    # at import, in every command, text-only ones included)
    from transformers import ViTImageProcessorPil as ViTImageProcessor
except ImportError:  # older transformers: the plain name is the PIL processor
    from transformers import ViTImageProcessor

from zsmie.encoders.packaged import check_hub, describe_load_failure

# A deterministic, randomly initialised tiny ViT: exercises the image path in tests and the
# demo where no pretrained ViT is installed. Its features carry no pretrained knowledge.
TINY_RANDOM_VIT = "tiny-random-vit"
_VISION_TOWERS = {"clip": CLIPVisionModel, "siglip": SiglipVisionModel}


def _tiny_random_vit() -> tuple[nn.Module, ViTImageProcessor]:
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ViTModel(config, add_pooling_layer=False)
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    return model, processor


class VisionEncoder(nn.Module):
    def __init__(self, model: str, finetune: bool = False) -> None:
        super().__init__()
        self.name = model
        self.finetune = finetune
        hf_logging.disable_progress_bar()
        if model == TINY_RANDOM_VIT:
            self.model, self.processor = _tiny_random_vit()
        else:
            check_hub(model)
            try:
                config = AutoConfig.from_pretrained(model)
                tower = _VISION_TOWERS.get(config.model_type, AutoModel)
                self.model = tower.from_pretrained(model)
                self.processor = AutoImageProcessor.from_pretrained(model)
            except (OSError, ValueError) as exc:
                raise describe_load_failure(model, exc) from None
        self.hidden_size: int = self.model.config.hidden_size
        self.model.requires_grad_(finetune)
        if not finetune:
            self.model.eval()

    def train(self, mode: bool = True) -> VisionEncoder:
        super().train(mode)
        if not self.finetune:
            self.model.eval()
        return self

    @property
    def identity(self) -> str:
        """Model and preprocessing: a change in either must miss any feature cache."""
        config = self.model.config.to_json_string(use_diff=False)
        processing = self.processor.to_json_string()
        digest = hashlib.sha256((config + processing).encode()).hexdigest()[:12]
        return f"{self.name}|{digest}"

    def preprocess(self, images: list[Image.Image]) -> Tensor:
        return self.processor(images=images, return_tensors="pt")["pixel_values"]

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Patch tokens [B, P, d_v] (all output tokens, [CLS] included, as the release)."""
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            return self.model(pixel_values=pixel_values).last_hidden_state


def build_vision_encoder(model: str, finetune: bool = False) -> VisionEncoder | None:
    return None if model in ("", "none") else VisionEncoder(model, finetune)
