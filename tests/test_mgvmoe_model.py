"""MG-VMoE behaviour: tau and the model step, determinism, padding, images, overfitting."""

import torch

from zsmie.layers.fusion import EntityAwareAttention
from zsmie.layers.vmoe import VariationalMoE
from zsmie.losses.mgvat import GraphVAT
from zsmie.models.base import Features
from zsmie.models.mgvmoe import MGVMoE

D = 8


def head(vmoe_init="identity", **kw) -> MGVMoE:
    torch.manual_seed(0)
    options = dict(beta=1.0, init="identity", score="cosine", scale=5.0, dropout=0.0, margin=1.0)
    options.update(kw)
    vmoe = VariationalMoE(D, experts=4, init=vmoe_init, kl_reduction="mean")
    vat = GraphVAT(2 * D, mode="radius", epsilon=0.1, score="cosine")
    return MGVMoE(D, 6, 3 * D, D, vmoe, vat, **options)


def features(b=6, length=5, patches=3, with_image=True, seed=1) -> Features:
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(b, length, D, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 3:] = False  # a padded sample
    has = torch.tensor([with_image] * (b - 1) + [False])
    image = torch.randn(b, patches, 6, generator=g) if with_image else None
    image_mask = has.unsqueeze(1).expand(-1, patches) if with_image else None
    entity = torch.cat([text[:, 0], text[:, 1], text[:, 2]], -1)
    return Features(text, mask, entity, has, image, image_mask)


def test_tau_moves_in_its_own_step_and_never_in_the_model_step():
    model = head()
    model.train()
    assert all(p is not model.vat.tau for p in model.parameters())  # a buffer, not a param
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    tau0 = model.vat.tau.clone()
    out = model(features(), torch.randn(4, D))  # Eq. 12 runs inside the forward pass
    tau1 = model.vat.tau.clone()
    assert not torch.equal(tau0, tau1)
    loss, terms = model.loss(out, torch.tensor([0, 1, 2, 3, 0, 1]))
    assert {"rank", "aux", "reg", "cl", "vat"} <= set(terms)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.equal(model.vat.tau, tau1)


def test_the_model_loss_uses_this_steps_tau():
    model = head()
    model.train()
    out = model(features(), torch.randn(4, D))
    nodes = out.extras["nodes"].detach()
    now = model.vat.divergence(nodes, model.vat.tau)
    assert torch.allclose(out.losses["vat"], now)
    assert out.losses["vat"].item() > 1e-6
    assert torch.isclose(out.stats["tau_norm"], model.vat.tau.norm())


def test_random_experts_differ_and_identity_experts_start_as_copies():
    tokens, mask = torch.randn(2, 5, D), torch.ones(2, 5, dtype=torch.bool)
    torch.manual_seed(0)
    random = VariationalMoE(D, experts=4, init="random").train()(tokens, mask)
    identity = VariationalMoE(D, experts=4, init="identity").train()(tokens, mask)
    assert random.stats["spread"].item() > 0.5  # relative pairwise distance of expert means
    assert identity.stats["spread"].item() < 0.01
    for stats in (random.stats, identity.stats):
        assert stats["load"].shape == (4,)
        assert torch.isclose(stats["load"].sum(), torch.tensor(1.0))
    assert identity.stats["sigma"].item() < 0.1  # log-variance starts at -6


def test_inference_is_deterministic_and_training_samples():
    model = head()
    feats, protos = features(), torch.randn(4, D)
    model.eval()
    assert torch.equal(model(feats, protos).scores, model(feats, protos).scores)
    model.train()
    assert not torch.equal(model(feats, protos).scores, model(feats, protos).scores)


def test_padding_does_not_change_outputs():
    model = head()
    model.eval()
    feats, protos = features(), torch.randn(4, D)
    longer = Features(
        text=torch.cat([feats.text, torch.randn(6, 4, D) * 100], 1),
        text_mask=torch.cat([feats.text_mask, torch.zeros(6, 4, dtype=torch.bool)], 1),
        entity=feats.entity, has_image=feats.has_image, image=feats.image,
        image_mask=feats.image_mask,
    )
    feats.text[0, 3:] = 1e3  # garbage at the padded positions of sample 0
    assert torch.allclose(model(feats, protos).scores, model(longer, protos).scores, atol=1e-5)


def test_imageless_samples_ignore_image_content_and_skip_the_contrastive_loss():
    model = head()
    model.train()
    feats = features()
    torch.manual_seed(3)
    a = model(feats, torch.randn(4, D))
    feats.image[-1] = 1e3  # the last sample has no image: its pixels must not matter
    torch.manual_seed(3)
    b = model(feats, torch.randn(4, D))
    assert torch.allclose(a.losses["cl"], b.losses["cl"])
    assert torch.allclose(a.scores, b.scores)
    text_only = model(features(with_image=False), torch.randn(4, D))
    assert "cl" not in text_only.losses and "vat" in text_only.losses


def test_paper_attention_ignores_the_entity_and_query_attention_does_not():
    torch.manual_seed(0)
    tokens, mask = torch.randn(2, 5, D), torch.ones(2, 5, dtype=torch.bool)
    e1, e2 = torch.randn(2, 3 * D), torch.randn(2, 3 * D)
    for form, same in (("paper", True), ("query", False)):
        attention = EntityAwareAttention(D, 3 * D, form)
        torch.nn.init.normal_(attention.score.weight)
        _, a1 = attention(tokens, e1, mask)
        _, a2 = attention(tokens, e2, mask)
        assert torch.allclose(a1, a2) is same, form


def test_forced_expert_routes_every_token_to_it_at_inference():
    layer = VariationalMoE(D, experts=3)
    layer.eval()
    layer.force_expert = 2
    out = layer(torch.randn(2, 4, D), torch.ones(2, 4, dtype=torch.bool))
    assert torch.equal(out.gates, torch.tensor([0.0, 0.0, 1.0]).expand(2, 4, 3))


def test_a_tiny_mgvmoe_overfits_a_handful_of_samples():
    model = head(vmoe_init="random", init="random", score="dot", beta=0.1)
    feats, protos = features(b=8, seed=5), torch.randn(4, D)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        out = model(feats, protos)
        loss, _ = model.loss(out, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert torch.equal(model(feats, protos).scores.argmax(-1), labels)
