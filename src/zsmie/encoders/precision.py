"""Inference precision of the text encoders: "fp32" (as trained), "int8" or "int8-onnx".

int8 is PyTorch's dynamic quantisation (`torch.ao.quantization.quantize_dynamic`): every
`nn.Linear` of the transformer (attention projections, feed-forward, pooler) keeps int8
weights and quantises its input per batch at run time, so its matrix products run as int8
on the quantised engine (`torch.backends.quantized.engine`: x86 / fbgemm on x86 CPUs, with
VNNI instructions where the CPU has them). Embeddings, LayerNorm and softmax stay in fp32;
so do the model heads, whose cost is small. It runs on CPU only, and only for inference
(predict, serve, evaluate): training always runs in fp32.

The weights are quantised per output channel (`per_channel_dynamic_qconfig`) by default, or
per tensor (`text.int8_scheme = "per_tensor"`); `benchmarks/int8_schemes.py` compares both,
and ONNX Runtime's schemes, on validation F1.

"int8-onnx" runs the encoder through ONNX Runtime instead (zsmie.encoders.onnx_int8): int8
weights in blocks and activations quantised per token, so that a sample scores the same
whatever else shares its batch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from zsmie.choices import INT8_SCHEMES, PRECISIONS
from zsmie.errors import ZsmieError

SCHEMES = INT8_SCHEMES["int8"]
DEFAULT_SCHEME = SCHEMES[0]


class PrecisionError(ZsmieError, ValueError):
    """A precision that cannot be used here (unknown, or int8 off the CPU)."""


def check_precision(precision: str, where: str = "precision") -> str:
    if precision not in PRECISIONS:
        raise PrecisionError(f"{where} = {precision!r}: expected one of {list(PRECISIONS)}")
    return precision


def quantize_linear_layers(module: nn.Module, scheme: str = DEFAULT_SCHEME) -> nn.Module:
    """`module` with every nn.Linear replaced by its dynamically quantised int8 form, in place."""
    if scheme not in SCHEMES:
        raise PrecisionError(f"int8 scheme {scheme!r}: expected one of {list(SCHEMES)}")
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*")
        from torch.ao import quantization

        qconfig = (quantization.per_channel_dynamic_qconfig if scheme == "per_channel"
                   else quantization.default_dynamic_qconfig)
        return quantization.quantize_dynamic(module, {nn.Linear: qconfig}, dtype=torch.qint8,
                                             inplace=True)


def set_precision(model: nn.Module, precision: str, scheme: str | None = None,
                  cache_dir: str | Path | None = None) -> nn.Module:
    """Every text encoder inside `model` (the trained one, a score ensemble's reference, a
    type prior's mention encoder; each once) at `precision`, after its weights are loaded.
    fp32 leaves `model` as it is. `scheme`: int8's weight scheme or int8-onnx's method (None:
    the default of each); `cache_dir`: where int8-onnx keeps its exports (a run's
    `onnx/` folder; zsmie.encoders.onnx_int8.export_dir)."""
    check_precision(precision)
    for module in model.modules():  # text encoders (zsmie.encoders.text, which imports this)
        if callable(getattr(module, "set_precision", None)):
            module.set_precision(precision, scheme, cache_dir)
    return model


def engine_report() -> dict[str, str]:
    """What runs the int8 products here: the quantised engine and the CPU's vector ISA, as
    torch reports them."""
    return {"quantized_engine": torch.backends.quantized.engine,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": str(torch.get_num_threads())}
