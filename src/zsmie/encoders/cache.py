"""On-disk cache of frozen-encoder features, one .npy file per entry, read back memory-mapped.

An entry's key hashes the encoder's identity (model, weights config, preprocessing) together
with the exact input (token ids, or the image file's bytes), so a changed image, encoder or
resolution never reuses a stale entry. Entries are written to a temporary file and renamed
into place: a reader never sees a half-written entry, and two processes computing the same
entry at once both succeed (the rename is atomic and the contents identical).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from zsmie.io import atomic_write


def default_cache_dir() -> Path:
    if os.environ.get("ZSMIE_CACHE"):
        return Path(os.environ["ZSMIE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zsmie" / "features"


def content_key(identity: str, content: bytes) -> str:
    return hashlib.sha256(identity.encode() + b"\0" + content).hexdigest()


def file_digest(path: str) -> bytes:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).digest()


class FeatureCache:
    """Feature entries by key: on disk under `root`, or in memory when `root` is None."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.memory: dict[str, torch.Tensor] = {}
        self.hits = self.misses = 0

    @classmethod
    def in_memory(cls) -> FeatureCache:
        return cls(None)

    def path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> torch.Tensor | None:
        if self.root is None:
            return self.memory.get(key)
        path = self.path(key)
        if not path.is_file():
            return None
        array = np.load(path, mmap_mode="r")
        with warnings.catch_warnings():  # a read-only view of the mapped file, never written
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)

    def put(self, key: str, value: torch.Tensor) -> None:
        if self.root is None:
            self.memory[key] = value
            return
        array = value.detach().cpu().numpy()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, array)

        atomic_write(self.path(key), write)

    def get_or_compute(
        self,
        keys: Sequence[str],
        compute: Callable[[list[int]], list[torch.Tensor]],
        batch_size: int,
        progress: Callable | None = None,
    ) -> list[torch.Tensor]:
        """Entries for `keys`; each distinct missing key is computed once, by
        `compute(positions)` in batches. `hits` and `misses` count distinct keys."""
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        found = {key: self.get(key) for key in first}
        missing = [first[key] for key, value in found.items() if value is None]
        self.hits += len(first) - len(missing)
        self.misses += len(missing)
        starts = range(0, len(missing), batch_size)
        for start in progress(starts) if progress else starts:
            chunk = missing[start : start + batch_size]
            for i, value in zip(chunk, compute(chunk), strict=True):
                self.put(keys[i], value)
                found[keys[i]] = value
        return [found[key] for key in keys]  # type: ignore[misc]
