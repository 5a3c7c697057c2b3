"""Each MG-VMoE loss against values computed by hand on small tensors."""

import math

import pytest
import torch

from zsmie.losses.contrastive import multimodal_contrastive
from zsmie.losses.mgvat import (
    GraphVAT,
    irrelevant_aggregate,
    sample_graph,
    score_kl,
    two_way_scores,
)
from zsmie.losses.vib import gaussian_kl, routing_entropy


def test_kl_of_known_gaussians():
    # one token, one expert, two dims: N(1, 1) and N(0, 4) against N(0, 1)
    mu = torch.tensor([[[[1.0, 0.0]]]])
    logvar = torch.tensor([[[[0.0, math.log(4.0)]]]])
    expected = 0.5 * ((1 + 1 - 1 - 0) + (0 + 4 - 1 - math.log(4.0)))  # 1.3069
    assert torch.isclose(gaussian_kl(mu, logvar), torch.tensor([[expected]])).all()
    assert torch.isclose(gaussian_kl(mu, logvar, "mean"), torch.tensor([[expected / 2]])).all()
    assert gaussian_kl(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4)).item() == 0.0


def test_routing_entropy_of_known_routers():
    gates = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]]])
    expected = [math.log(2), 0.0, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    assert torch.allclose(routing_entropy(gates), torch.tensor([expected]))


def test_contrastive_loss_of_a_known_batch():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    image = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # logits T.V^T = [[1, 0], [0, 2]]
    row0 = -math.log(math.e / (math.e + 1))  # i=0 in both directions
    row1 = -math.log(math.e**2 / (1 + math.e**2))
    expected = 0.5 * ((row0 + row1) / 2 + (row0 + row1) / 2)
    assert math.isclose(multimodal_contrastive(text, image).item(), expected, rel_tol=1e-6)


def test_sample_graph_eq9():
    nodes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    a = sample_graph(nodes)
    c = (1 + 1 / math.sqrt(2)) / 2
    expected = torch.tensor([[1.0, 0.5, c], [0.5, 1.0, c], [c, c, 1.0]])
    assert torch.allclose(a, expected, atol=1e-6) and torch.equal(a, a.T)


def test_two_way_scores_eq10_with_the_paper_complement():
    nodes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    graph = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    # H^ = A@P = [[1, .5], [.5, 1]]; H^' = P(I - A) = P - H^ = [[0, -.5], [-.5, 0]]
    # row 0 logits: [H^_0.H_0, H^_0.H^'_0] = [1, -0.25]; row 1 by symmetry the same
    p0 = math.exp(1) / (math.exp(1) + math.exp(-0.25))
    expected = torch.tensor([[p0, 1 - p0], [p0, 1 - p0]])
    got = two_way_scores(nodes, graph, "dot", "identity").exp()
    assert torch.allclose(got, expected, atol=1e-6)
    # cosine form: cos(H^_0, H_0) = 1/sqrt(1.25), cos(H^_0, H^'_0) = -0.25/(sqrt(1.25)*0.5)
    logits = torch.tensor([1 / math.sqrt(1.25), -0.25 / (math.sqrt(1.25) * 0.5)])
    got = two_way_scores(nodes, graph, "cosine", "identity")[0]
    assert torch.allclose(got, logits.log_softmax(-1))


def test_the_two_eq10_complements_by_hand():
    nodes = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    graph = torch.tensor([[1.0, 0.5, 0.25], [0.5, 1.0, 0.75], [0.25, 0.75, 1.0]])
    # (1 - A) = [[0, .5, .75], [.5, 0, .25], [.75, .25, 0]] @ P
    ones = torch.tensor([[0.75, 1.75], [0.75, 0.25], [0.75, 0.5]])
    # (I - A) = [[0, -.5, -.25], [-.5, 0, -.75], [-.25, -.75, 0]] @ P
    identity = torch.tensor([[-0.25, -1.25], [-1.25, -0.75], [-0.25, -1.5]])
    assert torch.allclose(irrelevant_aggregate(nodes, graph @ nodes, "ones"), ones)
    assert torch.allclose(irrelevant_aggregate(nodes, graph @ nodes, "identity"), identity)
    # Eq. 10 with the release's complement, row 0: H^_0 = [1.25, 1.25]
    logits = torch.tensor([1.25 * 1.0, 1.25 * 0.75 + 1.25 * 1.75])
    got = two_way_scores(nodes, graph, "dot", "ones")[0]
    assert torch.allclose(got, logits.log_softmax(-1))
    with pytest.raises(ValueError, match="complement = 'both'"):
        irrelevant_aggregate(nodes, graph @ nodes, "both")


def test_vat_divergence_is_zero_without_perturbation_and_ascent_increases_it():
    torch.manual_seed(0)
    nodes = torch.randn(6, 4)
    for mode in ("radius", "penalty"):
        vat = GraphVAT(4, mode=mode, lr=0.5, penalty=1e-3, epsilon=0.1)
        assert vat.divergence(nodes, torch.zeros(4)).abs().item() < 1e-7
        before = vat.divergence(nodes, vat.tau).item()
        for _ in range(5):
            vat.ascend(nodes)
        assert vat.divergence(nodes, vat.tau).item() > before, mode


def test_radius_tau_beats_a_random_direction_and_keeps_its_norm():
    torch.manual_seed(0)
    nodes = torch.randn(16, 8) + 2.0
    vat = GraphVAT(8, mode="radius", epsilon=0.2, power_steps=2)
    radius = 0.2 * nodes.norm(dim=-1).mean().item()
    for _ in range(300):
        vat.ascend(nodes)
    assert math.isclose(vat.tau.norm().item(), radius, rel_tol=1e-5)  # not 0 after 300 steps
    found = vat.divergence(nodes, vat.tau).item()
    randoms = [vat.divergence(nodes, radius * torch.nn.functional.normalize(torch.randn(8), dim=0))
               for _ in range(50)]
    assert found > max(randoms).item()  # the power iteration finds the worst direction


def test_penalty_tau_does_not_collapse_where_the_penalty_is_below_the_curvature():
    """The paper's -||tau||_2 has a gradient of norm 1 and shrinks tau to 0 at every step; a
    squared penalty lambda ||tau||^2 below the KL's curvature lets tau grow instead."""
    torch.manual_seed(0)
    nodes = torch.randn(16, 8) * 0.3
    vat = GraphVAT(8, mode="penalty", penalty=1e-6, lr=10.0)
    start_norm, start_kl = vat.tau.norm().item(), vat.divergence(nodes, vat.tau).item()
    for _ in range(300):
        vat.ascend(nodes)
    assert vat.tau.norm().item() > start_norm
    assert vat.divergence(nodes, vat.tau).item() > 10 * start_kl
    heavy = GraphVAT(8, mode="penalty", penalty=10.0, lr=0.01)
    for _ in range(300):
        heavy.ascend(nodes)
    assert heavy.tau.norm().item() < 1e-3  # a penalty above the curvature pulls tau to 0


def test_score_kl_by_hand():
    p = torch.tensor([[0.5, 0.5]]).log()
    q = torch.tensor([[0.25, 0.75]]).log()
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert math.isclose(score_kl(p, q).item(), expected, rel_tol=1e-6)
