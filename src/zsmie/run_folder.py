"""A run folder belongs to one run.

A new run needs a new or empty folder; `resume` continues the run in a folder, `overwrite`
replaces it (the old run's files are removed first, other files are left alone). While a run
writes, `RUN/.lock` holds its process id (created with O_EXCL), so a second writer stops with a
one-line error instead of interleaving its epochs with the first. A lock whose process is gone
(a run killed with SIGKILL) is stale and taken over. A run that fails before its first
checkpoint in a folder that was empty leaves the folder as it found it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from zsmie.errors import ZsmieError

log = logging.getLogger(__name__)
LOCK = ".lock"
# Everything a run writes into its folder (what `overwrite` removes): a file left from the
# replaced run would be read as the new run's (ensemble.json sets the final model's mix).
RUN_FILES = ("config.toml", "metrics.jsonl", "data.json", "best.safetensors", "results.json",
             "open_set.json", "train.log", "checkpoint", "finetuned.safetensors", "ensemble.json",
             "type_prior.json",
             "open_world_open.json", "open_world_generalized.json", "open_pr.png")
_YOUNG_S = 10.0  # a lock file this young without a pid in it is still being written


class RunFolderError(ZsmieError, ValueError):
    """A run folder that this run may not write (taken, not empty, not writable)."""


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
        if fresh and not (run / "checkpoint" / "state.json").is_file():
            remove_run_files(run)  # nothing resumable: leave the folder as it was found
            if created:
                with contextlib.suppress(OSError):
                    (run / LOCK).unlink()
                    run.rmdir()
        raise
    finally:
        (run / LOCK).unlink(missing_ok=True)
