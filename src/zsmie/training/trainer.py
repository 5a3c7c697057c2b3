"""The training loop: balanced batches, Adam, early stopping on validation macro-F1, best
weights in safetensors, per-epoch metrics in metrics.jsonl, test metrics in results.json,
the open-set threshold (calibrated on validation) in open_set.json.

Runs on Hugging Face Accelerate: one CPU process, one GPU, or `accelerate launch` on many.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from zsmie.assemble import loaders, make_accelerator, prepare
from zsmie.config import Config, save_config
from zsmie.data.batching import BalancedBatchSampler
from zsmie.evaluation.open_set import calibrate_prepared
from zsmie.evaluation.predict import evaluate_part, label_prototypes
from zsmie.io import append_jsonl, atomic_write_json

log = logging.getLogger(__name__)


class NonFiniteLoss(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


def train(config: Config, out_dir: str | Path) -> dict:
    """Train, select on validation, test; returns the results written to results.json."""
    out = Path(out_dir)
    start = time.time()
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.toml")
        (out / "metrics.jsonl").write_text("", encoding="utf-8")  # a fresh log per run
    prepared = prepare(config, accelerator.device)
    if accelerator.is_main_process:
        atomic_write_json(out / "data.json", prepared.data_summary())
    model = prepared.model
    head = model.head
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params or [torch.zeros(0, requires_grad=True)],
                                 lr=config.train.lr, weight_decay=config.train.weight_decay)
    data = loaders(prepared, config)
    model, optimizer, train_loader, val_loader, test_loader = accelerator.prepare(
        model, optimizer, data["train"], data["val"], data["test"]
    )
    core = accelerator.unwrap_model(model)
    cache: dict = {}
    train_texts = prepared.texts("train")
    metadata = {"model": config.model.name, "text": core.text.identity}
    best_f1, best_epoch, waited = -1.0, 0, 0
    show = config.train.progress and accelerator.is_local_main_process

    epochs = config.train.epochs if head.trainable else 0
    if not head.trainable and accelerator.is_main_process:
        core.save(out / "best.safetensors", metadata)  # nothing to train: evaluate as built
    for epoch in range(1, epochs + 1):
        model.train()
        sampler = getattr(data["train"], "batch_sampler", None)
        if isinstance(sampler, BalancedBatchSampler):
            sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}  # a term can be absent from a step (no images in it)
        steps = 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{config.train.epochs}", disable=not show,
                   leave=False)
        for batch in bar:
            prototypes = label_prototypes(core, train_texts, cache)
            output = model(batch, prototypes)
            adversary = head.adversary_step(output)  # MG-VAT: tau moves first (Eq. 12)
            loss, terms = head.loss(output, batch.labels)
            for name, value in terms.items():
                if not torch.isfinite(value):
                    raise NonFiniteLoss(
                        f"epoch {epoch} step {steps + 1}: loss term {name!r} is {value.item()}; "
                        f"stopping, the last good weights stay in {out / 'best.safetensors'}"
                    )
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if config.train.grad_clip > 0:
                accelerator.clip_grad_norm_(params, config.train.grad_clip)
            optimizer.step()
            steps += 1
            logged = {**{k: float(v.detach()) for k, v in terms.items()}, **adversary}
            for name, value in logged.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")

        val = evaluate_part(prepared, model, val_loader, "val", accelerator, cache)
        record = {
            "epoch": epoch,
            "steps": steps,
            "train": {name: total / counts[name] for name, total in sums.items()},
            "val": {k: val[k] for k in ("precision", "recall", "f1", "accuracy")},
            "elapsed_s": round(time.time() - start, 2),
        }
        improved = val["f1"] > best_f1
        if improved:
            best_f1, best_epoch, waited = val["f1"], epoch, 0
            if accelerator.is_main_process:
                core.save(out / "best.safetensors", metadata)
        else:
            waited += 1
        record["best_epoch"] = best_epoch
        if accelerator.is_main_process:
            append_jsonl(out / "metrics.jsonl", record)
        log.info("epoch %d: train %s val f1 %.4f acc %.4f%s", epoch, record["train"], val["f1"],
                 val["accuracy"], " (best)" if improved else "")
        if waited >= config.train.patience:
            log.info("early stop: no validation gain for %d epochs", waited)
            break

    accelerator.wait_for_everyone()
    core.load(out / "best.safetensors")
    results = {
        "model": config.model.name,
        "task": config.task,
        "seed": config.seed,
        "best_epoch": best_epoch,
        "val": evaluate_part(prepared, model, val_loader, "val", accelerator, cache),
        "test": evaluate_part(prepared, model, test_loader, "test", accelerator, cache),
        "data": prepared.data_summary(),
        "wall_time_s": round(time.time() - start, 2),
        "processes": accelerator.num_processes,
    }
    if accelerator.is_main_process:
        # Cheap (two passes over validation): the "none of these" threshold for `predict`.
        open_set = calibrate_prepared(prepared, core, out, accelerator.device)
        if open_set is not None:
            results["open_set"] = {k: open_set[k] for k in ("threshold", "macro_f1", "accuracy")}
        atomic_write_json(out / "results.json", results)
    return results
