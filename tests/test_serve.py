"""`zsmie serve`: the JSON API answers as `zsmie predict` does, micro-batches concurrent
requests, and turns bad input into a 4xx naming the problem, staying up."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from cli_helpers import invoke
from fastapi.testclient import TestClient

from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.serving.app import Limits, create_app
from zsmie.serving.batcher import MicroBatcher

BIRTH = {"id": "birth", "text": "Violinist Clara Weiss was born in Vienna in 1990",
         "head": [10, 21], "tail": [34, 40]}
OWNED = {"id": "owned", "tokens": ["Northwind", "Air", "is", "now", "owned", "by", "Global",
                                   "Aviation", "Group"], "head": [0, 2], "tail": [6, 9]}
LABELS = ["place_of_birth", "subsidiary", "spouse", "employer"]
LIMITS = Limits(max_body_bytes=4000, max_samples=4, max_labels=6, max_work=600)


@pytest.fixture(scope="module")
def extractor(trained_demo) -> ZeroShotExtractor:
    return ZeroShotExtractor.from_pretrained(trained_demo)


@pytest.fixture(scope="module")
def client(extractor):
    # a long wait, so that requests sent together surely share a model call
    app = create_app(extractor, LIMITS, MicroBatcher(extractor, max_samples=64, max_wait=0.25))
    with TestClient(app) as client:
        yield client


def close(a: list[dict], b: list[dict]) -> bool:
    labels = [[r["label"] for r in x["ranked"]] + [x["id"], x["prediction"]] for x in a]
    return labels == [[r["label"] for r in x["ranked"]] + [x["id"], x["prediction"]] for x in b] and [
        r["score"] for x in a for r in x["ranked"]] == pytest.approx(
        [r["score"] for x in b for r in x["ranked"]], abs=1.01e-4)


def test_health_and_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["task"] == "mre" and health["model"] == "proto"
    assert health["limits"] == {"max_body_bytes": 4000, "max_samples": 4, "max_image_bytes": 524288,
                                "max_labels": 6, "max_work": 600, "body_timeout": 30.0}
    assert health["images"] is False  # a text-only run
    assert health["type_prior"] is False and health["label_templates"] is False  # the demo run
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="labels"' in page.text and 'fetch("predict"' in page.text


def test_predict_answers_as_the_predict_command(client, extractor):
    response = client.post("/predict", json={"samples": [BIRTH, OWNED], "labels": LABELS, "top_k": 2})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = [p.as_dict() for p in extractor.predict([BIRTH, OWNED], LABELS, top_k=2)]
    assert close(predictions, expected)
    assert [p["prediction"] for p in predictions] == ["place_of_birth", "subsidiary"]
    described = client.post("/predict", json={
        "samples": [BIRTH], "labels": ["place_of_birth", "subsidiary"],
        "descriptions": {"place_of_birth": "the person was born in the place",
                         "subsidiary": "the company is owned by the other company"}}).json()
    assert described["predictions"][0]["ranked"][0]["score"] != pytest.approx(
        predictions[0]["ranked"][0]["score"])


def test_concurrent_requests_share_model_calls_and_keep_their_own_labels(client, extractor):
    batcher = client.app.state.batcher
    calls, answered = batcher.calls, batcher.requests
    bodies = [{"samples": [BIRTH, OWNED][: 1 + i % 2], "labels": LABELS[i % 3:], "top_k": 3}
              for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda body: client.post("/predict", json=body), bodies))
    assert [r.status_code for r in responses] == [200] * 8
    assert batcher.requests - answered == 8 and batcher.calls - calls < 8  # micro-batched
    for body, response in zip(bodies, responses, strict=True):
        alone = extractor.predict(body["samples"], body["labels"], top_k=3)
        assert close(response.json()["predictions"], [p.as_dict() for p in alone])


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"samples": [BIRTH] * 5, "labels": LABELS}, 413, "samples: 5 given, at most 4 per request"),
        ({"samples": [BIRTH], "labels": [f"l{i}" for i in range(7)]}, 413,
         "labels: 7 given, at most 6 per request"),
        ({"samples": [{**BIRTH, "text": "x" * 5000}], "labels": LABELS}, 413, "body: "),
        ("{oops", 422, "body: not valid JSON"),
        ([BIRTH], 422, "body: Input should be a valid dictionary"),
        ({"labels": LABELS}, 422, "samples: Field required"),
        ({"samples": [BIRTH]}, 422, "labels: Field required"),
        ({"samples": [], "labels": LABELS}, 422, "samples: List should have at least 1 item"),
        ({"samples": [BIRTH], "labels": LABELS, "top_k": "3"}, 422, "top_k: Input should be a valid integer"),
        ({"samples": [BIRTH], "labels": LABELS, "top_k": 0}, 422,
         "top_k: Input should be greater than or equal to 1"),
        ({"samples": [BIRTH], "labels": ["spouse", 3]}, 422,
         "labels[1]: expected a label name or an object with 'name', got int"),
        ({"samples": [BIRTH], "labels": ["spouse", {"name": "x", "tail_type": "planet"}]}, 422,
         "labels[1].tail_type: unknown type 'planet'"),
        ({"samples": [BIRTH], "labels": LABELS, "extra": 1}, 422, "extra: Extra inputs are not permitted"),
        ({"samples": [BIRTH, {**BIRTH, "tail": [34, 99]}], "labels": LABELS}, 422,
         "samples[1]: field 'tail' character span [34, 99) does not cover text"),
        ({"samples": [{"text": "Vienna", "head": [0, 6]}], "labels": LABELS}, 422,
         "samples[0]: a MET sample"),
        ({"samples": [{**BIRTH, "head": "Clara Weiss", "tail": "Berlin"}], "labels": LABELS}, 422,
         "samples[0]: field 'tail' 'Berlin' is not in the text"),
        ({"samples": [BIRTH], "labels": ["spouse", "spouse"]}, 422, "duplicate label(s) ['spouse']"),
        ({"samples": [BIRTH], "labels": LABELS, "descriptions": "mnre"}, 422,
         "descriptions: Input should be a valid dictionary"),
    ],
)
def test_bad_requests_are_4xx_naming_the_problem(client, body, status, detail):
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(detail) or detail in response.json()["detail"]
    # and the service goes on answering
    ok = client.post("/predict", json={"samples": [BIRTH], "labels": LABELS})
    assert ok.status_code == 200 and ok.json()["predictions"][0]["id"] == "birth"


FAR = "Clara " + "w " * 300 + "Vienna"  # entities more tokens apart than text.max_length


@pytest.mark.parametrize("bad, detail", [
    ({"samples": [{"id": "far", "text": FAR, "head": [0, 5], "tail": [len(FAR) - 6, len(FAR)]}],
      "labels": LABELS}, "the entity markers are"),
    ({"samples": [BIRTH], "labels": ["___", "spouse"]}, "label '___': its label text is empty"),
    ({"samples": [BIRTH], "labels": ["spouse", "employer"], "descriptions": {"spouse": ""}},
     "label 'spouse': its label text is empty"),
])
def test_a_bad_request_fails_alone_among_concurrent_good_ones(client, extractor, bad, detail):
    batcher = client.app.state.batcher
    answered, failed = batcher.requests, batcher.failed_calls
    good = {"samples": [BIRTH, OWNED], "labels": LABELS, "top_k": 3}
    bodies = [good] * 4 + [bad] + [good] * 4  # sent together: one model call (max_wait 0.25 s)
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda body: client.post("/predict", json=body), bodies))
    assert [r.status_code for r in responses] == [200] * 4 + [422] + [200] * 4
    assert detail in responses[4].json()["detail"]
    assert batcher.requests - answered == 8
    assert batcher.failed_calls == failed  # refused before batching: no model call failed
    alone = [p.as_dict() for p in extractor.predict([BIRTH, OWNED], LABELS, top_k=3)]
    assert all(close(r.json()["predictions"], alone) for r in responses if r.status_code == 200)


def test_a_chunked_body_over_the_limit_is_refused_unread(client):
    def parts():
        for _ in range(10):
            yield b" " * 1000

    response = client.post("/predict", content=parts(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["detail"].startswith("body: over 4000 bytes")


def test_a_label_without_a_description_falls_back_to_its_verbalised_text(client):
    response = client.post("/predict", json={
        "samples": [BIRTH], "labels": ["spouse", "employer"], "descriptions": {"spouse": "married"}})
    assert response.status_code == 200, response.text
    ranked = response.json()["predictions"][0]["ranked"]
    assert sorted(r["label"] for r in ranked) == ["employer", "spouse"]


def test_typed_label_objects_answer_under_their_names(client, extractor):
    """Labels given as {name, head_type, tail_type} (zsmie.data.types) rank as their names;
    the demo run has no type prior, so the types change no score."""
    typed = client.post("/predict", json={"samples": [BIRTH], "labels": [
        {"name": "place_of_birth", "head_type": "per", "tail_type": "loc"},
        {"name": "subsidiary", "head_type": "org", "tail_type": "org"}]})
    assert typed.status_code == 200, typed.text
    plain = extractor.predict([BIRTH], ["place_of_birth", "subsidiary"])
    assert close(typed.json()["predictions"], [p.as_dict() for p in plain])


@pytest.mark.parametrize("option, value, message", [
    ("--port", "70000", "--port 70000: must be between 1 and 65535"),
    ("--port", "0", "--port 0: must be between 1 and 65535"),
    ("--max-samples", "-1", "--max-samples = -1: must be at least 1"),
    ("--max-labels", "0", "--max-labels = 0: must be at least 1"),
    ("--max-work", "-5", "--max-work = -5: must be at least 1"),
    ("--max-image-bytes", "0", "--max-image-bytes = 0: must be at least 1"),
    ("--body-timeout", "0", "--body-timeout = 0.0: must be at least 1"),
    ("--batch-tokens", "0", "--batch-tokens = 0: must be at least 1"),
    ("--max-connections", "-1", "--max-connections = -1: must be at least 1"),
    ("--header-timeout", "nan", "--header-timeout = nan: must be at least 1"),
    ("--allowed-hosts", ",", "--allowed-hosts ',': give host names, or * for any"),
])
def test_bad_serve_options_are_refused_before_the_model_loads(tmp_path, option, value, message):
    # the run does not exist: an option checked after loading would name the run instead
    result = invoke("serve", "--run", str(tmp_path / "no-run"), option, value)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {message}"


def test_a_client_that_disconnects_mid_body_is_not_an_error_traceback(extractor, caplog):
    app = create_app(extractor, LIMITS, MicroBatcher(extractor))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"),
                                          (b"content-length", b"100")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    incoming = [{"type": "http.request", "body": b'{"samples": [', "more_body": True},
                {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(app(scope, receive, send))  # raised the ClientDisconnect before
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_request_over_the_work_limit_is_413_naming_it(client):
    long = {label: label + " the person was born in the place" * 16 for label in
            ["place_of_birth", "subsidiary", "spouse", "employer", "founder", "member"]}
    response = client.post("/predict", json={"samples": [BIRTH], "labels": list(long),
                                             "descriptions": long})
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert detail.startswith("work: ") and detail.endswith("at most 600 per request (--max-work)")
    tokens = int(detail.split()[1])
    assert tokens > 600
    # the same labels with short descriptions are within the bound
    short = {label: "a relation" + "!" * i for i, label in enumerate(long)}
    assert client.post("/predict", json={"samples": [BIRTH], "labels": list(long),
                                         "descriptions": short}).status_code == 200


def test_post_must_be_json_and_there_is_no_cdn_docs_page(client):
    body = json.dumps({"samples": [BIRTH], "labels": LABELS})
    plain = client.post("/predict", content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert plain.json()["detail"] == "Content-Type: text/plain given, expected application/json"
    assert client.post("/predict", content=body).status_code == 415  # none given
    charset = client.post("/predict", content=body,
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 200
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "zsmie"


def test_a_host_header_other_than_the_allowed_hosts_is_refused(extractor):
    app = create_app(extractor, LIMITS, MicroBatcher(extractor), allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as local:
        assert local.get("/health").status_code == 200
        rebound = local.get("/health", headers={"Host": "evil.example:8000"})
        assert rebound.status_code == 400


def test_one_access_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="zsmie.access"):
        client.post("/predict", json={"samples": [BIRTH, OWNED], "labels": LABELS})
        client.post("/predict", json={"samples": [BIRTH], "labels": LABELS, "top_k": 0})
        client.get("/health")
    lines = [r.getMessage() for r in caplog.records if r.name == "zsmie.access"]
    assert len(lines) == 3
    assert lines[0].startswith("POST /predict 200 samples=2 labels=4 ") and lines[0].endswith(" ms")
    assert lines[1].startswith("POST /predict 422 samples=1 labels=4 ")
    assert lines[2].startswith("GET /health 200 samples=- labels=- ")


def _asgi(app, incoming):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"),
                                          (b"content-length", b"100")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    sent = []

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # a client that sends nothing more

    async def send(message):
        sent.append(message)

    async def main():
        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(main())
    return sent


def test_a_body_not_sent_in_time_is_408(extractor):
    app = create_app(extractor, Limits(body_timeout=1), MicroBatcher(extractor))
    sent = _asgi(app, [{"type": "http.request", "body": b'{"samples": [', "more_body": True}])
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["detail"] == "body: not received within 1 s (--body-timeout)"


def test_light_requests_overtake_a_heavy_one_split_into_pieces(extractor):
    """With a small token budget per model call, a heavy request is scored over many calls and
    a light request sent after it is answered first; both answer as predict does."""
    heavy = extractor.samples([{**BIRTH, "id": f"h{i}"} for i in range(24)])
    light = extractor.samples([OWNED])
    label_set = extractor.label_set(LABELS, top_k=4)
    done = []

    async def main():
        batcher = MicroBatcher(extractor, max_wait=0.0, max_tokens=40)
        await batcher.start()
        try:
            async def one(name, samples, delay):
                await asyncio.sleep(delay)
                result = await batcher.predict(samples, label_set)
                done.append(name)
                return result

            results = await asyncio.gather(one("heavy", heavy, 0), one("light", light, 0.05))
            return results, batcher.calls
        finally:
            await batcher.stop()

    (heavy_out, light_out), calls = asyncio.run(main())
    assert done == ["light", "heavy"] and calls >= 12  # 24 samples of ~16 tokens, 40 a call
    assert close([p.as_dict() for p in heavy_out],
                 [p.as_dict() for p in extractor.rank(heavy, label_set)])
    assert close([p.as_dict() for p in light_out],
                 [p.as_dict() for p in extractor.rank(light, label_set)])


def test_label_prototypes_are_cached_per_label_text_across_label_sets(trained_demo, monkeypatch):
    extractor = ZeroShotExtractor.from_pretrained(trained_demo)
    encoded = []
    original = extractor.model.prototypes
    monkeypatch.setattr(extractor.model, "prototypes", lambda texts: encoded.append(list(texts))
                        or original(texts))
    first = extractor.predict([BIRTH], LABELS, top_k=4)
    assert len(encoded) == 1 and len(encoded[0]) == 4
    again = extractor.predict([BIRTH], ["spouse", "place_of_birth"], top_k=2)  # a new set
    assert len(encoded) == 1  # every text cached
    scores = {r[0]: r[1] for r in first[0].ranked}
    assert dict(again[0].ranked) == pytest.approx({k: scores[k] for k in ("spouse", "place_of_birth")})
    extractor.predict([BIRTH], ["spouse", "founder"], top_k=2)
    assert encoded[1] == ["founder"]  # only the new text is encoded
    extractor.prototype_cache = 3  # least recently used dropped beyond the bound
    extractor.predict([BIRTH], ["member_of"], top_k=1)
    assert len(extractor._prototypes) == 3
    assert [text for text, _, _ in extractor._prototypes][:2] == ["spouse", "founder"]
