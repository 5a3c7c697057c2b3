import time

import pytest
import torch

from zsmie.data.sample import Sample, Span
from zsmie.encoders.packaged import EncoderError
from zsmie.encoders.text import gather_entity_vector, insert_markers, masked_mean


def test_markers_wrap_head_and_tail():
    tokens = ("Obama", "was", "born", "in", "Hawaii")
    assert insert_markers(tokens, Span(0, 1), Span(4, 5)) == [
        "[E1]", "Obama", "[/E1]", "was", "born", "in", "[E2]", "Hawaii", "[/E2]"
    ]
    # MET: one entity
    assert insert_markers(tokens, Span(4, 5), None) == [
        "Obama", "was", "born", "in", "[E1]", "Hawaii", "[/E1]"
    ]


def test_markers_of_adjacent_and_nested_spans():
    tokens = ("a", "b", "c", "d")
    # adjacent: the head closes before the tail opens
    assert insert_markers(tokens, Span(0, 2), Span(2, 4)) == [
        "[E1]", "a", "b", "[/E1]", "[E2]", "c", "d", "[/E2]"
    ]
    # nested: the outer span opens first and closes last
    assert insert_markers(tokens, Span(0, 4), Span(1, 2)) == [
        "[E1]", "a", "[E2]", "b", "[/E2]", "c", "d", "[/E1]"
    ]


def test_marker_positions_after_tokenization(minilm):
    sample = Sample("s", ("RT", "Bill", "Cosby", "visits", "Hollywood"), Span(1, 3), Span(4, 5),
                    "x")
    encoded = minilm.encode_sample(sample)
    tokens = minilm.tokenizer.convert_ids_to_tokens(list(encoded.input_ids))
    assert tokens == ["[CLS]", "rt", "[E1]", "bill", "co", "##sby", "[/E1]", "visits", "[E2]",
                      "hollywood", "[/E2]", "[SEP]"]
    assert encoded.markers == (2, 8)
    # each marker is one token, not split into word pieces
    assert all(minilm.tokenizer.convert_ids_to_tokens(i).startswith("[") for i in minilm.marker_ids)


def test_long_sentences_are_cropped_around_the_entities(minilm):
    tokens = tuple(f"w{i}" for i in range(300)) + ("Paris",) + tuple("x" for _ in range(50))
    sample = Sample("s", tokens, Span(290, 291), Span(300, 301), "x")
    encoded = minilm.encode_sample(sample)
    assert len(encoded.input_ids) == minilm.max_length
    ids = list(encoded.input_ids)
    assert ids[encoded.markers[0]] == minilm.marker_ids[0]
    assert ids[encoded.markers[1]] == minilm.marker_ids[2]
    assert ids[0] == minilm.tokenizer.cls_token_id and ids[-1] == minilm.tokenizer.sep_token_id


def test_entity_vector_is_cls_and_marker_states():
    states = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    vector = gather_entity_vector(states, torch.tensor([[1, 3], [2, 2]]))
    assert vector.shape == (2, 9)
    assert vector[0].tolist() == states[0, 0].tolist() + states[0, 1].tolist() + states[0, 3].tolist()
    assert vector[1].tolist() == states[1, 0].tolist() + states[1, 2].tolist() * 2


def test_masked_mean_ignores_padding():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(states, mask).tolist() == [[2.0, 3.0]]


def test_label_prototype_does_not_depend_on_padding(minilm):
    alone = minilm.embed_texts(["peer"])
    padded = minilm.embed_texts(["peer", "a much longer label text that forces padding"])
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_frozen_encoder_has_no_trainable_weights_and_no_dropout(minilm):
    minilm.train()
    assert not any(p.requires_grad for p in minilm.parameters())
    assert not minilm.model.training


def test_an_unreachable_hub_fails_in_seconds_with_one_message(monkeypatch, caplog):
    from huggingface_hub import constants

    from zsmie.encoders import packaged
    from zsmie.encoders.text import TextEncoder

    # a hub that never answers (a name that does not resolve), with offline mode off as on a user's machine
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored afterwards (the probe sets it)
    monkeypatch.setattr(packaged, "_offline_since_probe", None)
    start = time.monotonic()
    with pytest.raises(EncoderError) as caught:
        TextEncoder("zsmie-tests/no-such-model")
    assert time.monotonic() - start < 20
    message = str(caught.value)
    assert message.startswith("cannot load encoder 'zsmie-tests/no-such-model': the model hub "
                              "https://hub.invalid did not answer within 3 s")
    assert "\n" not in message and constants.HF_HUB_OFFLINE is True
    # a local folder is never probed
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(packaged, "_hub_answers", lambda *_: pytest.fail("probed a local folder"))
    packaged.check_hub(".")


def test_marker_strings_in_the_user_text_are_not_read_as_markers(minilm):
    tokens = ("Ann[E1]", "[/E1]", "met", "[E2]", "Bob", "in", "x[/E2]y")
    sample = Sample("m", tokens, Span(0, 1), Span(4, 5), "x")
    encoded = minilm.encode_sample(sample)
    ids = list(encoded.input_ids)
    assert [ids.count(m) for m in minilm.marker_ids] == [1, 1, 1, 1]  # only the inserted ones
    words = minilm.tokenizer.convert_ids_to_tokens(ids)
    assert words[encoded.markers[0] + 1] == "ann" and words[encoded.markers[1] + 1] == "bob"
    assert insert_markers(tokens, Span(0, 1), None)[:3] == ["[E1]", "Ann[ E1 ]", "[/E1]"]
