"""Throughput and memory of training and inference, with and without the feature cache.

    python benchmarks/throughput.py [--config configs/mre_mgvmoe.toml] [--skip-full]

Measures, in one run, on real MNRE text (seed 0 split, frozen text encoder):
- training and inference samples/s with the disk cache and with `feature_cache=off`
  (the frozen encoder then runs at every step, as in the authors' release);
- the first epoch on a cold cache (features computed) against a later epoch;
- the image path on MNRE's 50 available images: a ViT-B/16-sized encoder (random weights:
  the cost, not the features, is measured) encoding cold, then read back from the cache;
- the wall time and peak resident memory of the full 3-seed MG-VMoE benchmark with a
  frozen encoder (a fresh process and a fresh cache, as a user's first run).
Writes benchmarks/results/throughput.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from zsmie.assemble import loaders, make_accelerator, precompute_image_states, prepare
from zsmie.config import load_config
from zsmie.data.mnre import read_mnre
from zsmie.encoders.cache import FeatureCache
from zsmie.experiments.provenance import command_line, machine_line
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.io import atomic_write_text
from zsmie.training.trainer import train_epoch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MNRE = REPO.parent / "shared" / "data" / "mnre"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def training_throughput(config_path: Path, cache_setting: str, epochs: int, out: Path) -> dict:
    """Set-up time, per-epoch training time and test inference time for one cache setting."""
    config = load_config(config_path, ["images=blank", "train.progress=false",
                                       f"feature_cache={cache_setting}"])
    config.data.dir = str(MNRE)
    accelerator = make_accelerator(config)
    torch.manual_seed(0)
    prepared, setup_s = timed(lambda: prepare(config, accelerator.device))
    model = prepared.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.train.lr)
    data = loaders(prepared, config)
    model, optimizer, train_loader, test_loader = accelerator.prepare(
        model, optimizer, data["train"], data["test"])
    texts, cache = prepared.texts("train"), {}
    samples_per_epoch = len(train_loader) * config.train.batch_size
    epoch_s = []
    for epoch in range(1, epochs + 1):
        train_loader.set_epoch(epoch)
        _, seconds = timed(lambda e=epoch: train_epoch(
            model, model.head, optimizer, train_loader,
            lambda: label_prototypes(model, texts, cache), accelerator, config, e, out))
        epoch_s.append(seconds)
    prototypes = label_prototypes(model, prepared.texts("test"), {})
    _, infer_s = timed(lambda: run_model(model, test_loader, prototypes))
    n_test = len(prepared.datasets["test"])
    return {
        "setup_s": setup_s,
        "epoch_s": epoch_s,
        "train_sps": samples_per_epoch / epoch_s[-1],
        "infer_sps": n_test / infer_s,
        "samples_per_epoch": samples_per_epoch,
        "test_samples": n_test,
    }


def image_throughput(tmp: Path) -> dict:
    """ViT-B/16 (224 px) encoding of MNRE's available images: cold, then from the cache."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    from zsmie.data.images import apply_image_policy
    from zsmie.encoders.vision import VisionEncoder

    folder = tmp / "vit-b16-random"
    torch.manual_seed(0)
    ViTModel(ViTConfig(), add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder)
    vision = VisionEncoder(str(folder))
    samples, report = apply_image_policy(read_mnre(MNRE), "blank")
    with_image = [s for s in samples if s.image is not None]
    cache_dir = tmp / "image-cache"
    _, cold_s = timed(lambda: precompute_image_states(vision, with_image, 16,
                                                      FeatureCache(cache_dir), workers=2))
    _, warm_s = timed(lambda: precompute_image_states(vision, with_image, 16,
                                                      FeatureCache(cache_dir), workers=2))
    distinct = len({s.image for s in with_image})
    return {"records": len(with_image), "images": distinct, "cold_s": cold_s, "warm_s": warm_s,
            "tokens": (224 // 16) ** 2 + 1, "hidden": vision.hidden_size}


def full_benchmark(config_path: Path, tmp: Path) -> dict:
    """The 3-seed MG-VMoE rows of the MNRE benchmark, in a fresh process and cache."""
    grid = tmp / "mgvmoe_only.toml"
    grid.write_text(f"""
name = "mgvmoe_only"
out = "{tmp / 'runs'}"
results = "{tmp / 'table'}"
data_dir = "{MNRE}"
seeds = [0, 1, 2]
set = ["images=blank", "train.progress=false"]

[[row]]
name = "MG-VMoE"
config = "{config_path}"
""", encoding="utf-8")
    env = {**os.environ, "ZSMIE_CACHE": str(tmp / "fresh-cache"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "zsmie.cli", "experiment", "--config", str(grid)]
    result, wall = timed(lambda: subprocess.run(command, env=env, capture_output=True, text=True))
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": wall, "peak_rss_mb": peak_kb / 1024}


def targets_section(ratio_later: float, full: dict | None) -> list[str]:
    """The issue's targets beside what this run measured, each marked met or missed."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    rows = [f"| later epoch with the cache >= 10x faster than without | {ratio_later:.1f}x | "
            f"{verdict(ratio_later >= 10)} |"]
    if full is not None:
        gb, minutes = full["peak_rss_mb"] / 1024, full["wall_s"] / 60
        rows += [f"| peak memory of the full MNRE benchmark < 3 GB | {gb:.2f} GB | {verdict(gb < 3)} |",
                 f"| full 3-seed MG-VMoE benchmark, frozen encoder, < 20 min on this machine | "
                 f"{minutes:.1f} min | {verdict(minutes < 20)} |"]
    return ["## Targets", "", "| target | measured | |", "|---|---|---|", *rows, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "mre_mgvmoe.toml"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="skip the 3-seed benchmark")
    parser.add_argument("--out", default=str(HERE / "results" / "throughput.md"))
    args = parser.parse_args()
    config_path = Path(args.config).resolve()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # First, while no other child process has run: its peak memory is its own.
        full = None if args.skip_full else full_benchmark(config_path, tmp)
        cached = training_throughput(config_path, str(tmp / "cache"), args.epochs, tmp)
        uncached = training_throughput(config_path, "off", args.epochs, tmp)
        images = image_throughput(tmp)
    self_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    ratio_later = uncached["epoch_s"][-1] / cached["epoch_s"][-1]
    lines = [
        "# Throughput: training and inference with and without the feature cache", "",
        "Produced by:", "", "```bash",
        command_line(), "```", "",
        machine_line() + f" Model: `{os.path.relpath(config_path, REPO)}` "
        "(MG-VMoE, frozen MiniLM text encoder, text only), MNRE seed-0 split: "
        f"{cached['samples_per_epoch']} training samples per epoch, "
        f"{cached['test_samples']} test samples.", "",
        "| measure | with cache | without cache (`feature_cache=off`) | ratio |",
        "|---|---|---|---|",
        f"| set-up before the first step (cold cache: features computed and stored) | "
        f"{cached['setup_s']:.1f} s | {uncached['setup_s']:.1f} s | |",
        f"| epoch 1 | {cached['epoch_s'][0]:.1f} s | {uncached['epoch_s'][0]:.1f} s | "
        f"{uncached['epoch_s'][0] / cached['epoch_s'][0]:.1f}x |",
        f"| later epoch (epoch {len(cached['epoch_s'])}) | {cached['epoch_s'][-1]:.1f} s | "
        f"{uncached['epoch_s'][-1]:.1f} s | {ratio_later:.1f}x |",
        f"| training samples/s (later epoch) | {cached['train_sps']:.0f} | "
        f"{uncached['train_sps']:.0f} | {cached['train_sps'] / uncached['train_sps']:.1f}x |",
        f"| inference samples/s (test) | {cached['infer_sps']:.0f} | {uncached['infer_sps']:.0f} "
        f"| {cached['infer_sps'] / uncached['infer_sps']:.1f}x |",
        f"| first run (set-up + epoch 1) vs a later epoch, with cache | "
        f"{cached['setup_s'] + cached['epoch_s'][0]:.1f} s vs {cached['epoch_s'][-1]:.1f} s | | |",
        "",
        f"Image path: {images['records']} MNRE records with one of the {images['images']} "
        f"available images; a ViT-B/16-sized encoder ({images['tokens']} tokens x "
        f"{images['hidden']}, random weights: only the cost is measured), images decoded in 2 "
        f"loader workers: cold {images['cold_s']:.1f} s "
        f"({images['images'] / images['cold_s']:.1f} images/s), from the cache "
        f"{images['warm_s']:.2f} s ({images['cold_s'] / images['warm_s']:.0f}x).", "",
    ]
    if full is not None:
        lines += [
            f"Full 3-seed MG-VMoE MNRE benchmark, frozen encoder, fresh process and empty cache: "
            f"**{full['wall_s'] / 60:.1f} min** wall time, peak resident memory "
            f"**{full['peak_rss_mb'] / 1024:.2f} GB**.", "",
        ]
    lines += [f"Peak resident memory of this script itself: {self_peak_mb / 1024:.2f} GB.", ""]
    lines += targets_section(ratio_later, full)
    atomic_write_text(Path(args.out), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
