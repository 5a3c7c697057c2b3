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
