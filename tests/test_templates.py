"""Entity-filled label sentences: templates from the label data or a label's name, filling,
and the score term (zsmie.data.templates, zsmie.models.templates)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zsmie.config import ConfigError, load_config
from zsmie.data.labels import read_descriptions
from zsmie.data.sample import DataError
from zsmie.data.templates import fill, label_templates, read_templates
from zsmie.data.types import LabelTexts
from zsmie.data.verbalise import relation_template
from zsmie.models.base import HeadOutput
from zsmie.models.templates import Templated, template_term


def test_a_label_name_spells_its_template():
    assert relation_template("/per/org/member_of") == "{head} is a member of {tail}"
    assert relation_template("/per/loc/place_of_birth") == "the place of birth of {head} is {tail}"
    assert relation_template("/per/per/charges") == "{head} charges {tail}"
    assert relation_template("/org/loc/locate_at") == "{head} is located at {tail}"
    assert relation_template("per:spouse") == "the spouse of {head} is {tail}"
    assert relation_template("founded_by") == "{head} is founded by {tail}"


def test_packaged_templates_cover_every_mnre_relation_and_name_both_entities():
    templates = read_templates("mnre")
    assert set(templates) == set(read_descriptions("mnre"))  # the 22 MNRE relations
    assert len(templates) == 22
    assert all("{head}" in t and "{tail}" in t for t in templates.values())
    assert templates["/per/loc/place_of_birth"] == "{head} was born in {tail}"


def test_labels_without_a_template_get_the_one_their_name_spells():
    templates = {"/per/loc/place_of_birth": "{head} was born in {tail}"}
    assert label_templates(["/per/loc/place_of_birth", "/per/org/member_of"], templates) == [
        "{head} was born in {tail}", "{head} is a member of {tail}"]
    assert label_templates(["founded_by"]) == ["{head} is founded by {tail}"]


def test_fill_replaces_the_placeholders_and_keeps_braces_in_mentions():
    assert fill("{head} was born in {tail}", "Obama", "Hawaii") == "Obama was born in Hawaii"
    assert fill("{head} and {tail}", "{tail}x", "a {b}") == "{tail}x and a {b}"


def test_a_template_without_both_entities_is_refused_naming_file_and_label(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('"/per/per/couple" = "{head} is married"\n', encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_templates(path)
    assert str(error.value) == (f"{path}: label '/per/per/couple': a template must be text "
                                "holding both {head} and {tail}, got '{head} is married'")
    with pytest.raises(DataError, match="no such file, and not a packaged alias"):
        read_templates(tmp_path / "absent.toml")


def test_template_term_is_the_cosine_of_sentence_and_filled_template(minilm):
    sentences = ["Obama was born in Hawaii .", "Ann and Bob got married last June ."]
    entities = [("Obama", "Hawaii"), ("Ann", "Bob")]
    templates = ["{head} was born in {tail}", "{head} and {tail} are married or dating"]
    term = template_term(minilm, sentences, entities, templates)
    assert term.shape == (2, 2)
    by_hand = F.cosine_similarity(
        minilm.embed_texts(["Ann and Bob got married last June ."]).float(),
        minilm.embed_texts(["Ann and Bob are married or dating"]).float())
    assert term[1, 1].item() == pytest.approx(by_hand.item(), abs=1e-5)
    # each sentence reads best as the template of its own relation
    assert term.argmax(-1).tolist() == [0, 1]


def test_identical_filled_sentences_are_encoded_once(minilm, monkeypatch):
    seen: list[str] = []
    original = minilm.embed_texts

    def counting(texts):
        seen.extend(texts)
        return original(texts)

    monkeypatch.setattr(minilm, "embed_texts", counting)
    term = template_term(minilm, ["A met B .", "A met B again ."], [("A", "B"), ("A", "B")],
                         ["{head} knows {tail}"])
    assert seen.count("A knows B") == 1
    assert torch.isfinite(term).all() and term.shape == (2, 1)
    with pytest.raises(ValueError, match="2 sentences but 1 entity pairs"):
        template_term(minilm, ["x", "y"], [("a", "b")], ["{head} {tail}"])


class _Inner(torch.nn.Module):
    """Scores of 1 for every (sample, label); its label side is one row per label."""

    text = uses_images = vision = None

    def prototypes(self, texts):
        return torch.zeros(len(texts), 1)

    def forward(self, batch, prototypes):
        return HeadOutput(torch.ones(len(batch.index), prototypes.size(0)), torch.zeros(1))


class _Batch:
    def __init__(self, sentences, entities):
        self.index = torch.arange(len(sentences))
        self.sentences, self.entities = sentences, entities


def test_the_wrapper_adds_the_weighted_term_by_label_name(minilm):
    templates = {"/per/loc/place_of_birth": "{head} was born in {tail}"}
    model = Templated(_Inner(), minilm, templates, weight=2.0)
    # names: a mapped label, one whose name spells its template, and a text without a name
    texts = LabelTexts(["born in", "member", "none of these"], names=[
        "/per/loc/place_of_birth", "/per/org/member_of", None])
    batch = _Batch(["Obama was born in Hawaii .", "Paris is big ."],
                   [("Obama", "Hawaii"), ("Paris", None)])
    prototypes = model.prototypes(texts)
    assert prototypes.templates == ("{head} was born in {tail}", "{head} is a member of {tail}", None)
    scores = model(batch, prototypes).scores
    term = template_term(minilm, ["Obama was born in Hawaii ."], [("Obama", "Hawaii")],
                         ["{head} was born in {tail}", "{head} is a member of {tail}"])
    torch.testing.assert_close(scores[0, :2], 1 + 2 * term[0])
    assert scores[0, 2].item() == 1.0  # the none text: no template
    assert scores[1].tolist() == [1.0, 1.0, 1.0]  # no tail entity (MET): no term
    assert prototypes[[0, 2]].templates == ("{head} was born in {tail}", None)
    off = Templated(_Inner(), minilm, templates, weight=0.0)
    assert off(batch, off.prototypes(texts)).scores.tolist() == [[1.0] * 3] * 2


def test_label_texts_carry_names_into_their_columns():
    texts = LabelTexts(["a", "b"], [("per", None), (None, None)], ["/per/x/a", "b"])
    assert texts.columns() == [("a", ("per", None), "/per/x/a"), ("b", (None, None), "b")]
    assert LabelTexts.of(texts.columns()).key() == texts.key()
    assert texts.subset([1]).names == ("b",)
    assert LabelTexts(["a"]).names == (None,)
    with pytest.raises(ValueError, match="2 label texts but 2 type pairs and 1 names"):
        LabelTexts(["a", "b"], None, ["a"])


def test_template_search_needs_the_type_search_and_the_map_needs_the_search():
    with pytest.raises(ConfigError, match="train.template_search = true needs train.type_search"):
        load_config(None, ["train.template_search=true"])
    with pytest.raises(ConfigError, match="label_templates = 'mnre' is only read with"):
        load_config(None, ["label_templates=mnre"])
    config = load_config(None, ["train.type_search=true", "train.template_search=true",
                                "label_templates=mnre"])
    assert config.label_templates == "mnre"
