"""Prediction at scale and as a service, measured on this machine.

    python benchmarks/serving.py --run runs/demo [--seconds 30] [--clients 8]

- streamed `zsmie predict` throughput (samples/s: parse, tokenize, encode, score, rank,
  write) against the text encoder's forward pass alone on the same tokenized samples (the
  limit for a frozen-encoder run);
- peak resident memory of `zsmie predict` over 10k and 100k input lines, each in a fresh
  process, with a cheap configuration: a 2-layer, 64-wide random BERT with MiniLM's
  tokenizer (the same reading, tokenizing, chunking and writing; a fraction of MiniLM's
  arithmetic), trained on the demo for one epoch;
- `zsmie serve` (the `--run` model) under a bounded loopback load: `--clients` concurrent
  clients, each posting the README's example post with 4 labels for `--seconds`, with
  micro-batching and with one request at a time (`--batch-samples 1`).
Writes benchmarks/results/serving.md. Inputs repeat the embedded demo's 60 posts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

from zsmie.data.batching import SampleDataset, collate
from zsmie.data.datasets import demo_path
from zsmie.io import atomic_write_text
from zsmie.predict import ZeroShotExtractor
from zsmie.serving.stream import scored_chunks

HERE = Path(__file__).resolve().parent
LABELS = ["place_of_birth", "subsidiary", "spouse", "employer"]
POST = {"id": "post-1", "text": "Violinist Clara Weiss was born in Vienna in 1990",
        "head": [10, 21], "tail": [34, 40]}
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "PYTHONPATH": os.pathsep.join(sys.path)}


def write_posts(path: Path, n: int) -> Path:
    records = [json.loads(x) for x in demo_path().read_text().splitlines() if x.strip()]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            record = {k: v for k, v in records[i % len(records)].items() if k not in ("image", "label")}
            handle.write(json.dumps({**record, "id": f"p{i}"}) + "\n")
    return path


def throughput(run: Path, n: int, work: Path) -> dict:
    """Streamed predict vs the encoder's forward pass alone, same samples, same batches."""
    extractor = ZeroShotExtractor.from_run(run)
    posts = write_posts(work / "throughput.jsonl", n)
    label_set = extractor.label_set(LABELS, top_k=2)
    batch = extractor.config.train.eval_batch_size
    list(scored_chunks(extractor, posts, label_set, chunk_size=batch, skip=n - batch))  # warm up
    start = time.perf_counter()
    with open(work / "out.jsonl", "w", encoding="utf-8") as out:
        for predictions in scored_chunks(extractor, posts, label_set, chunk_size=1024):
            out.write("".join(json.dumps(p.as_dict()) + "\n" for p in predictions))
    predict_s = time.perf_counter() - start
    samples = extractor.samples(json.loads(x) for x in posts.read_text().splitlines())
    text = extractor.model.text
    dataset = SampleDataset(samples, [text.encode_sample(s) for s in samples], {})
    pad = text.tokenizer.pad_token_id or 0
    batches = [collate([dataset[i] for i in range(lo, min(lo + batch, n))], pad_id=pad)
               for lo in range(0, n, batch)]
    with torch.no_grad():
        start = time.perf_counter()
        for tokens in batches:
            text(tokens.input_ids, tokens.attention_mask)
        encoder_s = time.perf_counter() - start
    return {"samples": n, "predict_sps": n / predict_s, "encoder_sps": n / encoder_s,
            "ratio": encoder_s / predict_s, "threads": torch.get_num_threads()}


def tiny_run(work: Path) -> Path:
    """The demo trained for one epoch on a 2-layer, 64-wide random BERT (MiniLM's tokenizer)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from zsmie.encoders.packaged import resolve_text_model

    folder = work / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model("minilm"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=128)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    run = work / "tiny-run"
    if (run / "best.safetensors").is_file():
        return run
    subprocess.run([sys.executable, "-m", "zsmie", "demo", "--out", str(run), "--set",
                    f"text.model='{folder}'", "--set", "train.epochs=1", "--set",
                    "train.progress=false", "--set", "feature_cache=off"],
                   env=ENV, check=True, capture_output=True)
    return run


MEASURE = """
import resource, sys, time
from zsmie.serving.stream import predict_file
start = time.perf_counter()
n = predict_file(sys.argv[1], sys.argv[2], {labels!r}, top_k=2, output=sys.argv[3], progress=False)
print(n, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory(run: Path, n: int, work: Path) -> dict:
    posts = write_posts(work / f"mem{n}.jsonl", n)
    done = subprocess.run([sys.executable, "-c", MEASURE.format(labels=LABELS), str(run), str(posts),
                           str(work / f"mem{n}.out.jsonl")], env=ENV, capture_output=True,
                          text=True, check=True)
    written, seconds, maxrss_kb = done.stdout.split()
    assert int(written) == n
    return {"lines": n, "seconds": float(seconds), "peak_mib": int(maxrss_kb) / 1024}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_test(run: Path, clients: int, seconds: float, batch_samples: int) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "zsmie", "serve", "--run", str(run), "--port",
                               str(port), "--batch-samples", str(batch_samples)],
                              env=ENV, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        body = {"samples": [POST], "labels": LABELS, "top_k": 2}
        with httpx.Client() as warm:
            for _ in range(3):
                warm.post(f"{url}/predict", json=body, timeout=60).raise_for_status()
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop = time.perf_counter() + seconds

        def client() -> None:
            with httpx.Client() as http:
                while time.perf_counter() < stop:
                    start = time.perf_counter()
                    try:
                        ok = http.post(f"{url}/predict", json=body, timeout=60).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    with lock:
                        latencies.append(time.perf_counter() - start) if ok else None
                        errors[0] += not ok

        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    q = statistics.quantiles(latencies, n=100)
    return {"batch_samples": batch_samples, "requests": len(latencies), "errors": errors[0],
            "rps": len(latencies) / wall, "p50_ms": 1000 * q[49], "p99_ms": 1000 * q[98]}


def phase(work: Path, name: str, measure):
    """A phase's results, measured once per work folder (a rerun after a failure skips it)."""
    path = work / f"{name}.json"
    if not path.is_file():
        atomic_write_text(path, json.dumps(measure()))
    result = json.loads(path.read_text())
    print(name, result, flush=True)
    return result


def report(args, tp, memory, served) -> str:
    flat = memory[1]["peak_mib"] / memory[0]["peak_mib"]
    one, many = (next(s for s in served if (s["batch_samples"] == 1) == b) for b in (True, False))
    lines = [
        "# Prediction at scale and as a service",
        "",
        f"`python benchmarks/serving.py --run {args.run} --seconds {args.seconds:g} --clients "
        f"{args.clients}`, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {tp['threads']} torch threads.",
        "",
        "**Measured once, on a machine whose 2 cores were shared with other sessions' work** "
        "(tests and benchmarks of 4 other sessions): absolute numbers are low and noisy; the "
        "ratios compare runs made minutes apart under similar load.",
        "",
        f"Run: `{args.run}` (the demo's Proto model, frozen MiniLM text encoder).",
        "",
        *([args.note, ""] if args.note else []),
        "## Streamed `zsmie predict` against the encoder alone",
        "",
        "| samples | predict (samples/s) | encoder forward alone (samples/s) | predict / encoder |",
        "| ---: | ---: | ---: | ---: |",
        f"| {tp['samples']} | {tp['predict_sps']:.1f} | {tp['encoder_sps']:.1f} | {tp['ratio']:.2f} |",
        "",
        "Predict covers parsing the JSONL, tokenizing, the encoder, the head, ranking and writing "
        "JSON lines (chunks of 1024, batches of 64); the encoder column runs MiniLM's forward pass "
        "on the same samples, tokenized beforehand, in the same batches of 64.",
        "",
        "## Peak memory against input size",
        "",
        "| input lines | peak resident memory (MiB) | wall (s) |",
        "| ---: | ---: | ---: |",
        *[f"| {m['lines']} | {m['peak_mib']:.0f} | {m['seconds']:.1f} |" for m in memory],
        "",
        f"{memory[1]['lines']} / {memory[0]['lines']} lines peak: **{flat:.3f}** (target: within 1.2). "
        "Each size in a fresh process "
        "(`ru_maxrss`), chunks of 1024, with the cheap configuration: a 2-layer, 64-wide random "
        "BERT with MiniLM's tokenizer, trained on the demo for one epoch (MiniLM itself at the "
        "throughput above would take hours for 100k lines on this machine).",
        "",
        f"## `zsmie serve` under load: {args.clients} clients, {args.seconds:g} s each, loopback",
        "",
        "| model calls | requests | errors | requests/s | p50 latency (ms) | p99 latency (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {'one request at a time' if s['batch_samples'] == 1 else 'micro-batched'} | "
          f"{s['requests']} | {s['errors']} | {s['rps']:.1f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} |"
          for s in (one, many)],
        "",
        f"Micro-batching gain: **{many['rps'] / one['rps']:.2f}x** requests/s. Each request is the "
        "README's example post with 4 labels; micro-batched: `--batch-samples 256 --max-wait-ms "
        "2` (the defaults); one at a time: `--batch-samples 1`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run (e.g. runs/demo)")
    parser.add_argument("--samples", type=int, default=1024, help="throughput samples")
    parser.add_argument("--seconds", type=float, default=30.0, help="load test per setting")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--lines", default="10000,100000", help="input sizes for peak memory")
    parser.add_argument("--note", default="", help="a paragraph for the report (how it was run)")
    parser.add_argument("--work", type=Path, help="keep inputs and finished phases here (a rerun "
                        "reuses them)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serving.md")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="zsmie-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    tp = phase(work, "throughput", lambda: throughput(args.run, args.samples, work))
    memory = phase(work, "memory", lambda: [peak_memory(tiny_run(work), int(n), work)
                                            for n in args.lines.split(",")])
    served = phase(work, "served", lambda: [load_test(args.run, args.clients, args.seconds, b)
                                            for b in (256, 1)])
    atomic_write_text(args.out, report(args, tp, memory, served))
    print(args.out)


if __name__ == "__main__":
    main()
