"""Variational mixture of experts, VMoE (paper, section 4.2, Eqs. 2-6).

One layer shared by text and image tokens (the "uni-backbone"). Each expert is a
variational information bottleneck: mu_i = FFNN(M; theta_mu), log sigma_i^2 = FFNN(M;
theta_sigma) (Eq. 2), z_i = mu_i + sigma_i * eps in training (Eq. 3) and mu_i at inference,
so predictions are deterministic. A per-token softmax router G = softmax(W_g M + b_g) mixes
the experts, H = sum_i G_i z_i. Auxiliary losses: routing entropy (Eq. 4) and KL to N(0, I)
(Eq. 6), both averaged over real tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zsmie.losses.vib import gaussian_kl, masked_token_mean, routing_entropy


@dataclass
class VMoEOutput:
    hidden: Tensor  # [B, N, d] H = sum_i G_i z_i
    gates: Tensor  # [B, N, K] router weights G
    aux: Tensor  # scalar, mean routing entropy (Eq. 4)
    kl: Tensor  # scalar, mean over tokens of sum over experts and dims of KL (Eq. 6)


class VariationalMoE(nn.Module):
    def __init__(
        self,
        dim: int,
        experts: int = 8,
        init: str = "identity",
        logvar_init: float = -6.0,
        kl_reduction: str = "sum",
    ) -> None:
        super().__init__()
        self.kl_reduction = kl_reduction
        self.dim, self.experts = dim, experts
        self.router = nn.Linear(dim, experts)
        self.mu = nn.Linear(dim, experts * dim)  # K expert mean maps, batched
        self.logvar = nn.Linear(dim, experts * dim)  # K expert log-variance maps, batched
        self.force_expert = -1  # >= 0: at inference, route every token to this expert (Figure 5)
        if init == "identity":
            # Experts start near the identity with a small variance: the layer first passes
            # the encoder's tokens through, and training moves the experts apart from there.
            with torch.no_grad():
                eye = torch.eye(dim).repeat(experts, 1)  # [K d, d]
                self.mu.weight.copy_(eye + 1e-3 * torch.randn_like(eye))
                self.mu.bias.zero_()
                self.logvar.weight.mul_(0.01)
                self.logvar.bias.fill_(logvar_init)

    def forward(self, tokens: Tensor, mask: Tensor) -> VMoEOutput:
        """tokens M [B, N, d], mask [B, N] bool (false at padding) -> VMoEOutput."""
        b, n, d = tokens.shape
        gates = self.router(tokens).softmax(-1)  # [B, N, K]
        if self.force_expert >= 0 and not self.training:
            gates = F.one_hot(torch.full_like(gates[..., 0], self.force_expert).long(),
                              self.experts).to(tokens.dtype)
        mu = self.mu(tokens).view(b, n, self.experts, d)  # [B, N, K, d]
        logvar = self.logvar(tokens).view(b, n, self.experts, d).clamp(-20.0, 10.0)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu) if self.training else mu
        hidden = (gates.unsqueeze(-1) * z).sum(2)  # [B, N, d]
        return VMoEOutput(
            hidden=hidden,
            gates=gates,
            aux=masked_token_mean(routing_entropy(gates), mask),
            kl=masked_token_mean(gaussian_kl(mu, logvar, self.kl_reduction), mask),
        )
