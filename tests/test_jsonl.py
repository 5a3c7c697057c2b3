import json

import pytest

from zsmie.data.jsonl import read_jsonl, tokens_from_text
from zsmie.data.sample import DataError, Span


def write(tmp_path, *records):
    path = tmp_path / "data.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_token_and_character_spans(tmp_path):
    path = write(
        tmp_path,
        {"tokens": ["Obama", "was", "born", "in", "Hawaii"], "head": [0, 1], "tail": [4, 5],
         "label": "place_of_birth", "image": "img/1.jpg"},
        {"id": "p2", "text": "Obama was born in Hawaii.", "head": [0, 5], "tail": [18, 24]},
        {"text": "Obama visited Kenya", "head": [14, 19]},
    )
    a, b, c = read_jsonl(path)
    assert a.id == "data.jsonl:1" and a.image == str(tmp_path / "img/1.jpg")
    assert b.tokens == ("Obama", "was", "born", "in", "Hawaii", ".") and b.label is None
    assert (b.head, b.tail) == (Span(0, 1), Span(4, 5)) and b.id == "p2"
    assert c.task == "met" and c.entity_text(c.head) == "Kenya"


def test_character_spans_cut_inside_a_word():
    tokens, spans = tokens_from_text("#Obama's speech", [(1, 6)])
    assert tokens == ["#", "Obama", "'s", "speech"] and spans == [Span(1, 2)]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('{"tokens": ["a"], "head": [0, 1]', r"data.jsonl:2: not valid JSON"),
        ({"tokens": ["a", "b"], "head": [0, 3]},
         r"data.jsonl:2: field 'head' span \[0, 3\) is outside the 2 tokens"),
        ({"tokens": ["a", "b"]}, r"data.jsonl:2: missing field 'head'"),
        ({"text": "ab cd", "head": [3, 9]}, r"data.jsonl:2: field 'head' character span \[3, 9\)"),
        ({"tokens": ["a"], "head": [0, 1], "labl": "x"}, r"data.jsonl:2: unknown field\(s\) \['labl'\]"),
        ({"tokens": ["a"], "head": [0, 1], "label": ""}, r"data.jsonl:2: field 'label'"),
        ({"tokens": ["a"], "text": "a", "head": [0, 1]}, r"exactly one of 'tokens' or 'text'"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, record, message):
    good = {"tokens": ["a", "b"], "head": [0, 1], "tail": [1, 2], "label": "x"}
    with pytest.raises(DataError, match=message):
        read_jsonl(write(tmp_path, good, record))


def test_bytes_that_are_not_text_name_their_line(tmp_path):
    good = json.dumps({"tokens": ["a", "b"], "head": [0, 1], "tail": [1, 2]}).encode()
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + good.replace(b'"a"', b'"\xe9"') + b"\n")
    with pytest.raises(DataError, match=r"data.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 14\)"):
        read_jsonl(path)
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + good.replace(b'"a"', b'"\\ud800"') + b"\n")
    with pytest.raises(DataError, match=r"data.jsonl:2: field 'tokens' holds invalid Unicode"):
        read_jsonl(path)
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n")  # a byte-order mark is fine
    assert read_jsonl(path)[0].tokens == ("a", "b")


def test_entities_and_texts_must_hold_text(tmp_path):
    with pytest.raises(DataError, match=r"data.jsonl:1: field 'tail' span \[1, 2\) holds no text"):
        read_jsonl(write(tmp_path, {"tokens": ["a", " "], "head": [0, 1], "tail": [1, 2]}))
    with pytest.raises(DataError, match=r"data.jsonl:1: empty text"):
        read_jsonl(write(tmp_path, {"tokens": [" ", "\t"], "head": [0, 1]}))


def test_entities_given_as_strings_are_found_in_the_text_or_tokens(tmp_path):
    post = "Paris Hilton flew to Paris"
    path = write(
        tmp_path,
        {"text": "Violinist Clara Weiss was born in Vienna", "head": "Clara Weiss", "tail": "Vienna"},
        {"text": post, "head": "Paris Hilton", "tail": {"text": "Paris", "occurrence": 2}},
        {"text": post, "head": {"text": "Paris", "occurrence": 1}, "tail": "paris hilton"},
        {"tokens": post.split(), "head": "Paris Hilton", "tail": {"text": "Paris", "occurrence": 2}},
        {"tokens": ["OBAMA", "visited", "Kenya"], "head": "Obama"},  # no exact match: any case
        {"text": "Obama was born in Hawaii", "head": [0, 5], "tail": "Hawaii"},  # mixed forms
    )
    weiss, second, nested, tokens, typed, mixed = read_jsonl(path)
    assert (weiss.entity_text(weiss.head), weiss.entity_text(weiss.tail)) == ("Clara Weiss", "Vienna")
    assert second.tokens == tuple(post.split()) and (second.head, second.tail) == (Span(0, 2), Span(4, 5))
    assert (nested.head, nested.tail) == (Span(0, 1), Span(0, 2))
    assert (tokens.head, tokens.tail) == (Span(0, 2), Span(4, 5))
    assert typed.task == "met" and typed.head == Span(0, 1)
    assert (mixed.head, mixed.tail) == (Span(0, 1), Span(4, 5))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"text": "Paris Hilton flew to Paris", "head": "Paris Hilton", "tail": "Paris"},
         r"data.jsonl:1: field 'tail' 'Paris' occurs 2 times in the text; say which: "
         r'\{"text": "Paris", "occurrence": N\} \(N from 1 to 2\), or give a \[start, end\] span'),
        ({"text": "Clara Weiss was born in Vienna", "head": "Clara", "tail": "Berlin"},
         r"data.jsonl:1: field 'tail' 'Berlin' is not in the text"),
        ({"tokens": ["Clara", "Weiss"], "head": "Clara W"}, r"field 'head' 'Clara W' is not in the tokens"),
        ({"text": "a b a", "head": {"text": "a", "occurrence": 3}},
         r"field 'head' occurrence 3 of 'a': it occurs 2 time\(s\) in the text"),
        ({"text": "a b", "head": {"text": "a", "occurrence": 0}}, r"field 'head' occurrence should be"),
        ({"text": "a b", "head": {"text": "a", "nth": 1}}, r"field 'head' as an object takes 'text'"),
        ({"text": "a b", "head": " "}, r"field 'head' should be \[start, end\] integers, the entity"),
        ({"text": "a b", "head": 3}, r"field 'head' should be \[start, end\] integers, the entity"),
    ],
)
def test_entity_strings_absent_or_ambiguous_name_line_and_field(tmp_path, record, message):
    with pytest.raises(DataError, match=message):
        read_jsonl(write(tmp_path, record))
