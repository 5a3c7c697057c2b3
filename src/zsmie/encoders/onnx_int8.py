"""The text encoder through ONNX Runtime, its linear layers in int8 ("int8-onnx").

The transformer (with the run's own weights and entity-marker embeddings) is exported with
`torch.onnx.export` (dynamic batch and sequence axes), then ONNX Runtime's own quantiser
rewrites every MatMul with a constant weight (`onnxruntime.quantization`), and an
`onnxruntime.InferenceSession` runs it on the CPU. Pooling, entity-marker gathering and the
heads stay in torch: the session only replaces `model(input_ids, attention_mask)
.last_hidden_state`.

ONNX Runtime's quantisations on offer (`METHODS`, text.int8_scheme):
- "blockwise" (the default): `MatMulNBitsQuantizer`, 8-bit symmetric weights in blocks of 32
  along the input dimension, with `accuracy_level=4`: the activations are quantised to int8
  per row (one token) and block at run time, so a sample's result does not depend on the
  other samples or the padding in its batch; "blockwise128": the same in blocks of 128;
  "weight_only": blocks of 32 with `accuracy_level=1` (the weights are dequantised and the
  products run in fp32).
- "dynamic": `quantize_dynamic`, per-channel int8 weights and one activation scale per
  tensor (the scheme of torch's dynamic quantisation, so batch-dependent like it);
  "dynamic_per_tensor": one weight scale per matrix.
benchmarks/int8_schemes.py compares them on validation F1.

An exported model is cached under a directory the caller names (beside a run's weights), in a
file whose name hashes the weights, the method and the onnxruntime version: changed weights
export again, and an unchanged run reuses its export.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from zsmie.choices import INT8_SCHEMES
from zsmie.encoders.cache import default_cache_dir
from zsmie.errors import ZsmieError

METHODS = INT8_SCHEMES["int8-onnx"]
DEFAULT_METHOD = METHODS[0]
BLOCK_SIZE = 32
# MatMulNBits methods: (block size, accuracy_level); quantize_dynamic methods: per_channel
BLOCKWISE = {"blockwise": (BLOCK_SIZE, 4), "blockwise128": (128, 4), "weight_only": (BLOCK_SIZE, 1)}
DYNAMIC = {"dynamic": True, "dynamic_per_tensor": False}
OPSET = 17


class OnnxError(ZsmieError, RuntimeError):
    """ONNX Runtime missing, or an export that cannot be made or loaded."""


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxError("precision int8-onnx needs onnxruntime and onnx: pip install onnxruntime "
                        "onnx (make install installs them)") from None
    return onnxruntime


def weights_digest(model: nn.Module) -> str:
    """sha256 over the model's parameter and buffer names, shapes and values."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


class _States(nn.Module):
    """input_ids, attention_mask -> last_hidden_state: what the session replaces."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export_fp32(model: nn.Module, path: Path) -> Path:
    """`model` (a Hugging Face encoder) as an fp32 ONNX graph with dynamic batch and length."""
    ids = torch.tensor([[101, 2023, 2003, 102], [101, 2178, 102, 0]])
    mask = (ids != 0).long()
    axes = {name: {0: "batch", 1: "length"} for name in ("input_ids", "attention_mask", "states")}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(_States(model), (ids, mask), str(path),
                              input_names=["input_ids", "attention_mask"],
                              output_names=["states"], dynamic_axes=axes, opset_version=OPSET,
                              dynamo=False)
    finally:
        model.train(was_training)
    return path


def quantize(source: Path, target: Path, method: str = DEFAULT_METHOD) -> Path:
    """The fp32 graph at `source` with its constant-weight MatMuls in int8, written to `target`."""
    if method not in METHODS:
        raise OnnxError(f"int8-onnx method {method!r}: expected one of {list(METHODS)}")
    _ort()
    if method in DYNAMIC:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(source), str(target), per_channel=DYNAMIC[method],
                         weight_type=QuantType.QInt8)
        return target
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    block_size, accuracy_level = BLOCKWISE[method]
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True,
                                          accuracy_level=accuracy_level, bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), False)
    return target


def export_path(model: nn.Module, cache_dir: Path, method: str = DEFAULT_METHOD) -> Path:
    """Where the int8 export of `model` lives under `cache_dir`: named by a hash of its
    weights, the method, the block size, the onnxruntime version and the opset."""
    ort = _ort()
    key = hashlib.sha256(f"{weights_digest(model)}|{method}|{BLOCK_SIZE}|ort{ort.__version__}|"
                         f"opset{OPSET}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"text-int8-{method}-{key}.onnx"


def cached_int8(model: nn.Module, cache_dir: Path, method: str = DEFAULT_METHOD) -> Path:
    """The int8 ONNX file of `model` under `cache_dir`, exported and quantised on first use."""
    target = export_path(model, cache_dir, method)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        fp32 = export_fp32(model, Path(work) / "fp32.onnx")
        staged = quantize(fp32, Path(work) / target.name, method)
        os.replace(staged, target)  # atomic: a reader never sees half a file
    return target


class OnnxStates:
    """An ONNX Runtime session standing in for `model(...).last_hidden_state`."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ort = _ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OnnxError(f"{path}: ONNX Runtime cannot load it: {exc}") from None
        self.path = path

    def __call__(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        return torch.from_numpy(self.session.run(["states"], feeds)[0])


def export_dir(cache_dir: str | Path | None) -> Path:
    """Where int8-onnx exports live: `cache_dir` (a run's `onnx/` folder) when it can be
    written there, else the feature cache's `onnx/` folder (zsmie.encoders.cache); the
    file names hash the weights, so a shared folder never hands back another run's export."""
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        existing = next((p for p in (cache_dir, *cache_dir.parents) if p.exists()), None)
        if existing is not None and os.access(existing, os.W_OK):
            return cache_dir
    return default_cache_dir() / "onnx"
