"""Multimodal graph-based virtual adversarial training, MG-VAT (paper, Eqs. 9-12).

Nodes are the samples of a batch, H~_i = [V~_i (+) T~_i]. The graph A (Eq. 9) is built from
the clean nodes. Each node is compared with its graph-weighted relevant aggregate PA and its
irrelevant aggregate P(I - A), giving a two-way score s_i (Eq. 10). A single learned
perturbation tau, added to every node, is first moved to maximise KL(S || S~) - ||tau||_2
(Eq. 12, tau alone); the model then minimises L_vat = KL(S || S~) (Eq. 11) with tau fixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sample_graph(nodes: Tensor) -> Tensor:
    """a_ij = (1 + cos(H_i, H_j)) / 2 (Eq. 9). nodes [N, D] -> A [N, N], entries in [0, 1]."""
    unit = F.normalize(nodes, dim=-1)
    return (1.0 + unit @ unit.T) / 2.0


def two_way_scores(nodes: Tensor, graph: Tensor, score: str = "dot") -> Tensor:
    """s_i = softmax([H^_i . H~_i ; H^_i . H^'_i]) (Eq. 10) -> log-probabilities [N, 2].

    H^ = PA (relevant aggregate) and H^' = P(I - A) (irrelevant aggregate); in row form,
    with A symmetric: H^ = A @ nodes and H^' = nodes - A @ nodes. For the adversarial
    scores S~, `nodes` is P + tau while `graph` stays the clean A. `score = "dot"` is Eq. 10;
    "cosine" uses cosine similarities instead: raw dot products of aggregates grow with the
    batch and the feature norm, saturate the softmax, and leave a KL of about 1e-14.
    """
    relevant = graph @ nodes  # [N, D]
    irrelevant = nodes - relevant  # [N, D]
    if score == "cosine":
        relevant, irrelevant = F.normalize(relevant, dim=-1), F.normalize(irrelevant, dim=-1)
        nodes = F.normalize(nodes, dim=-1)
    logits = torch.stack([(relevant * nodes).sum(-1), (relevant * irrelevant).sum(-1)], dim=-1)
    return logits.log_softmax(-1)


def score_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) per row, averaged over rows. log_p, log_q [N, 2] -> scalar."""
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


class GraphVAT(nn.Module):
    """Holds tau (a buffer: the model's optimiser never sees it) and computes Eqs. 11-12."""

    def __init__(
        self, dim: int, lr: float = 1e-3, init_std: float = 1e-2, score: str = "dot"
    ) -> None:
        super().__init__()
        self.score = score
        # tau starts small and random: at tau = 0 the KL and its gradient are both zero.
        self.register_buffer("tau", torch.randn(dim) * init_std)
        self.lr = lr

    def divergence(self, nodes: Tensor, tau: Tensor) -> Tensor:
        """KL(S || S~): S from the clean nodes (a fixed target, as in VAT), S~ from nodes + tau,
        both on the graph A of the clean nodes."""
        graph = sample_graph(nodes).detach()
        clean = two_way_scores(nodes, graph, self.score).detach()
        return score_kl(clean, two_way_scores(nodes + tau, graph, self.score))

    @torch.enable_grad()
    def ascend(self, nodes: Tensor) -> float:
        """One gradient-ascent step on tau alone for KL(S || S~) - ||tau||_2 (Eq. 12)."""
        tau = self.tau.detach().clone().requires_grad_(True)
        objective = self.divergence(nodes.detach(), tau) - tau.norm(p=2)
        (grad,) = torch.autograd.grad(objective, tau)
        with torch.no_grad():
            self.tau.add_(self.lr * grad)
        return float(objective.detach())

    def forward(self, nodes: Tensor) -> Tensor:
        """L_vat = KL(S || S~) (Eq. 11); gradients reach the nodes, never tau."""
        return self.divergence(nodes, self.tau.detach())
