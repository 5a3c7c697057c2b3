"""MG-VMoE: multimodal graph-based variational mixture of experts (paper, section 4).

Text tokens T and image tokens V (projected to the text width when they differ) pass through
one shared VMoE layer (Eqs. 2-6). The mean fused text and image vectors of each sample feed
the contrastive loss (Eq. 8) and, concatenated, the nodes of MG-VAT (Eqs. 9-12). Entity-aware
attention pools the fused tokens into U (section 4.4); [U (+) E] and the label prototypes are
projected and scored (o_i), trained with L = L_rank + beta (L_aux + L_reg + L_cl + L_vat)
(Eq. 14). Samples without an image have no image tokens; the contrastive loss skips them
and their MG-VAT node has a zero image half.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zsmie.encoders.text import masked_mean
from zsmie.layers.fusion import EntityAwareAttention
from zsmie.layers.scoring import PrototypeScorer
from zsmie.layers.vmoe import VariationalMoE
from zsmie.losses.contrastive import multimodal_contrastive
from zsmie.losses.mgvat import GraphVAT
from zsmie.models.base import Features, HeadOutput, ZeroShotHead


class MGVMoE(ZeroShotHead):
    uses_images = True

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        entity_dim: int,
        proj_dim: int,
        vmoe: VariationalMoE | None,
        vat: GraphVAT | None,
        beta: float = 1.0,
        fusion: str = "query",
        **scorer,
    ) -> None:
        """`vmoe` / `vat`: the VMoE layer and the MG-VAT module, or None (the ablations)."""
        super().__init__(scorer.pop("margin", 1.0))
        self.beta = beta
        self.image_in = (
            nn.Linear(image_dim, text_dim) if image_dim and image_dim != text_dim else nn.Identity()
        )
        self.vmoe, self.vat = vmoe, vat
        self.fusion = EntityAwareAttention(text_dim, entity_dim, form=fusion)
        self.scorer = PrototypeScorer(text_dim + entity_dim, text_dim, proj_dim, **scorer)

    def tokens(self, features: Features) -> tuple[Tensor, Tensor, int]:
        """M = [V; T] [B, P + L, d] with its mask, and P (the number of image tokens)."""
        text, text_mask = features.text, features.text_mask
        if features.image is None:
            return text, text_mask, 0
        image = self.image_in(features.image)  # [B, P, d]
        return torch.cat([image, text], 1), torch.cat([features.image_mask, text_mask], 1), \
            image.size(1)

    def forward(self, features: Features, prototypes: Tensor) -> HeadOutput:
        tokens, mask, n_image = self.tokens(features)
        losses: dict[str, Tensor] = {}
        stats: dict[str, Tensor] = {}
        if self.vmoe is not None:
            moe = self.vmoe(tokens, mask)
            fused = moe.hidden  # H [B, P + L, d]
            losses["aux"], losses["reg"] = moe.aux, moe.kl
            stats.update({f"expert_{k}": v for k, v in moe.stats.items()})
        else:
            fused = tokens
        text = masked_mean(fused[:, n_image:], features.text_mask)  # T~ [B, d]
        if n_image:
            image = masked_mean(fused[:, :n_image], mask[:, :n_image])  # V~ [B, d], 0 if none
        else:
            image = torch.zeros_like(text)
        nodes = torch.cat([image, text], -1)  # MG-VAT nodes H~_i = [V~_i (+) T~_i], [B, 2d]
        if self.training:
            has = features.has_image
            if int(has.sum()) >= 2:
                losses["cl"] = multimodal_contrastive(text[has], image[has])
            if self.vat is not None and len(nodes) >= 2:
                losses["vat"] = self.vat(nodes)  # tau moves first, for this batch (Eq. 12)
                stats["tau_norm"] = self.vat.tau.norm()
        pooled, alpha = self.fusion(fused, features.entity, mask)  # U [B, d]
        scores, embedding = self.scorer(torch.cat([pooled, features.entity], -1), prototypes)
        return HeadOutput(scores, embedding, losses, {"nodes": nodes, "attention": alpha}, stats)

    def loss(self, output: HeadOutput, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Eq. 14: L = L_rank + beta * (L_aux + L_reg + L_cl + L_vat).

        The bottleneck of Eq. 1, beta I(M, Z) - I(Z, Y), is in here: L_reg bounds I(M, Z) from
        above (Eqs. 5-6) and L_rank optimises the lower bound on I(Z, Y) (Eq. 7)."""
        rank, terms = super().loss(output, labels)
        extra = sum(output.losses.values(), rank.new_zeros(()))
        terms.update(output.losses)
        return rank + self.beta * extra, terms
