"""zsmie: zero-shot multimodal information extraction (MG-VMoE and baselines).

The public API:

    import zsmie
    config = zsmie.load_config("configs/mre_mgvmoe.toml")
    results = zsmie.train(config, "runs/mine")
    extractor = zsmie.ZeroShotExtractor.from_pretrained("runs/mine")  # a run or model folder
    extractor.save_pretrained("models/mine")  # config.toml, model.safetensors, inference.json, README.md
    zsmie.Sample, zsmie.ZsmieError  # the sample type; the base of every one-line error

The names are imported on first use (PEP 562): `import zsmie` alone does not load torch or
transformers (seconds), so `zsmie.ZsmieError` and `zsmie.Sample` stay cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zsmie.errors import ZsmieError

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "ZeroShotExtractor": "zsmie.inference.extractor",
    "load_config": "zsmie.config",
    "train": "zsmie.training.trainer",
    "Sample": "zsmie.data.sample",
}
__all__ = ["ZeroShotExtractor", "ZsmieError", "Sample", "load_config", "train"]

if TYPE_CHECKING:
    from zsmie.config import load_config
    from zsmie.data.sample import Sample
    from zsmie.inference.extractor import ZeroShotExtractor
    from zsmie.training.trainer import train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zsmie' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
