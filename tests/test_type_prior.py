"""The type-aware score (zsmie.data.types, zsmie.models.typing, zsmie.training.type_prior):
typed labels, the prior's values against hand-computed numbers, the wrapper's scores, the
validation search, and a real MNRE run that chooses and applies it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from zsmie.data.sample import DataError, Sample, Span
from zsmie.data.types import LabelTexts, parse_label, parse_labels, types_from_name
from zsmie.models.base import HeadOutput
from zsmie.models.templates import TEMPLATE_PAIR_TOKENS, Templated
from zsmie.models.typing import MentionTyper, TypedPrototypes, TypePriored, type_term
from zsmie.training.type_prior import TEMPLATE_MULTIPLIERS, argument_types, search

KEYS = ["per", "org", "loc", "misc"]


def test_types_from_typed_paths_and_prefixes():
    assert types_from_name("/per/loc/place_of_birth") == ("per", "loc")
    assert types_from_name("/org/org/alternate_names") == ("org", "org")
    assert types_from_name("/Person/Location/born_in") == ("per", "loc")  # aliases, any case
    assert types_from_name("per:spouse") == ("per", None)  # TACRED style: the head only
    assert types_from_name("place_of_birth") == (None, None)
    assert types_from_name("/foo/bar/baz") == (None, None)  # not types of the vocabulary


def test_explicit_types_win_and_bad_ones_name_the_field():
    label = parse_label({"name": "spouse", "head_type": "person", "tail_type": "per"})
    assert (label.name, label.types) == ("spouse", ("per", "per"))
    assert parse_label({"name": "/per/loc/x", "tail_type": "org"}).types == ("per", "org")
    with pytest.raises(DataError, match=r"labels\[1\].tail_type: unknown type 'planet'"):
        parse_labels(["a", {"name": "b", "tail_type": "planet"}])
    with pytest.raises(DataError, match=r"labels\[0\]: unknown field\(s\) \['kind'\]"):
        parse_labels([{"name": "b", "kind": "x"}])
    with pytest.raises(DataError, match=r"labels\[0\]: field 'name' must be a non-empty"):
        parse_labels([{"head_type": "per"}])


def test_type_term_matches_hand_computed_values():
    head = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]]))
    tail = torch.log(torch.tensor([[0.1, 0.1, 0.6, 0.2], [0.4, 0.3, 0.2, 0.1]]))
    types = (("per", "loc"), (None, "misc"), ("org", None), (None, None))
    term = type_term(head, tail, types, KEYS)
    expected = torch.tensor([
        [math.log(0.7) + math.log(0.6), math.log(0.2), math.log(0.1), 0.0],
        [math.log(0.25) + math.log(0.2), math.log(0.1), math.log(0.25), 0.0],
    ])
    torch.testing.assert_close(term, expected)
    # MET (no tail entity): only the head side counts
    torch.testing.assert_close(type_term(head, None, types, KEYS)[:, 0], head[:, 0])


def test_typed_prototypes_index_both_sides():
    p = TypedPrototypes(torch.arange(6.0).view(3, 2), (("per", "loc"), ("org", None), (None, None)))
    picked = p[torch.tensor([True, False, True])]
    assert picked.types == (("per", "loc"), (None, None))
    assert picked.inner.tolist() == [[0.0, 1.0], [4.0, 5.0]]
    assert p[[1]].types == (("org", None),)


class _Inner(nn.Module):
    text = uses_images = vision = None

    def prototypes(self, texts):
        return torch.zeros(len(texts), 1)

    def forward(self, batch, prototypes):
        return HeadOutput(torch.ones(len(batch.entities), prototypes.size(0)), torch.zeros(1))


class _FixedTyper(nn.Module):
    """log P(type | mention) from a table, as MentionTyper's faces."""

    keys = KEYS

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, strings):
        return torch.log(torch.tensor([self.table[s] for s in strings]))


class _Batch:
    def __init__(self, entities):
        self.entities = entities


def test_wrapper_adds_the_weighted_term_and_leaves_untyped_labels_alone():
    typer = _FixedTyper({"Ann": [0.8, 0.1, 0.05, 0.05], "Oslo": [0.1, 0.1, 0.7, 0.1]})
    model = TypePriored(_Inner(), typer, weight=2.0)
    texts = LabelTexts(["born in", "works for", "free text"],
                       [("per", "loc"), ("per", "org"), (None, None)])
    scores = model(_Batch((("Ann", "Oslo"),)), model.prototypes(texts)).scores
    expected = [1 + 2 * (math.log(0.8) + math.log(0.7)), 1 + 2 * (math.log(0.8) + math.log(0.1)), 1.0]
    torch.testing.assert_close(scores, torch.tensor([expected]))
    plain = model(_Batch((("Ann", "Oslo"),)), model.prototypes(["born in", "works for"])).scores
    assert plain.tolist() == [[1.0, 1.0]]  # plain texts carry no types: the model's scores
    off = TypePriored(_Inner(), typer, weight=0.0)
    assert off(_Batch((("Ann", "Oslo"),)), off.prototypes(texts)).scores.tolist() == [[1.0] * 3]


def test_typer_logits_give_unseen_types_the_mean():
    typer = MentionTyper(None, dict.fromkeys(KEYS, "x"), "typer", 1.0,
                         {"classes": ["loc", "per"], "coef": [[1.0, 0.0], [0.0, 1.0]],
                          "intercept": [0.0, 0.5]})
    logits = typer._typer_logits(torch.tensor([[2.0, 1.0]]))
    # per = 1.5, loc = 2.0; org and misc (never seen) = their mean 1.75
    torch.testing.assert_close(logits, torch.tensor([[1.5, 1.75, 2.0, 1.75]]))


class _TableEncoder:
    """embed_texts from a fixed table of 2-d vectors."""

    def __init__(self, table):
        self.table = table

    def embed_texts(self, texts):
        return torch.tensor([self.table[t] for t in texts])


def _sample(i, head, tail, label):
    tokens = (head, "and", tail)
    return Sample(f"s{i}", tokens, Span(0, 1), Span(2, 3), label)


def test_argument_types_read_the_label_paths():
    samples = [_sample(0, "Ann", "Oslo", "/per/loc/place_of_birth"), _sample(1, "A", "B", "spouse")]
    assert argument_types(samples) == (["Ann", "Oslo"], ["per", "loc"])


def test_search_chooses_a_weight_that_fixes_type_errors_and_zero_when_none_helps():
    # Two labels, per->loc and per->per; the model prefers the wrong one on half the samples,
    # where the tail is a place. Type phrases: "a person" ~ [1, 0], "a location" ~ [0, 1].
    vocab = {"per": "a person", "org": "an organization", "loc": "a location", "misc": "a thing"}
    table = {"a person": [1.0, 0.0], "an organization": [0.7, 0.7], "a location": [0.0, 1.0],
             "a thing": [-0.7, 0.7], "Ann": [1.0, 0.05], "Bob": [0.98, 0.1], "Oslo": [0.05, 1.0]}
    encoder = _TableEncoder(table)
    labels = ["/per/loc/place_of_birth", "/per/per/peer"]
    samples = [_sample(0, "Ann", "Oslo", labels[0]), _sample(1, "Ann", "Oslo", labels[0]),
               _sample(2, "Ann", "Bob", labels[1]), _sample(3, "Ann", "Bob", labels[1])]
    gold = torch.tensor([0, 0, 1, 1])
    wrong = torch.tensor([[0.1, 0.3], [0.2, 0.1], [0.0, 0.4], [0.1, 0.5]])  # sample 0 wrong
    record = search(wrong, gold, labels, samples, encoder, vocab, None)
    assert record["grid"]["lambda=0"] < 1.0 and record["val_f1"] == 1.0
    assert record["weight"] > 0 and record["source"] == "phrases"
    right = torch.tensor([[0.3, 0.1], [0.2, 0.1], [0.0, 0.4], [0.1, 0.5]])
    assert search(right, gold, labels, samples, encoder, vocab, None)["weight"] == 0.0


def test_mnre_training_free_run_chooses_and_applies_the_prior(mnre_dir, tmp_path):
    """A capped real-MNRE training-free run with train.type_search: the run keeps its choice,
    validation F1 does not drop, and prediction from the folder applies it."""
    from zsmie.config import load_config
    from zsmie.inference.extractor import ZeroShotExtractor
    from zsmie.training.trainer import train

    config = load_config(None, ["model.name=similarity", "data.max_per_label=12",
                                "images=blank", "train.type_search=true",
                                "train.progress=false", "feature_cache=off", "seed=1"])
    config.data.dir = str(mnre_dir)
    results = train(config, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "type_prior.json").read_text())
    assert record["val_f1"] >= record["grid"]["lambda=0"]
    assert results["type_prior"]["source"] == record["source"]
    assert results["val"]["f1"] == pytest.approx(record["val_f1"], abs=1e-6)
    extractor = ZeroShotExtractor.from_pretrained(tmp_path / "run")
    sample = {"tokens": ["Ann", "Lee", "was", "born", "in", "Oslo"], "head": [0, 2], "tail": [5, 6]}
    labels = ["/per/loc/place_of_birth", "/per/per/couple"]
    [typed] = extractor.predict([sample], labels, top_k=2)
    # the same label texts ("place of birth", "couple") without types: no prior
    [untyped] = extractor.predict([sample], ["place_of_birth", "couple"], top_k=2)
    assert record["weight"] > 0 and isinstance(extractor.model, TypePriored)
    assert typed.prediction == "/per/loc/place_of_birth"
    typed_gap = dict(typed.ranked)["/per/loc/place_of_birth"] - dict(typed.ranked)["/per/per/couple"]
    plain = dict(untyped.ranked)
    assert typed_gap > plain["place_of_birth"] - plain["couple"] + 0.01  # the tail is no person
    # chosen again after the fact (`zsmie type-prior`): the same choice on the same validation
    # data, the figures without it kept beside
    from cli_helpers import invoke

    result = invoke("type-prior", "--run", str(tmp_path / "run"), "--data-dir", str(mnre_dir))
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "run" / "type_prior.json").read_text())
    assert (again["source"], again["temperature"]) == (record["source"], record["temperature"])
    assert again["weight"] == pytest.approx(record["weight"], rel=1e-4)
    kept = json.loads((tmp_path / "run" / "results.json").read_text())
    assert kept["without_type_prior"]["val"]["f1"] == pytest.approx(record["grid"]["lambda=0"], abs=1e-6)
    assert kept["val"]["f1"] == pytest.approx(record["val_f1"], abs=1e-6)
    # with the entity-filled templates weighed too: weight 0 is a candidate (validation F1
    # cannot drop), and the run's evaluation with the stored weights gives the search's figure
    result = invoke("type-prior", "--run", str(tmp_path / "run"), "--data-dir", str(mnre_dir),
                    "--templates", "mnre")
    assert result.exit_code == 0, result.output
    both = json.loads((tmp_path / "run" / "type_prior.json").read_text())
    assert both["templates"]["source"] == "mnre" and len(both["templates"]["map"]) == 22
    assert both["templates"]["multiple"] in TEMPLATE_MULTIPLIERS
    assert both["val_f1"] >= again["val_f1"] - 1e-9
    kept = json.loads((tmp_path / "run" / "results.json").read_text())
    assert kept["val"]["f1"] == pytest.approx(both["val_f1"], abs=1e-6)
    assert "map" not in kept["type_prior"]["templates"]  # the map stays in type_prior.json
    extractor = ZeroShotExtractor.from_pretrained(tmp_path / "run")
    templated = both["templates"]["weight"] > 0
    assert isinstance(extractor.model.inner, Templated) == templated
    # a request's work counts a filled template per (sample, label) pair
    assert extractor.work([10], [3, 4]) == 17 + (2 * TEMPLATE_PAIR_TOKENS if templated else 0)


def test_a_typer_fitted_on_two_types_gives_sklearns_probabilities():
    """Binary logistic regression keeps one row; the stored two-row form is the same model."""
    from sklearn.linear_model import LogisticRegression

    from zsmie.training.type_prior import fit_typer

    table = {"Ann": [1.0, 0.1], "Bo": [0.9, -0.2], "Oslo": [-0.8, 0.3], "Rome": [-1.0, -0.1]}
    samples = [_sample(0, "Ann", "Oslo", "/per/loc/place_of_birth"),
               _sample(1, "Bo", "Rome", "/per/loc/place_of_residence")]
    probe = MentionTyper(_TableEncoder(table), dict.fromkeys(KEYS, "x"))
    record = fit_typer(probe, samples, seed=0)
    assert record["classes"] == ["loc", "per"] and len(record["coef"]) == 2
    typer = MentionTyper(None, dict.fromkeys(KEYS, "x"), "typer", 1.0, record)
    embedded = probe.embed(list(table))
    got = torch.softmax(typer._typer_logits(embedded)[:, [2, 0]], -1)  # loc, per
    reference = LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0).fit(
        embedded.numpy(), ["per", "per", "loc", "loc"])
    torch.testing.assert_close(got, torch.tensor(reference.predict_proba(embedded.numpy()),
                                                 dtype=torch.float32), atol=1e-5, rtol=1e-4)
