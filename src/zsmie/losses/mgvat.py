"""Multimodal graph-based virtual adversarial training, MG-VAT (paper, Eqs. 9-12).

Nodes are the samples of a batch, H~_i = [V~_i (+) T~_i]. The graph A (Eq. 9) is built from
the clean nodes. Each node is compared with its graph-weighted relevant aggregate PA and its
irrelevant aggregate P(1 - A) (the release) or P(I - A) (as the paper writes it), giving a
two-way score s_i (Eq. 10). One perturbation tau, added to every node, is moved to maximise
KL(S || S~) (Eq. 12, tau alone, before the model step); the model then minimises
L_vat = KL(S || S~) (Eq. 11) with this step's tau fixed.

Eq. 12 as written (KL - ||tau||_2) collapses: the penalty's gradient has norm 1 while the KL's
is about 1e-4, so every ascent step shrinks tau toward 0. Two working forms (`mode`):
- "radius" (default; Miyato et al. 2018): tau = epsilon * r * d, with d the unit direction
  found by `power_steps` power iterations on the normalised KL gradient, warm-started from the
  previous step's direction (so tau is one vector learned across steps), and r the batch's
  mean node norm (epsilon is relative, whatever the encoder's scale);
- "penalty": the paper's ascent with a squared, weighted penalty, KL - lambda ||tau||^2,
  `ascent_steps` gradient steps of size `lr` per batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zsmie.choices import VAT_COMPLEMENTS as COMPLEMENTS
from zsmie.choices import VAT_MODES as MODES


def sample_graph(nodes: Tensor) -> Tensor:
    """a_ij = (1 + cos(H_i, H_j)) / 2 (Eq. 9). nodes [N, D] -> A [N, N], entries in [0, 1]."""
    unit = F.normalize(nodes, dim=-1)
    return (1.0 + unit @ unit.T) / 2.0


def irrelevant_aggregate(nodes: Tensor, relevant: Tensor, complement: str = "ones") -> Tensor:
    """H^' = P(1 - A) ("ones", the release) or P(I - A) ("identity", Eq. 10 as written), from
    the relevant aggregate H^ = A @ nodes (computed once by the caller).

    In row form with A symmetric: (1 - A) @ nodes = sum_j H_j - A @ nodes, and
    (I - A) @ nodes = nodes - A @ nodes. nodes, relevant [N, D] -> [N, D].
    """
    if complement == "ones":
        return nodes.sum(0, keepdim=True) - relevant
    if complement == "identity":
        return nodes - relevant
    raise ValueError(f"complement = {complement!r}: expected one of {COMPLEMENTS}")


def two_way_scores(
    nodes: Tensor, graph: Tensor, score: str = "cosine", complement: str = "ones"
) -> Tensor:
    """s_i = softmax([H^_i . H~_i ; H^_i . H^'_i]) (Eq. 10) -> log-probabilities [N, 2].

    H^ = PA, the relevant aggregate. For the adversarial scores S~, `nodes` is P + tau while
    `graph` stays the clean A. `score = "dot"` is Eq. 10; "cosine" uses cosine similarities
    instead: raw dot products of aggregates grow with the batch and the feature norm,
    saturate the softmax, and leave a KL of about 1e-14.
    """
    relevant = graph @ nodes  # [N, D]
    irrelevant = irrelevant_aggregate(nodes, relevant, complement)  # [N, D]
    if score == "cosine":
        relevant, irrelevant = F.normalize(relevant, dim=-1), F.normalize(irrelevant, dim=-1)
        nodes = F.normalize(nodes, dim=-1)
    logits = torch.stack([(relevant * nodes).sum(-1), (relevant * irrelevant).sum(-1)], dim=-1)
    return logits.log_softmax(-1)


def score_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) per row, averaged over rows. log_p, log_q [N, 2] -> scalar."""
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


class GraphVAT(nn.Module):
    """Holds tau (a buffer: the model's optimiser never sees it) and computes Eqs. 11-12.

    In training, `forward(nodes)` first moves tau for this batch (Eq. 12, on detached nodes),
    then returns L_vat = KL(S || S~) with that tau (Eq. 11): gradients reach the nodes, never
    tau, and the model step leaves tau as the ascent set it.
    """

    def __init__(
        self,
        dim: int,
        mode: str = "radius",
        epsilon: float = 0.1,
        power_steps: int = 1,
        penalty: float = 1e-4,
        lr: float = 1e-3,
        ascent_steps: int = 1,
        score: str = "cosine",
        complement: str = "ones",
        init_std: float = 1e-2,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode = {mode!r}: expected one of {MODES}")
        if complement not in COMPLEMENTS:
            raise ValueError(f"complement = {complement!r}: expected one of {COMPLEMENTS}")
        self.mode, self.score, self.complement = mode, score, complement
        self.epsilon, self.power_steps = epsilon, power_steps
        self.penalty, self.lr, self.ascent_steps = penalty, lr, ascent_steps
        # tau starts small and random: at tau = 0 the KL and its gradient are both zero.
        self.register_buffer("tau", torch.randn(dim) * init_std)

    def divergence(self, nodes: Tensor, tau: Tensor) -> Tensor:
        """KL(S || S~): S from the clean nodes (a fixed target, as in VAT), S~ from nodes + tau,
        both on the graph A of the clean nodes."""
        graph = sample_graph(nodes).detach()
        clean = two_way_scores(nodes, graph, self.score, self.complement).detach()
        return score_kl(clean, two_way_scores(nodes + tau, graph, self.score, self.complement))

    def _gradient(self, nodes: Tensor, tau: Tensor) -> tuple[Tensor, Tensor]:
        tau = tau.detach().requires_grad_(True)
        objective = self.divergence(nodes, tau)
        if self.mode == "penalty":
            objective = objective - self.penalty * tau.pow(2).sum()
        (grad,) = torch.autograd.grad(objective, tau)
        return grad, objective.detach()

    @torch.enable_grad()
    def ascend(self, nodes: Tensor) -> float:
        """Eq. 12 on tau alone for this batch; returns the objective at the new tau."""
        nodes = nodes.detach()
        if self.mode == "radius":
            radius = self.epsilon * nodes.norm(dim=-1).mean()
            direction = F.normalize(self.tau, dim=0)
            for _ in range(self.power_steps):
                # The KL's gradient at a point on the direction, normalised (power iteration).
                grad, _ = self._gradient(nodes, 1e-3 * radius * direction)
                if grad.norm() > 0:  # a flat KL (one node, identical nodes) keeps the direction
                    direction = F.normalize(grad, dim=0)
            self.tau.copy_(radius * direction)
        else:
            for _ in range(self.ascent_steps):
                grad, _ = self._gradient(nodes, self.tau)
                self.tau.add_(self.lr * grad)
        with torch.no_grad():
            return float(self.divergence(nodes, self.tau))

    def forward(self, nodes: Tensor) -> Tensor:
        """L_vat = KL(S || S~) (Eq. 11) with this step's tau; in training tau moves first."""
        if self.training:
            self.ascend(nodes)
        return self.divergence(nodes, self.tau.detach())
