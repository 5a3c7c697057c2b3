"""End-of-epoch checkpoints for `zsmie train --out RUN --resume`.

`RUN/checkpoint/` holds the trainable weights and RNG states (safetensors), the optimiser
state (torch.save, read back with weights_only=True: no code is ever unpickled) and
`state.json` (epoch, best F1, patience counter). Every file is written atomically and
`state.json` last: it is the commit point, so a run killed anywhere resumes from the last
complete epoch, and replays the interrupted one exactly.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from zsmie.errors import CheckpointError
from zsmie.io import atomic_write, atomic_write_json, read_json_records
from zsmie.models.pipeline import read_weights
from zsmie.run_folder import (
    CHECKPOINT,
    CHECKPOINT_OPTIMIZER,
    CHECKPOINT_STATE,
    CHECKPOINT_WEIGHTS,
)


@dataclass
class TrainState:
    epoch: int = 0  # last completed epoch
    best_f1: float = -1.0
    best_epoch: int = 0
    waited: int = 0  # epochs without validation gain
    stopped: bool = False  # early stopping fired


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda{i}"] = s
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = [state[k] for k in sorted(state) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(run: Path, model, optimizer, state: TrainState) -> None:
    folder = run / CHECKPOINT
    weights = {f"model.{k}": v for k, v in model.trainable_state_dict().items()}
    weights.update({f"rng.{k}": v for k, v in rng_state().items()})
    atomic_write(folder / CHECKPOINT_WEIGHTS, lambda tmp: save_file(weights, str(tmp)))
    atomic_write(folder / CHECKPOINT_OPTIMIZER, lambda tmp: torch.save(optimizer.state_dict(), tmp))
    atomic_write_json(folder / CHECKPOINT_STATE, asdict(state))


def read_state(path: Path) -> TrainState:
    """`state.json` as a TrainState; a damaged file is a CheckpointError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        state = TrainState(**data)
    except (ValueError, TypeError) as exc:  # bad JSON or UTF-8, or the wrong fields
        raise CheckpointError(f"{path}: not a checkpoint state ({type(exc).__name__}); the checkpoint "
                        "is damaged: start the run again with --overwrite") from None
    fields = asdict(state)
    if not all(isinstance(v, int | float) and not isinstance(v, str) for v in fields.values()):
        raise CheckpointError(f"{path}: not a checkpoint state (fields {fields})")
    return state


def load_checkpoint(run: Path, model, optimizer) -> TrainState:
    """Restore weights, optimiser and RNG; a run without a checkpoint starts at epoch 0."""
    folder = run / CHECKPOINT
    if not (folder / CHECKPOINT_STATE).is_file():
        return TrainState()
    state = read_state(folder / CHECKPOINT_STATE)
    tensors = read_weights(folder / CHECKPOINT_WEIGHTS)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_trainable(weights, str(folder / CHECKPOINT_WEIGHTS))
    try:
        optimizer.load_state_dict(torch.load(folder / CHECKPOINT_OPTIMIZER, weights_only=True))
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{folder / CHECKPOINT_OPTIMIZER}: not this run's optimiser state "
                        f"({type(exc).__name__}); the checkpoint is damaged") from None
    set_rng_state({k[4:]: v for k, v in tensors.items() if k.startswith("rng.")})
    return state


def trim_metrics(path: Path, last_epoch: int) -> None:
    """Drop metrics lines of epochs after the checkpoint (an epoch that is replayed)."""
    if not path.is_file():
        return
    kept = [r for r in read_json_records(path) if r.get("epoch", 0) <= last_epoch]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
