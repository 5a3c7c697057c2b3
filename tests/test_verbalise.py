"""Label verbalisation: typed MNRE paths -> sentences, checked against hand-written strings."""

import pytest

from zsmie.assemble import label_text_map
from zsmie.config import ConfigError, load_config
from zsmie.data.labels import label_texts
from zsmie.data.mnre import ABBREVIATIONS
from zsmie.data.verbalise import verbalise

# Written by hand, one per grammatical frame of the verbaliser.
EXPECTED = {
    "/per/org/member_of": "the head, a person, is a member of the tail, an organization",
    "/per/org/founder_of": "the head, a person, is a founder of the tail, an organization",
    "/org/loc/locate_at": "the head, an organization, is located at the tail, a location",
    "/misc/loc/held_on": "the head, a thing, is held on the tail, a location",
    "/per/misc/present_in": "the head, a person, is present in the tail, a thing",
    "/loc/loc/contain": "the head, a location, contains the tail, a location",
    "/per/misc/awarded": "the head, a person, is awarded the tail, a thing",
    "/per/loc/place_of_birth": "the place of birth of the head, a person, is the tail, a location",
    "/per/misc/nationality": "the nationality of the head, a person, is the tail, a thing",
    "/per/per/charges": "the head, a person, charges the tail, a person",
    "/per/per/siblings": "the siblings of the head, a person, are the tail, a person",
    "/org/org/alternate_names":
        "the alternate names of the head, an organization, are the tail, an organization",
    "/misc/misc/part_of": "the head, a thing, is a part of the tail, a thing",
}


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_typed_mnre_paths_verbalise_to_hand_written_sentences(label):
    assert verbalise(label, "mre", ABBREVIATIONS) == EXPECTED[label]


def test_untyped_and_entity_type_labels():
    assert verbalise("place_of_birth") == "the place of birth of the head is the tail"
    assert verbalise("works_for") == "the head works for the tail"
    assert verbalise("Location", "met") == "Location"  # WikiDiverse types: plain names
    assert verbalise("/person/employer") == "the employer of the head, a person, is the tail"


def test_all_22_mnre_relations_get_distinct_texts():
    from zsmie.data.labels import read_descriptions

    labels = sorted(read_descriptions("mnre"))
    texts = label_texts(labels, "verbalised", ABBREVIATIONS)
    assert len(labels) == 22 and len(set(texts)) == 22
    assert all(t.startswith("the ") and "head" in t and "tail" in t for t in texts)


def test_config_mode_and_description_fallback(caplog):
    config = load_config(None, ["label_text=verbalised"])
    texts = label_text_map(config, ["/per/org/member_of"])
    assert texts == {"/per/org/member_of": EXPECTED["/per/org/member_of"]}
    described = load_config(None, ["label_text=description", "label_descriptions=mnre"])
    texts = label_text_map(described, ["/per/loc/place_of_birth", "/per/org/founder_of"])
    assert texts == {"/per/loc/place_of_birth": "the person was born in the place",
                     "/per/org/founder_of": EXPECTED["/per/org/founder_of"]}
    assert "1 label(s) without a description get their verbalised text" in caplog.text
    with pytest.raises(ConfigError, match="label_text = 'verbalized': expected one of"):
        load_config(None, ["label_text=verbalized"])
