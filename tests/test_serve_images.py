"""`zsmie serve` with images: a sample's image travels in the request as `image_data` (base64
or a data: URL), is scored as `zsmie predict` scores the same file, and a bad one is a 4xx
naming `samples[i].image_data`, never a 500; a text-only run ignores it."""

from __future__ import annotations

import base64
import io
import os

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.serving.app import Limits, create_app

BIRTH = {"id": "birth", "text": "Violinist Clara Weiss was born in Vienna in 1990",
         "head": [10, 21], "tail": [34, 40]}
LABELS = ["place_of_birth", "subsidiary", "spouse", "employer"]


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, colour)
    for x in range(0, size[0], 4):  # some structure, so that two images differ in more than hue
        image.putpixel((x, x % size[1]), (255 - colour[0], 0, colour[2]))
    image.save(buffer, format="PNG")
    return buffer.getvalue()


RED, BLUE = png((200, 10, 10)), png((10, 10, 200))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def image_client(trained_image_demo):
    extractor = ZeroShotExtractor.from_pretrained(trained_image_demo)
    limits = Limits(max_image_bytes=4000)
    with TestClient(create_app(extractor, limits)) as client:
        yield client, extractor


def scores(response) -> list[list[tuple[str, float]]]:
    assert response.status_code == 200, response.text
    return [[(r["label"], r["score"]) for r in p["ranked"]] for p in response.json()["predictions"]]


def test_a_posted_image_is_scored_as_predict_scores_the_same_file(image_client, tmp_path):
    client, extractor = image_client
    assert client.get("/health").json()["images"] is True
    (tmp_path / "red.png").write_bytes(RED)
    body = {"samples": [{**BIRTH, "image_data": b64(RED)}, BIRTH,
                        {**BIRTH, "id": "blue", "image_data": "data:image/png;base64," + b64(BLUE)}],
            "labels": LABELS}
    posted = scores(client.post("/predict", json=body))
    on_disk = extractor.predict([{**BIRTH, "image": "red.png"}, BIRTH], LABELS, base_dir=tmp_path)
    expected = [[(label, round(score, 4)) for label, score in p.ranked] for p in on_disk]
    assert posted[:2] == [[(label, pytest.approx(s, abs=1.01e-4)) for label, s in row]
                          for row in expected]
    # the image reaches the model: with, without and with another image, three rankings
    assert posted[0] != posted[1] and posted[0] != posted[2] and posted[1] != posted[2]
    # each request's image files are removed once it is answered
    assert os.listdir(client.app.state.image_dir) == []


@pytest.mark.parametrize(("image_data", "status", "detail"), [
    ("not base64!", 422, "samples[1].image_data: not valid base64"),
    (b64(RED[: len(RED) // 2]), 422, "samples[1].image_data: the image is unreadable"),
    (b64(b"plain text, not an image"), 422, "samples[1].image_data: the image is unreadable"),
    ("", 422, "samples[1].image_data: empty"),
    (5, 422, "samples[1].image_data: should be a base64 string or a data: URL"),
    ("data:image/png," + b64(RED), 422, "samples[1].image_data: a data: URL must be base64"),
    (b64(png((9, 9, 9), (400, 300)) + b"\0" * 4000), 413,
     "samples[1].image_data: over 4000 bytes, at most 4000 per image (--max-image-bytes)"),
    (b64(b"\0" * 4001), 413,
     "samples[1].image_data: 4001 bytes, at most 4000 per image (--max-image-bytes)"),
])
def test_a_bad_image_is_a_4xx_naming_the_field(image_client, image_data, status, detail):
    client, _ = image_client
    body = {"samples": [BIRTH, {**BIRTH, "image_data": image_data}], "labels": LABELS}
    response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(detail), response.json()["detail"]
    assert os.listdir(client.app.state.image_dir) == []
    assert client.post("/predict", json={"samples": [BIRTH], "labels": LABELS}).status_code == 200


def test_an_image_over_the_pixel_limit_is_refused_undecoded(image_client, monkeypatch):
    client, _ = image_client
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # RED has 40 x 30 = 1200 pixels
    response = client.post("/predict", json={"samples": [{**BIRTH, "image_data": b64(RED)}],
                                              "labels": LABELS})
    assert response.status_code == 422
    assert response.json()["detail"] == "samples[0].image_data: the image is too large (over 1000 pixels)"


def test_a_text_only_run_ignores_posted_images(trained_demo):
    extractor = ZeroShotExtractor.from_pretrained(trained_demo)
    with TestClient(create_app(extractor)) as client:
        assert client.get("/health").json()["images"] is False
        plain = scores(client.post("/predict", json={"samples": [BIRTH], "labels": LABELS}))
        for image_data in (b64(RED), "not base64!"):
            body = {"samples": [{**BIRTH, "image_data": image_data}], "labels": LABELS}
            assert scores(client.post("/predict", json=body)) == plain
