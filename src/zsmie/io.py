"""Atomic file writes: a reader never sees a half-written file, a crash never loses the old one.

Only regular files (and new paths) are replaced by the rename trick. A symlink is followed: its
target is what gets replaced, the link stays. Anything else that already exists at the path (a
FIFO, a device such as /dev/null or /dev/full, a socket) is opened and written through, never
replaced. A replaced file keeps its permission bits.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)
NEW_FILE_MODE = 0o666 & ~_UMASK  # the mode a new file gets here


def _write_error(path: Path, exc: OSError) -> OSError:
    """The same kind of OSError, naming the destination rather than a temporary file."""
    return OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")


DISK_FULL_SIGNS = ("no space left", "storagefull", "file write failed", "errno 28")


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """A writer's failure that is a full disk: ENOSPC, or a library's message for it (torch's
    `enforce fail ... file write failed`, safetensors' `StorageFull`) while the disk is full."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if not any(sign in str(exc).lower() for sign in DISK_FULL_SIGNS):
        return False
    try:
        return shutil.disk_usage(folder).free < (64 << 20)
    except OSError:
        return True


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, then rename over `path`.

    A symlink's target is replaced (the link is kept); an existing non-regular file (FIFO,
    device) is passed to `write` itself. Failures are OSErrors that name `path`.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # a symlink (chain) -> the file it points at
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _write_error(path, exc) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(21, f"cannot write {path}: it is a folder")
    try:
        if mode is not None and not stat.S_ISREG(mode):
            write(target)  # a FIFO or a device: written through, never replaced
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            write(tmp)
        except (RuntimeError, ValueError, OSError) as exc:  # a library's own message for ENOSPC
            if _disk_full(exc, target.parent):
                raise OSError(errno.ENOSPC, "no space left on the device (the disk is full)") from None
            raise
        # mkstemp makes 0600, and a writer may recreate the file (safetensors does, 0600 again):
        # give it the old file's mode, or the usual mode of a new file, once written
        os.chmod(tmp, stat.S_IMODE(mode) if mode is not None else NEW_FILE_MODE)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (metrics logs survive a crash)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_json_records(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of `path` as a dict (a metrics log; samples: zsmie.data.jsonl.read_jsonl)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
