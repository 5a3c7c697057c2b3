"""The baselines beside Proto and MG-VMoE: MMProto, ZS-BERT and the matching model, as units
and trained for a couple of epochs on the demo data (3 unseen test relations)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zsmie.config import ConfigError, load_config
from zsmie.encoders.text import entity_token_mask
from zsmie.experiments.runner import load_grid
from zsmie.models.base import Features
from zsmie.models.matching import RelationMatching
from zsmie.models.mmproto import MMProto
from zsmie.models.registry import build_head
from zsmie.models.zsbert import ZSBert
from zsmie.training.trainer import train

D = 8
DEMO = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
OPTIONS = dict(init="identity", score="cosine", scale=5.0, dropout=0.0, margin=1.0)


def features(b=4, seed=0, image=True) -> Features:
    """Rows laid out as [CLS] [E1] w [/E1] ctx [E2] w [/E2] ctx; row 0 is padded at the end."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(b, 9, D, generator=g)
    mask = torch.ones(b, 9, dtype=torch.bool)
    mask[0, 8] = False
    entity_mask = torch.zeros(b, 9, dtype=torch.bool)
    entity_mask[:, 1:4] = entity_mask[:, 5:8] = True
    entity = torch.cat([text[:, 0], text[:, 1], text[:, 5]], -1)  # [CLS] (+) [E1] (+) [E2]
    has = torch.tensor([True] * (b - 1) + [False])
    pixels = torch.randn(b, 3, 6, generator=g) if image else None
    return Features(text, mask, entity, has, pixels,
                    has.unsqueeze(1).expand(-1, 3) if image else None, entity_mask)


def test_entity_token_mask_covers_each_span_and_its_markers():
    e1, c1, e2, c2 = 101, 102, 103, 104
    ids = torch.tensor([[0, 5, e1, 6, 7, c1, 8, e2, 9, c2, 2, 0],
                        [0, e2, 9, c2, 5, e1, 6, c1, 2, 0, 0, 0]])
    expected = torch.tensor([[0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0],
                             [0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(entity_token_mask(ids, (e1, c1, e2, c2)), expected)


def test_mmproto_image_part_is_the_projected_mean_patch_and_zero_without_image():
    torch.manual_seed(0)
    head = MMProto(3 * D, D, 6, D, **OPTIONS)
    feats = features()
    assert torch.count_nonzero(head.pooled_image(feats)) == 0  # zero init: starts as Proto
    torch.nn.init.normal_(head.image_proj.weight)
    torch.nn.init.normal_(head.image_proj.bias)
    pooled = head.pooled_image(feats)
    expected = head.image_proj(feats.image[0].mean(0))
    assert torch.allclose(pooled[0], expected) and torch.equal(pooled[-1], torch.zeros(D))
    prototypes = torch.randn(5, D)
    before = head(feats, prototypes).scores  # [4, 5]
    feats.image[-1] = 1e3  # the last sample has no image: its pixels must not matter
    feats.image[0] += 1.0  # the first one has: its score moves
    after = head(feats, prototypes).scores
    assert torch.equal(after[-1], before[-1]) and not torch.allclose(after[0], before[0])
    text_only = MMProto(3 * D, D, 0, D, **OPTIONS)
    assert torch.equal(text_only.pooled_image(features(image=False)), torch.zeros(4, D))


def test_zsbert_scores_samples_against_fixed_labels_by_cosine():
    torch.manual_seed(0)
    head = ZSBert(D, 2, **OPTIONS)
    assert head.scorer.label_proj is None  # labels stay in the encoder's space
    feats, prototypes = features(), torch.randn(5, D)
    out = head(feats, prototypes)
    cosine = F.normalize(out.embedding, dim=-1) @ F.normalize(prototypes, dim=-1).T
    assert torch.allclose(out.scores, 5.0 * cosine, atol=1e-6)
    # the attribute vector: [E1] (+) [E2] (+) the mean of the real tokens, no [CLS]
    attributes = head.attributes(feats)
    assert torch.allclose(attributes[0, 2 * D :], feats.text[0, :8].mean(0))
    assert torch.equal(attributes[:, :D], feats.entity[:, D : 2 * D])
    loss, terms = head.loss(out, torch.tensor([0, 1, 2, 3]))
    assert set(terms) == {"ce", "rank"} and torch.isclose(loss, terms["ce"] + terms["rank"])


def test_matching_context_leaves_out_the_entity_tokens():
    torch.manual_seed(0)
    head = RelationMatching(D, D, **OPTIONS)
    head.eval()
    feats, prototypes = features(), torch.randn(5, D)
    scores = head(feats, prototypes).scores
    changed = features()
    changed.text[:, [2, 3, 6, 7]] += 100.0  # entity words and closing markers
    assert torch.allclose(head(changed, prototypes).scores, scores, atol=1e-5)
    changed.text[:, 4] += 100.0  # a context token
    assert not torch.allclose(head(changed, prototypes).scores, scores, atol=1e-3)
    with torch.no_grad():
        head.entity_weight.fill_(50.0)  # all entity matching: context no longer matters
    assert torch.allclose(head(changed, prototypes).scores, head(feats, prototypes).scores,
                          atol=1e-4)


def test_matching_refuses_entity_typing():
    config = load_config(None, ['task="met"', 'model.name="matching"'])
    with pytest.raises(ConfigError, match="relation extraction only"):
        build_head(config, D, 0)


@pytest.mark.parametrize("name, extra", [
    ("mmproto", ['vision.model="tiny-random-vit"']),
    ("zsbert", []),
    ("matching", []),
])
def test_baseline_beats_chance_on_unseen_demo_relations(name, extra, tmp_path):
    config = load_config(DEMO, [f'model.name="{name}"', "train.epochs=2", "train.progress=false",
                                *extra])
    results = train(config, tmp_path / name)
    test = results["test"]
    assert len(test["labels"]) == 3 and test["samples"] == 15
    assert test["accuracy"] > 1 / 3
    assert results["best_epoch"] >= 1
    if name == "mmproto":
        assert results["data"]["images"]["with_image"] == 60


def test_shipped_configs_and_experiment_grids_resolve_to_buildable_models():
    repo = Path(__file__).resolve().parents[1]
    configs = sorted((repo / "configs").glob("*.toml"))
    assert {"met_proto.toml", "met_mgvmoe.toml", "mre_zsbert.toml", "mre_matching.toml",
            "mre_mmproto.toml"} <= {c.name for c in configs}
    for path in configs:
        config = load_config(path)
        assert config.task in path.name and config.data.format in ("mnre", "wikidiverse")
        build_head(config, D, 0)
    models = set()
    for path in sorted((repo / "experiments").glob("*.toml")):
        grid = load_grid(path)
        assert grid.results.parent == repo / "benchmarks" / "results"
        for row in grid.rows:
            config = grid.cell_config(row, grid.seeds[0])
            build_head(config, D, 0)
            models.add(config.model.name)
    assert models == {"similarity", "proto", "zsbert", "matching", "mmproto", "mgvmoe"}
