"""Missing-image policy and image loading.

The policy is explicit and logged: `error` (default) stops on the first missing or unreadable
image with the sample's file:line; `blank` keeps the sample with no image (models then give
it an empty image-token sequence, and image-only losses skip it). No other image is ever
substituted (the authors' release silently used one fixed unrelated image).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from zsmie.data.sample import DataError, Sample

log = logging.getLogger(__name__)

# Refuse decompression bombs: PIL raises for images above this many pixels.
Image.MAX_IMAGE_PIXELS = 64_000_000


@dataclass
class ImageReport:
    policy: str
    used: bool
    samples: int = 0
    with_image: int = 0
    missing: int = 0
    unreadable: int = 0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# What PIL raises on a file that is not a whole, decodable image of a sane size.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning)


@contextlib.contextmanager
def _refuse_huge_images():
    """PIL only warns between MAX_IMAGE_PIXELS and twice that; refuse those images too."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _describe(exc: Exception) -> str:
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return f"too large (over {Image.MAX_IMAGE_PIXELS} pixels)"
    return f"unreadable ({type(exc).__name__})"


def is_file(path: str | Path) -> bool:
    """Path.is_file that is False, not an error, for a name the OS refuses (too long)."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def _decode(image: Image.Image) -> None:
    """Decode every byte of `image`. JPEGs decode at a reduced scale (PIL's draft mode): every
    coefficient is still read, so a truncated or damaged file fails as in a full decode."""
    image.draft("RGB", (1, 1))
    image.load()


def image_problem(path: str) -> str | None:
    """None if `path` is a whole, decodable image of a sane size, else why not.

    The one image check: `data check`, the training pre-check and `predict` all use it. It
    decodes the image (a header check lets truncated files through) and refuses images over
    MAX_IMAGE_PIXELS."""
    file = Path(path)
    if not is_file(file):
        return "missing"
    try:
        with _refuse_huge_images(), Image.open(file) as image:
            _decode(image)
    except IMAGE_ERRORS as exc:
        return _describe(exc)
    return None


TRAIN_ADVICE = ("Set images=blank to keep them without an image (counted and logged), or point "
                "data.image_dir at the images.")


def apply_image_policy(
    samples: Sequence[Sample], policy: str, used: bool = True, advice: str = TRAIN_ADVICE
) -> tuple[list[Sample], ImageReport]:
    """Check every sample's image (`image_problem`) under `policy`; `used=False` drops images
    (text-only model) unread. `advice` ends the error under `images=error`: what the caller's
    user can do (training: config keys; predict: its options)."""
    report = ImageReport(policy=policy, used=used, samples=len(samples))
    if not used:
        return [dataclasses.replace(s, image=None) for s in samples], report
    out: list[Sample] = []
    for sample in samples:
        problem = image_problem(sample.image) if sample.image is not None else "missing"
        if problem is None:
            report.with_image += 1
            out.append(sample)
            continue
        if problem == "missing":
            report.missing += 1
        else:
            report.unreadable += 1
        if len(report.examples) < 5:
            report.examples.append(f"{sample.source}: {sample.image} {problem}")
        if policy == "error":
            total = sum(1 for s in samples if s.image is None or not is_file(s.image))
            raise DataError(
                f"{sample.source}: field 'image' {sample.image!r} is {problem}; {total} of "
                f"{len(samples)} samples have no image file. {advice}"
            )
        out.append(dataclasses.replace(sample, image=None))
    if report.missing or report.unreadable:
        log.warning(
            "images=blank: %d of %d samples have no usable image (%d missing, %d unreadable)",
            report.missing + report.unreadable,
            len(samples),
            report.missing,
            report.unreadable,
        )
    return out, report


def load_rgb(path: str, source: str) -> Image.Image:
    """Decode an image to RGB; a failure names the sample that needed it."""
    try:
        with _refuse_huge_images(), Image.open(path) as image:
            return image.convert("RGB")
    except IMAGE_ERRORS as exc:
        raise DataError(f"{source}: image {path!r} is {_describe(exc)}: {exc}") from None
