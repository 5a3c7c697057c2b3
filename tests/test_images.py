import pytest
from PIL import Image

from zsmie.data.images import apply_image_policy
from zsmie.data.sample import DataError, Sample, Span


def _samples(tmp_path):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    def s(i, image):
        return Sample(str(i), ("a", "b"), Span(0, 1), Span(1, 2), "x", image, f"f.jsonl:{i}")
    return [s(1, str(tmp_path / "ok.png")), s(2, str(tmp_path / "gone.png")),
            s(3, str(tmp_path / "broken.png")), s(4, None)]


def test_error_policy_names_the_first_sample_without_image(tmp_path):
    with pytest.raises(DataError, match=r"f.jsonl:2: field 'image' .*gone.png' is missing"):
        apply_image_policy(_samples(tmp_path), "error")


def test_blank_policy_counts_and_keeps_samples_without_substitution(tmp_path):
    out, report = apply_image_policy(_samples(tmp_path), "blank")
    assert [s.image for s in out] == [str(tmp_path / "ok.png"), None, None, None]
    assert (report.with_image, report.missing, report.unreadable) == (1, 2, 1)
    assert report.examples[0].startswith("f.jsonl:2")


def test_text_only_models_drop_images_without_checking(tmp_path):
    out, report = apply_image_policy(_samples(tmp_path), "error", used=False)
    assert all(s.image is None for s in out) and report.used is False


def test_truncated_images_are_caught_by_decoding(tmp_path):
    from zsmie.data.images import image_problem, load_rgb

    Image.effect_noise((64, 64), 64).convert("RGB").save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert image_problem(str(tmp_path / "full.jpg")) is None
    assert image_problem(str(tmp_path / "cut.jpg")) == "unreadable (OSError)"
    with pytest.raises(DataError, match=r"f.jsonl:3: image '.*cut.jpg' is unreadable"):
        load_rgb(str(tmp_path / "cut.jpg"), "f.jsonl:3")
    samples = [Sample("1", ("a", "b"), Span(0, 1), Span(1, 2), "x", str(tmp_path / "cut.jpg"), "f:1")]
    with pytest.raises(DataError, match=r"f:1: field 'image' .*cut.jpg' is unreadable"):
        apply_image_policy(samples, "error")
    out, report = apply_image_policy(samples, "blank")
    assert out[0].image is None and report.unreadable == 1


def test_huge_images_are_refused_not_decoded(tmp_path, monkeypatch):
    from zsmie.data.images import image_problem, load_rgb

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 40)).save(tmp_path / "warn.png")  # 1600 px: PIL would only warn
    Image.new("RGB", (50, 50)).save(tmp_path / "bomb.png")  # 2500 px: over twice the limit
    for name in ("warn.png", "bomb.png"):
        path = str(tmp_path / name)
        assert image_problem(path) == "too large (over 1000 pixels)"
        with pytest.raises(DataError, match=r"s:1: image .* is too large"):
            load_rgb(path, "s:1")
