"""L2-SP (Li et al., 2018): a penalty toward the starting point instead of toward zero,

    Omega(theta) = strength / 2 * sum_j ||theta_j - theta_j^0||^2

over the trainable weights, so fine-tuning on a few training labels stays near the
pretrained space that the unseen labels live in. Every trainable weight here has a
starting point (the encoder's pretrained weights, identity-initialised projections), so
the whole sum is toward theta^0 (the paper's separate decay of new layers is not needed).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class L2SP(nn.Module):
    def __init__(self, model: nn.Module, initial: dict[str, Tensor], strength: float) -> None:
        """`initial`: name -> starting value for the model's trainable parameters."""
        super().__init__()
        self.strength = strength
        self.params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        missing = [name for name, _ in self.params if name not in initial]
        if missing:
            raise ValueError(f"L2-SP: no starting value for parameter(s) {missing[:5]}")
        # Plain tensors, not buffers: the anchors never enter the model's saved weights.
        self.anchors = [initial[name].detach().to(p.device, p.dtype).clone() for name, p in self.params]

    def forward(self) -> Tensor:
        total = sum(((p - a) ** 2).sum() for (_, p), a in zip(self.params, self.anchors, strict=True))
        return 0.5 * self.strength * torch.as_tensor(total)
