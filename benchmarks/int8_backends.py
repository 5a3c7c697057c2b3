"""int8 backends for the MiniLM text encoder side by side: speed, closeness to fp32, and how
much a sample's result depends on the rest of its batch.

    python benchmarks/int8_backends.py [--samples 64] [--alone 8] [--repeats 3] [--work DIR]

The text encoder zsmie runs (all-MiniLM-L6-v2 with the entity markers added) on the first
`--samples` MNRE test sentences, entity markers inserted as `zsmie predict` does, one padded
batch. Backends, loaded in one process:
- torch fp32 (what `--precision fp32` runs);
- torch dynamic int8, per-channel weights (`--precision int8`, zsmie.encoders.precision);
- ONNX Runtime fp32 (the exported graph, unquantised);
- ONNX Runtime `quantize_dynamic`, per-channel int8 weights, one activation scale per tensor;
- ONNX Runtime `MatMulNBits`, 8-bit weights in blocks of 32, activations quantised per token
  and block (accuracy_level 4): `--precision int8-onnx` (zsmie.encoders.onnx_int8).

Per backend: throughput in samples per CPU-second, one thread (process CPU time, not wall
time, so that other jobs on a shared CPU do not enter the figure), on the batch and on
samples fed one at a time; the cosine of each sample's entity vector ([CLS] (+) [E1] (+)
[E2], what the models score) to torch fp32's; and batch dependence: the largest 1 - cosine
between a sample's vector computed alone and inside the batch, over the first `--alone`
samples. Writes benchmarks/results/int8_backends.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from zsmie.data.mnre import read_mnre_file
from zsmie.encoders.onnx_int8 import OnnxStates, export_fp32, quantize
from zsmie.encoders.precision import quantize_linear_layers
from zsmie.encoders.text import TextEncoder, gather_entity_vector
from zsmie.experiments.provenance import command_line, cpu_flags, cpu_model
from zsmie.io import atomic_write_text

HERE = Path(__file__).resolve().parent
MNRE_TEST = HERE.parent.parent / "shared" / "data" / "mnre" / "txt" / "mnre_test.txt"


def encoded_batch(encoder: TextEncoder, n: int) -> list[tuple[list[int], tuple[int, ...]]]:
    samples = read_mnre_file(MNRE_TEST)[:n]
    return [(list(e.input_ids), e.markers) for e in map(encoder.encode_sample, samples)]


def pad(rows: list[tuple[list[int], tuple[int, ...]]]) -> tuple[torch.Tensor, ...]:
    length = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([ids + [0] * (length - len(ids)) for ids, _ in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (length - len(i)) for i, _ in rows])
    return ids, mask, torch.tensor([m for _, m in rows])


def vectors(states_fn, rows) -> torch.Tensor:
    ids, mask, markers = pad(rows)
    with torch.no_grad():
        return gather_entity_vector(states_fn(ids, mask), markers)


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--alone", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="folder for the ONNX files")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "int8_backends.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import onnxruntime

    encoder = TextEncoder("minilm")
    model = encoder.model.eval()
    work = args.work or Path(tempfile.mkdtemp(prefix="int8_backends-"))
    work.mkdir(parents=True, exist_ok=True)
    fp32_onnx = work / "fp32.onnx"
    if not fp32_onnx.is_file():
        export_fp32(model, fp32_onnx)
    for method in ("dynamic", "blockwise"):
        if not (work / f"{method}.onnx").is_file():
            quantize(fp32_onnx, work / f"{method}.onnx", method)
    int8 = quantize_linear_layers(copy.deepcopy(model), "per_channel")

    def torch_states(m):
        return lambda ids, mask: m(input_ids=ids, attention_mask=mask).last_hidden_state

    backends = {
        "torch fp32 (`--precision fp32`)": torch_states(model),
        "torch dynamic int8, per-channel (`--precision int8`)": torch_states(int8),
        "ONNX Runtime fp32": OnnxStates(fp32_onnx, threads=1),
        "ONNX Runtime quantize_dynamic, per-channel": OnnxStates(work / "dynamic.onnx", threads=1),
        "ONNX Runtime MatMulNBits 8-bit, block 32, per-token activations (`--precision int8-onnx`)":
            OnnxStates(work / "blockwise.onnx", threads=1),
    }
    rows = encoded_batch(encoder, args.samples)
    alone_rows = rows[: args.alone]
    reference = vectors(next(iter(backends.values())), rows)
    results = {}
    for name, fn in backends.items():
        batched = vectors(fn, rows)
        alone = torch.cat([vectors(fn, [row]) for row in alone_rows])
        cosine = F.cosine_similarity(batched, reference)
        results[name] = {"cos_mean": cosine.mean().item(), "cos_min": cosine.min().item(),
                         "dependence": (1 - F.cosine_similarity(alone, batched[: args.alone])).max().item(),
                         "batch": [], "alone": []}
    for _ in range(args.repeats):  # backends take turns
        for name, fn in backends.items():
            results[name]["batch"].append(len(rows) / cpu_seconds(lambda fn=fn: vectors(fn, rows)))
            seconds = cpu_seconds(lambda fn=fn: [vectors(fn, [row]) for row in alone_rows])
            results[name]["alone"].append(len(alone_rows) / seconds)
    base = statistics.median(next(iter(results.values()))["batch"])
    lengths = [len(ids) for ids, _ in rows]
    lines = [
        "# int8 backends for the text encoder: speed, closeness to fp32, batch dependence", "",
        "Produced by:", "", "```bash", command_line(), "```", "",
        f"Machine: {cpu_model()}, flags {', '.join(cpu_flags())}; torch {torch.__version__} "
        f"(CPU capability {torch.backends.cpu.get_cpu_capability()}, quantised engine "
        f"{torch.backends.quantized.engine}), onnxruntime {onnxruntime.__version__} "
        f"(CPUExecutionProvider); 1 thread; {time.strftime('%Y-%m-%d')}.", "",
        f"all-MiniLM-L6-v2 with zsmie's entity markers, {len(rows)} MNRE test sentences (markers "
        f"inserted; {min(lengths)}-{max(lengths)} tokens, mean {statistics.mean(lengths):.1f}) in "
        f"one padded batch, and the first {len(alone_rows)} fed one at a time. Speeds are "
        "samples per CPU-second of this process (the CPU is shared with other jobs, so wall "
        f"time would measure them), median of {args.repeats} alternating repeats. Cosine: of "
        "each sample's entity vector ([CLS] (+) [E1] (+) [E2]) to torch fp32's. Batch "
        "dependence: the largest 1 - cosine between a sample's vector alone and in the batch.",
        "",
        "| backend | batch (samples/CPU-s) | vs torch fp32 | alone (samples/CPU-s) | cosine mean | "
        "cosine min | batch dependence |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        speed = statistics.median(r["batch"])
        lines.append(f"| {name} | {speed:.1f} | {speed / base:.2f}x | {statistics.median(r['alone']):.1f} | "
                     f"{r['cos_mean']:.4f} | {r['cos_min']:.4f} | {r['dependence']:.1e} |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
