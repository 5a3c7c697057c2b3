"""The allowed values of every enumerated setting, listed once.

A leaf module (it imports nothing): the config checks settings against these (one error
naming the key), and the layers that take the same values check their arguments against the
same tuples.
"""

from __future__ import annotations

TASKS = ("mre", "met")
IMAGE_POLICIES = ("error", "blank")  # a missing or unreadable image: fail, or score it blank
LABEL_TEXTS = ("raw", "name", "description", "verbalised")
DATA_FORMATS = ("mnre", "wikidiverse", "jsonl", "demo")
PROTOCOLS = ("zero_shot", "open", "generalized")
FEATURE_CACHES = ("auto", "memory", "off")  # or a folder path
MARKER_INITS = ("tokens", "mean")
SCORES = ("dot", "cosine")
PROJ_INITS = ("identity", "random")
FUSIONS = ("paper", "query")
KL_REDUCTIONS = ("sum", "mean")
VMOE_INITS = ("random", "identity")
VAT_MODES = ("radius", "penalty")
VAT_SCORES = ("dot", "cosine")
VAT_COMPLEMENTS = ("ones", "identity")
DEVICES = ("auto", "cpu", "cuda")
MIXED_PRECISIONS = ("no", "bf16", "fp16")
# inference precision of the text encoders (zsmie.encoders.precision)
PRECISIONS = ("fp32", "int8", "int8-onnx")
# the quantisation schemes each int8 precision offers (text.int8_scheme; the first is the
# default): torch's dynamic int8 weights per output channel or per tensor; ONNX Runtime's
# MatMulNBits 8-bit blocks of 32 or 128 (int8 activations per token), its weight-only form
# (8-bit blocks of 32, fp32 arithmetic), or quantize_dynamic per channel or per tensor
# (zsmie.encoders.onnx_int8; benchmarks/int8_schemes.py chooses on validation F1)
INT8_SCHEMES = {"int8": ("per_channel", "per_tensor"),
                "int8-onnx": ("blockwise", "blockwise128", "weight_only", "dynamic",
                              "dynamic_per_tensor")}
