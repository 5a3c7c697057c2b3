"""The training loop: balanced batches, Adam, early stopping on validation macro-F1, best
weights in safetensors, per-epoch metrics in metrics.jsonl, test metrics in results.json,
the open-set threshold (calibrated on validation) in open_set.json.

Runs on Hugging Face Accelerate: one CPU process, one GPU, or several processes under
`accelerate launch` / `torchrun`. A checkpoint at the end of every epoch lets a killed run
resume (`resume=True`) and finish with the same results as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from zsmie.assemble import Prepared, loaders, make_accelerator, prepare
from zsmie.config import Config, ConfigError, load_config, save_config
from zsmie.display import shown_terms
from zsmie.errors import ZsmieError
from zsmie.evaluation.metrics import evaluate_part
from zsmie.evaluation.protocols import evaluate_protocol_prepared
from zsmie.inference.open_set import calibrate_prepared
from zsmie.inference.scoring import label_prototypes
from zsmie.io import append_jsonl, atomic_write_json
from zsmie.losses.l2sp import L2SP
from zsmie.models.ensemble import ensembled
from zsmie.run_folder import CONFIG, DATA, METRICS, RESULTS, RUN_WEIGHTS, claim_run
from zsmie.training import robust
from zsmie.training.checkpoint import (
    CHECKPOINT,
    CHECKPOINT_STATE,
    TrainState,
    load_checkpoint,
    read_state,
    save_checkpoint,
    trim_metrics,
)
from zsmie.training.label_sampling import remap, sample_labels
from zsmie.training.type_prior import choose_type_prior
from zsmie.training.type_prior import summary as type_prior_summary

log = logging.getLogger(__name__)
SUMMARY = ("precision", "recall", "f1", "accuracy")


class NonFiniteLoss(ZsmieError, RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


def check_finite(terms: dict[str, torch.Tensor], epoch: int, step: int, out: Path) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value):
            raise NonFiniteLoss(
                f"epoch {epoch} step {step}: loss term {name!r} is {value.item()}; stopped. "
                + _kept(out)
            )


def _kept(out: Path) -> str:
    """What a stopped run leaves to use: only the files that were written."""
    best, state = out / RUN_WEIGHTS, out / CHECKPOINT / CHECKPOINT_STATE
    if not best.is_file():
        return "No weights were saved (it stopped before the first validation)"
    kept = f"The last good weights stay in {best}"
    return kept + (f" and the last complete epoch in {out / 'checkpoint'}" if state.is_file() else "")


class EpochMeans:
    """Running means of named values over the steps of an epoch; a value may be a scalar or a
    vector (per-expert load) and may be absent from some steps (no images in a batch)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            value = value.detach().float().cpu()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float | list[float]]:
        return {name: (total / self.counts[name]).tolist() for name, total in self.sums.items()}


def train_epoch(model, head, optimizer, loader, prototypes, types, accelerator, config, epoch,
                out, penalty=None):
    """One pass over the training batches; returns the epoch means of each loss term and of
    the head's diagnostics (MG-VMoE: tau_norm, expert load / entropy / spread / sigma).
    `prototypes(kept)` gives the step's label prototypes: every training label's (kept None),
    or those of the `train.label_sample` labels kept (training/label_sampling.py), whose
    (head, tail) `types` are given.
    `penalty`: a weight regulariser (L2-SP) added to every step's loss."""
    losses, diagnostics = EpochMeans(), EpochMeans()
    show = config.train.progress and accelerator.is_local_main_process
    bar = tqdm(loader, desc=f"epoch {epoch}/{config.train.epochs}", disable=not show, leave=False)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    k = config.train.label_sample
    for step, batch in enumerate(bar, start=1):
        kept = None
        if 0 < k < len(types):  # drawn from (seed, epoch, step): a resumed run replays it
            seed = config.seed * 1_000_003 + epoch * 10_007 + step
            generator = torch.Generator().manual_seed(seed)
            kept = sample_labels(batch.labels.cpu(), types, k, generator)
            batch = replace(batch, labels=remap(batch.labels, kept, len(types)))
        output = model(batch, prototypes(kept))  # MG-VAT: tau moves here (Eq. 12)
        loss, terms = head.loss(output, batch.labels)
        if penalty is not None:
            terms = {**terms, "l2sp": penalty()}
            loss = loss + terms["l2sp"]
        check_finite(terms, epoch, step, out)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if config.train.grad_clip > 0:
            accelerator.clip_grad_norm_(params, config.train.grad_clip)
        optimizer.step()
        losses.add(terms)
        diagnostics.add(output.stats)
        # shown at the bar's next redraw, with the step count the iterator holds (an immediate
        # redraw would show the count of its last redraw: 0/N through a short epoch)
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
    return losses.means(), diagnostics.means()


def start_run(config: Config, out: Path, resume: bool, main: bool) -> None:
    if not main:
        return
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        return
    save_config(config, out / CONFIG)
    (out / METRICS).write_text("", encoding="utf-8")  # a fresh log per run


def train(config: Config, out_dir: str | Path, resume: bool = False, overwrite: bool = False) -> dict:
    """Train, select on validation, test; returns the results written to results.json.

    `out_dir` must be new or empty unless `resume` (continue it) or `overwrite` (replace the
    run in it); the main process holds its lock while the run writes (zsmie.run_folder)."""
    out = Path(out_dir)
    if config.text.precision != "fp32":
        raise ConfigError(f"text.precision = {config.text.precision!r}: training runs in fp32; "
                          "int8 is for inference (predict, serve, evaluate --precision int8)")
    accelerator = make_accelerator(config)
    main = accelerator.is_main_process
    with stopped_by_sigterm(out), (claim_run(out, resume, overwrite) if main
                                   else contextlib.nullcontext()):
        return _train(config, out, resume, accelerator)


STOPPED_BY_SIGTERM = 128 + signal.SIGTERM  # the exit status of a run stopped by SIGTERM


@contextlib.contextmanager
def stopped_by_sigterm(out: Path):
    """While training: SIGTERM logs that the run stopped and how to resume it, then exits
    with status 143 (the run folder's lock is released on the way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame) -> None:
        log.warning("stopped by SIGTERM: %s keeps its last complete epoch's checkpoint; continue "
                    "with `zsmie train --out %s --resume`", out, out)
        raise SystemExit(STOPPED_BY_SIGTERM)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _train(config: Config, out: Path, resume: bool, accelerator) -> dict:
    start = time.time()
    main = accelerator.is_main_process
    set_seed(config.seed)
    start_run(config, out, resume, main)
    with accelerator.main_process_first():  # the others then read the feature cache it wrote
        prepared: Prepared = prepare(config, accelerator.device)
    if main:
        atomic_write_json(out / DATA, prepared.data_summary())
    head = prepared.model.head
    params = [p for p in prepared.model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params or [torch.zeros(0, requires_grad=True)],
                                 lr=config.train.lr, weight_decay=config.train.weight_decay)
    data = loaders(prepared, config)
    model, optimizer, train_loader, val_loader, test_loader = accelerator.prepare(
        prepared.model, optimizer, data["train"], data["val"], data["test"]
    )
    core = accelerator.unwrap_model(model)
    penalty = None
    if config.train.l2sp > 0:
        penalty = L2SP(core, robust.initial_weights(config), config.train.l2sp)
    state = load_checkpoint(out, core, optimizer) if resume else TrainState()
    if resume:
        log.info("resuming %s after epoch %d (best %d)", out, state.epoch, state.best_epoch)
        if main:
            trim_metrics(out / METRICS, state.epoch)
    cache: dict = {}
    train_texts = prepared.texts("train")

    def train_prototypes(kept: torch.Tensor | None) -> torch.Tensor:
        """Prototypes [C', d] of the kept training labels (None: all); a frozen encoder's are
        encoded once (label_prototypes caches them) and the kept rows taken."""
        if kept is None or not core.text.finetune:
            every = label_prototypes(core, train_texts, cache)
            return every if kept is None else every[kept.to(every.device)]
        return label_prototypes(core, train_texts.subset(kept.tolist()), cache)
    metadata = {"model": config.model.name, "text": core.text.identity}
    if not head.trainable:  # nothing to train: evaluated as built
        state.stopped = True
        if main:
            core.save(out / RUN_WEIGHTS, metadata)

    while not state.stopped and state.epoch < config.train.epochs:
        epoch = state.epoch + 1
        # Batches are a function of (seed, epoch), so a resumed run replays them exactly; the
        # prepared loader passes the epoch on to the sampler (and keeps its own count in step).
        train_loader.set_epoch(epoch)
        losses, diagnostics = train_epoch(
            model, head, optimizer, train_loader,
            train_prototypes, train_texts.types, accelerator, config, epoch, out, penalty,
        )
        val = evaluate_part(prepared, model, val_loader, "val", accelerator=accelerator, cache=cache)
        improved = val["f1"] > state.best_f1
        if improved:
            state.best_f1, state.best_epoch, state.waited = val["f1"], epoch, 0
            if main:
                core.save(out / RUN_WEIGHTS, metadata)
        else:
            state.waited += 1
        state.epoch = epoch
        state.stopped = state.waited >= config.train.patience
        if main:
            append_jsonl(out / METRICS, {
                "epoch": epoch,
                "steps": len(train_loader),
                "train": losses,
                "diagnostics": diagnostics,
                "val": {k: val[k] for k in SUMMARY},
                "best_epoch": state.best_epoch,
                "elapsed_s": round(time.time() - start, 2),
            })
            save_checkpoint(out, core, optimizer, state)
        log.info("epoch %d: train %s; val f1 %.4f acc %.4f%s", epoch, shown_terms(losses),
                 val["f1"], val["accuracy"], " (best)" if improved else "")
        if state.stopped:
            log.info("early stop: no validation gain for %d epochs", state.waited)

    accelerator.wait_for_everyone()
    core.load(out / RUN_WEIGHTS)
    chosen = None
    if robust.wanted(config):  # WiSE-FT / score ensembling, chosen on validation
        chosen = robust.choose(config, prepared, core, val_loader, accelerator, out)
    weight = chosen["ensemble_weight"] if chosen else config.model.ensemble_weight
    final = ensembled(core, config, weight)
    type_prior = None
    if config.train.type_search:  # the type-aware score, chosen on validation
        final, type_prior = choose_type_prior(config, prepared, final.to(accelerator.device),
                                              val_loader, accelerator, out)
    if final is not core:  # its prototypes are pairs: a fresh cache
        model, cache = final.to(accelerator.device), {}
    results = {
        "model": config.model.name,
        "task": config.task,
        "seed": config.seed,
        "best_epoch": state.best_epoch,
        "val": evaluate_part(prepared, model, val_loader, "val", accelerator=accelerator, cache=cache),
        "test": evaluate_part(prepared, model, test_loader, "test", accelerator=accelerator,
                              cache=cache),
        "data": prepared.data_summary(),
        "wall_time_s": round(time.time() - start, 2),
        "processes": accelerator.num_processes,
    }
    if chosen is not None:
        results["robust"] = chosen
    if type_prior is not None:
        results["type_prior"] = type_prior_summary(type_prior)
    if main:
        # Cheap (two passes over validation): the "none of these" threshold for `predict`.
        open_set = calibrate_prepared(prepared, accelerator.unwrap_model(model), out,
                                      accelerator.device)
        if open_set is not None:
            results["open_set"] = {k: open_set[k] for k in ("threshold", "macro_f1", "accuracy")}
        if config.protocol != "zero_shot":  # README, "Open world"
            results["open_world"] = evaluate_protocol_prepared(  # the final (ensembled) model
                prepared, accelerator.unwrap_model(model), config.protocol, out, accelerator.device)
        atomic_write_json(out / RESULTS, results)
    return results


def resume_run(run: str | Path) -> dict:
    """Continue a run folder from its last complete epoch (`zsmie train --out RUN --resume`)."""
    run = Path(run)
    if not (run / CONFIG).is_file():
        raise FileNotFoundError(f"{run}: no {CONFIG}; not a zsmie run folder")
    if (run / CHECKPOINT / CHECKPOINT_STATE).is_file():
        read_state(run / CHECKPOINT / CHECKPOINT_STATE)  # a damaged checkpoint: fail before the data
    return train(load_config(run / CONFIG), run, resume=True)
