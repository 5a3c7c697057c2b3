"""A run folder belongs to one run.

A new run needs a new or empty folder; `resume` continues the run in a folder, `overwrite`
replaces it (the old run's files are removed first, other files are left alone). While a run
writes, `RUN/.lock` holds its process id (created with O_EXCL), so a second writer stops with a
one-line error instead of interleaving its epochs with the first. A lock whose process is gone
(a run killed with SIGKILL) is stale and taken over. A run that fails before its first
checkpoint in a folder that was empty leaves the folder as it found it.

This module is the one place that spells the file names of a run folder and of a model folder
(`zsmie.pretrained` reads and writes them through these names):

- a model folder (`save_pretrained`): config.toml, model.safetensors, inference.json (everything
  the model's answers depend on besides config and weights) and README.md (the model card);
- a run folder (`zsmie train`): config.toml and the run's final weights in best.safetensors (the
  best epoch's, or after WiSE-FT the chosen interpolation), the answer records ensemble.json,
  type_prior.json and open_set.json when the run chose them, data.json (the split and label
  texts), results.json, metrics.jsonl, train.log and the training state (checkpoint/,
  finetuned.safetensors). Both load with `zsmie.pretrained.read_folder` / `from_pretrained`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from zsmie.errors import ZsmieError

log = logging.getLogger(__name__)
LOCK = ".lock"

# Both folders
CONFIG = "config.toml"
# A model folder (save_pretrained)
MODEL_WEIGHTS = "model.safetensors"
INFERENCE = "inference.json"  # ensemble weight, WiSE-FT alpha, type prior, open set, label texts
MODEL_CARD = "README.md"
MODEL_FILES = (CONFIG, MODEL_WEIGHTS, INFERENCE, MODEL_CARD)
# A run folder (zsmie train): the model in the run layout ...
RUN_WEIGHTS = "best.safetensors"  # the final weights (after WiSE-FT: the chosen interpolation)
ENSEMBLE = "ensemble.json"  # the score ensemble's weight chosen on validation
TYPE_PRIOR = "type_prior.json"  # the type prior chosen on validation
OPEN_SET = "open_set.json"  # the open-set threshold and its rule
DATA = "data.json"  # the split, sample counts, label texts
# ... and what training and evaluation leave beside it
RESULTS = "results.json"
METRICS = "metrics.jsonl"
TRAIN_LOG = "train.log"
CHECKPOINT = "checkpoint"  # the last complete epoch (zsmie.training.checkpoint), holding:
CHECKPOINT_STATE = "state.json"  # epoch, best F1, patience (written last: the commit point)
CHECKPOINT_WEIGHTS = "last.safetensors"  # trainable weights and RNG states
CHECKPOINT_OPTIMIZER = "optimizer.pt"  # the optimiser state
FINETUNED_WEIGHTS = "finetuned.safetensors"  # the fine-tuned end of a WiSE-FT interpolation
OPEN_PR = "open_pr.png"
ONNX = "onnx"  # int8-onnx exports of the text encoder, named by the weights' hash (both folders)
OPEN_WORLD_PROTOCOLS = ("open", "generalized")


def open_world_file(protocol: str) -> str:
    """The file of a run's open-world protocol result (`zsmie evaluate --protocol`)."""
    return f"open_world_{protocol}.json"


# What a copy of a run keeps of its training (an open-protocol twin of a zero-shot run).
TRAINED_FILES = (RUN_WEIGHTS, FINETUNED_WEIGHTS, ENSEMBLE, TYPE_PRIOR, DATA, METRICS, OPEN_SET,
                 TRAIN_LOG)
# Everything a run writes into its folder (what `overwrite` removes): a file left from the
# replaced run would be read as the new run's (ensemble.json sets the final model's mix).
RUN_FILES = (CONFIG, METRICS, DATA, RUN_WEIGHTS, RESULTS, OPEN_SET, TRAIN_LOG, CHECKPOINT,
             FINETUNED_WEIGHTS, ENSEMBLE, TYPE_PRIOR,
             *(open_world_file(p) for p in OPEN_WORLD_PROTOCOLS), OPEN_PR)
_YOUNG_S = 10.0  # a lock file this young without a pid in it is still being written


class RunFolderError(ZsmieError, ValueError):
    """A run folder that this run may not write (taken, not empty, not writable)."""


class ModelFolderError(ZsmieError, ValueError):
    """A model or run folder that cannot be read: a record that is not valid JSON, a field of
    the wrong kind (the message names the file and the field)."""


def read_record(path: Path, what: str) -> dict[str, Any] | None:
    """The JSON object in `path` (None when there is no such file); anything else is a
    one-line ModelFolderError naming the file. `what` names the record ("an open-set record")."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ModelFolderError(f"{path}: not {what} (not valid JSON, {reason})") from None
    if not isinstance(record, dict):
        raise ModelFolderError(f"{path}: not {what} (a JSON {type(record).__name__}, "
                               "expected an object)")
    return record


def copy_trained(source: Path, dest: Path, also: Iterable[str] = (),
                 leave_out: Iterable[str] = ()) -> None:
    """Copy what `source` keeps of its training (TRAINED_FILES, and `also`) into `dest`,
    without the files named in `leave_out`; a file `source` lacks is skipped."""
    leave_out = set(leave_out)
    for name in (*TRAINED_FILES, *also):
        if name not in leave_out and (source / name).is_file():
            shutil.copy2(source / name, dest / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _holder(lock: Path) -> int | None:
    """The pid written in `lock`, or None if it holds none (yet)."""
    with contextlib.suppress(OSError, ValueError):
        return int(lock.read_text(encoding="ascii").strip())
    return None


def take_lock(lock: Path, name: str | Path, what: str) -> bool:
    """Create `lock` (O_EXCL) with our pid, taking over a stale one; False if this process holds
    it already. `name` and `what` ("this run folder") word the error of a lock held by another."""
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _holder(lock)
            if pid == os.getpid():
                return False
            if pid is not None and _alive(pid):
                raise RunFolderError(
                    f"{name}: another zsmie process (pid {pid}) is writing {what}; "
                    "wait for it to finish or stop it") from None
            with contextlib.suppress(FileNotFoundError):
                if pid is None and time.time() - lock.stat().st_mtime < _YOUNG_S:
                    raise RunFolderError(f"{name}: another process is taking {what} "
                                         f"({lock} is being written)") from None
            log.warning("%s: taking over a stale lock (process %s is gone)", lock, pid)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        return True
    raise RunFolderError(f"{name}: could not take {lock}")


def _take_lock(run: Path) -> bool:
    """Create RUN/.lock with our pid; False if this process holds it already."""
    return take_lock(run / LOCK, run, "this run folder")


def remove_run_files(run: Path) -> None:
    """Remove what a run wrote into `run` (RUN_FILES); nothing else."""
    for name in RUN_FILES:
        path = run / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_run(run: str | Path, resume: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """Hold `run` for writing one run (see the module doc); nested claims by the same
    process (the CLI, then `train`) are free, the outer one checked the folder."""
    run = Path(run)
    created = not run.exists()
    try:
        run.mkdir(parents=True, exist_ok=True)
        owned = _take_lock(run)
    except OSError as exc:
        raise RunFolderError(f"{run}: cannot write this run folder ({exc.strerror or exc})") from None
    if not owned:
        yield run
        return
    fresh = False  # True once the folder holds no earlier run
    try:
        entries = sorted(p.name for p in run.iterdir() if p.name != LOCK)
        if entries and not (resume or overwrite):
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            raise RunFolderError(
                f"{run}: the folder is not empty ({shown}); add --resume (beside this --out) to "
                "continue the run in it, --overwrite to replace it, or choose another --out")
        if overwrite and entries:
            log.warning("%s: --overwrite: removing the previous run's files", run)
            remove_run_files(run)
        fresh = not entries or overwrite
        yield run
    except BaseException:
        if fresh and not (run / CHECKPOINT / CHECKPOINT_STATE).is_file():
            remove_run_files(run)  # nothing resumable: leave the folder as it was found
            if created:
                with contextlib.suppress(OSError):
                    (run / LOCK).unlink()
                    run.rmdir()
        raise
    finally:
        (run / LOCK).unlink(missing_ok=True)
