"""`zsmie predict` at scale: a JSONL file scored chunk by chunk, each chunk written when done.

Memory is bounded by the chunk size, not the input. Output goes to `OUTPUT.partial` (with
the run's settings in `OUTPUT.partial.json`) and is renamed to OUTPUT only when complete; a
killed run rerun with `resume=True` cuts a torn last line and continues after the last
complete one. Under `accelerate launch` (or torchrun) chunk i is scored by process
i mod N and the main process writes the chunks in input order: the lines are those of one
process, chunk for chunk the same batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import IO

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object
from tqdm.auto import tqdm

from zsmie.data.jsonl import MAX_LINE_BYTES, bounded_lines, iter_jsonl_lines, parse_jsonl_line
from zsmie.data.sample import DataError
from zsmie.inference.extractor import (
    Descriptions,
    LabelSet,
    Prediction,
    ZeroShotExtractor,
    warn_repeated_ids,
)
from zsmie.io import NEW_FILE_MODE, atomic_write_json
from zsmie.run_folder import RunFolderError, take_lock

log = logging.getLogger(__name__)
CHUNK_SIZE = 1024
STDIN = "-"  # the input read from standard input
Lines = list[tuple[int, bytes]]  # (line number, raw line) of non-blank input lines


def destination(output: Path) -> Path:
    """The file a finished output replaces: a symlink's target (the link stays)."""
    return Path(os.path.realpath(output))


def written_through(output: Path) -> bool:
    """An existing FIFO, device or socket: lines are written to it as they come, never replaced
    (no partial file, no resume)."""
    try:
        mode = os.stat(output).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _beside(output: Path, suffix: str) -> Path:
    """The file named after `output`'s destination plus `suffix`, in its folder."""
    target = destination(output)
    return target.with_name(target.name + suffix)


def partial_path(output: Path) -> Path:
    return _beside(output, ".partial")


def settings_path(output: Path) -> Path:
    return _beside(output, ".partial.json")


def lock_path(output: Path) -> Path:
    """Held (with the writer's pid) while a predict writes `output`: a second writer is refused."""
    return _beside(output, ".lock")


def done_path(output: Path) -> Path:
    """A finished output's settings and input fingerprint (what `--resume` compares)."""
    return _beside(output, ".settings.json")


def finish(output: Path, record: dict | None = None) -> None:
    """Rename the complete partial file over the destination, keeping an old file's mode;
    `record` (settings and input fingerprint) is kept in OUTPUT.settings.json."""
    target, partial = destination(output), partial_path(output)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    os.chmod(partial, mode)
    os.replace(partial, target)
    settings_path(output).unlink(missing_ok=True)
    if record is not None:
        done = os.stat(target)
        atomic_write_json(done_path(output), {**record, "output_bytes": done.st_size,
                                              "output_mtime_ns": done.st_mtime_ns})


def _line_key(raw: bytes) -> bytes:
    return raw.strip() + b"\n"


def input_fingerprint(path: Path, lines: int | None = None, max_line_bytes: int = MAX_LINE_BYTES):
    """sha256 over the first `lines` samples (non-blank lines, surrounding spaces dropped) of a
    JSONL file, all of them when None; also how many there were."""
    digest, count = hashlib.sha256(), 0
    for _, raw in islice(iter_jsonl_lines(path, max_line_bytes), lines):
        digest.update(_line_key(raw))
        count += 1
    return digest, count


def _differs(saved: dict, settings: dict) -> str | None:
    for key, value in settings.items():
        if saved.get(key) != value:
            return f"{key} = {saved.get(key)!r}, not {value!r}"
    return None


def check_finished(input_path: Path, output: Path, settings: dict,
                   max_line_bytes: int = MAX_LINE_BYTES) -> None:
    """A finished output rerun with --resume: an error if its recorded settings or input differ
    (a record that no longer describes the file, or none, is not read)."""
    try:
        saved = json.loads(done_path(output).read_text(encoding="utf-8"))
        now = os.stat(destination(output))
        current = (saved["output_bytes"] == now.st_size
                   and saved["output_mtime_ns"] == now.st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError):
        current = False
    if not current:
        log.info("%s is complete: nothing to resume", output)
        return
    if (differs := _differs(saved, settings)) is not None:
        raise DataError(f"{output} is complete, written with {differs}; rerun without --resume "
                        "to replace it")
    digest, count = input_fingerprint(input_path, None, max_line_bytes)
    if count != saved.get("consumed") or digest.hexdigest() != saved.get("sha256"):
        raise DataError(f"{output} is complete, but {input_path} changed since it was written "
                        f"({count} samples, other sha256); rerun without --resume to replace it")
    log.info("%s is complete: nothing to resume", output)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if str(a) == STDIN:  # stdin redirected from the output file
            return os.path.samestat(os.fstat(sys.stdin.fileno()), os.stat(b))
        return os.path.samefile(a, b)
    except (OSError, ValueError, AttributeError):  # one of them does not exist (yet)
        return False


def read_once(path: Path) -> bool:
    """`-` (stdin), a FIFO or a device such as /dev/stdin: read as it comes, once (no progress
    total, no --resume, one process)."""
    if str(path) == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _input_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    if str(path) == STDIN:
        return bounded_lines(sys.stdin.buffer, "stdin", max_line_bytes)
    return iter_jsonl_lines(path, max_line_bytes)


def _input_name(path: Path) -> str:
    return "stdin" if str(path) == STDIN else path.name


def _check_not_input(input_path: Path, output: Path) -> None:
    """Refuse an output that is the input (the same file, also through a link or a hard link):
    writing it would overwrite the samples being read."""
    for path in (output, partial_path(output), settings_path(output)):
        if _same_file(input_path, path):
            raise DataError(f"--output {output}: writing {path} would overwrite the --input file "
                            f"{input_path}; choose another --output")


def count_samples(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> int:
    """Non-blank lines of a JSONL file (the progress bar's total), read in constant memory."""
    return sum(1 for _ in iter_jsonl_lines(path, max_line_bytes))


def _chunks(path: Path, skip: int, size: int, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Lines]:
    lines = islice(_input_lines(path, max_line_bytes), skip, None)
    while chunk := list(islice(lines, size)):
        yield chunk


def _line_id(raw: bytes, where: str) -> str | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return str(record.get("id", where)) if isinstance(record, dict) else None


def resume_point(input_path: Path, output: Path, settings: dict,
                 max_line_bytes: int = MAX_LINE_BYTES) -> int:
    """Complete lines already in OUTPUT.partial (a torn last line is cut off), after checking
    that they were written by these settings from this input; 0 when there is none."""
    partial = partial_path(output)
    if not partial.is_file():
        return 0
    try:
        saved = json.loads(settings_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(f"{settings_path(output)}: missing or unreadable, so {partial} cannot be "
                        "resumed; rerun without --resume to start over") from None
    if (differs := _differs(saved, settings)) is not None:
        raise DataError(f"{partial} was written with {differs}; "
                        "rerun with the same settings, or without --resume to start over")
    complete, end, last = 0, 0, b""
    with open(partial, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            complete, end, last = complete + 1, end + len(line), line
    if end < partial.stat().st_size:
        log.info("%s: cutting a torn last line (%d bytes)", partial, partial.stat().st_size - end)
        os.truncate(partial, end)
    consumed = saved.get("consumed")  # absent: written before fingerprints, ids checked only
    if isinstance(consumed, int) and consumed > complete:
        raise DataError(f"{settings_path(output)} records {consumed} lines written, {partial} has "
                        f"{complete}; rerun without --resume to start over")
    if isinstance(consumed, int):
        digest, count = input_fingerprint(input_path, consumed, max_line_bytes)
        if count < consumed or digest.hexdigest() != saved.get("sha256"):
            raise DataError(f"{input_path}: its first {consumed} samples changed since {partial} "
                            "was written from them (other sha256); rerun without --resume to "
                            "start over")
    if complete:
        where = next(islice(iter_jsonl_lines(input_path, max_line_bytes), complete - 1, None), None)
        expected = _line_id(where[1], f"{input_path.name}:{where[0]}") if where else None
        if expected is None or _line_id(last, "") != expected:
            raise DataError(f"{partial}: its line {complete} (id {_line_id(last, '')!r}) is not "
                            f"the prediction of sample {complete} of {input_path}; rerun without "
                            "--resume to start over")
    return complete


def _score(extractor: ZeroShotExtractor, path: Path, chunk: Lines, label_set: LabelSet,
           images: str, seen_ids: set[str]) -> list[Prediction] | str:
    """One chunk's predictions, or its first problem as a message (raised by every process)."""
    try:
        samples = [parse_jsonl_line(raw, f"{_input_name(path)}:{n}", path.parent)
                   for n, raw in chunk]
        samples = extractor.samples(samples)
        warn_repeated_ids(samples, seen_ids)
        return extractor.rank(samples, label_set, images=images)
    except DataError as exc:
        return str(exc)


def scored_chunks(
    extractor: ZeroShotExtractor, path: Path, label_set: LabelSet, *, images: str = "error",
    chunk_size: int = CHUNK_SIZE, skip: int = 0, state: PartialState | None = None,
    image_counts: Counter | None = None, consumed=None, max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[list[Prediction]]:
    """Predictions chunk by chunk, in input order, after the first `skip` samples; chunks are
    shared round-robin between the processes of `state`, and every process yields them all.
    `consumed` (a hashlib object) is updated with each chunk's input lines before it is yielded."""
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    chunks = _chunks(path, skip, chunk_size, max_line_bytes)
    seen_ids: set[str] = set()
    while batch := list(islice(chunks, world)):
        mine = _score(extractor, path, batch[rank], label_set, images, seen_ids) if rank < len(batch) else []
        if image_counts is not None and rank < len(batch):
            image_counts.update(extractor.last_image_report)
        results = gather_object([mine]) if world > 1 else [mine]
        for lines, result in zip(batch, results[: len(batch)], strict=True):
            if isinstance(result, str):
                raise DataError(result)
            if consumed is not None:
                for _, raw in lines:
                    consumed.update(_line_key(raw))
            yield result


def _write(handle: IO[str], predictions: Sequence[Prediction]) -> None:
    handle.write("".join(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in predictions))
    handle.flush()


def predict_file(
    run_dir: str | Path,
    input_path: str | Path,
    labels: Sequence[str],
    *,
    descriptions: Descriptions = None,
    top_k: int = 5,
    open_set: bool = False,
    images: str = "error",
    output: str | Path | None = None,
    chunk_size: int = CHUNK_SIZE,
    resume: bool = False,
    progress: bool = True,
    precision: str | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> int:
    """`zsmie predict`: one JSON line per sample of a JSONL file, in order, to `output` (or
    stdout), streamed; returns the number of lines written by this call. `precision`: the
    text encoders' (fp32 | int8; None: the run's)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size = {chunk_size}: must be at least 1")
    if max_line_bytes < 1:
        raise ValueError(f"--max-line-bytes = {max_line_bytes}: must be at least 1")
    input_path = Path(input_path)
    output = Path(output) if output is not None else None
    if resume and output is None:
        raise DataError("--resume continues an --output file: give --output")
    direct = output is not None and written_through(output)
    if resume and direct:
        raise DataError(f"--resume continues a regular --output file; {output} is a FIFO or "
                        "a device, written through")
    once = read_once(input_path)
    if input_path.is_dir():
        raise DataError(f"{input_path}: is a directory, not a JSONL input file")
    if not once and not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such input file")
    if resume and once:
        raise DataError(f"--resume reads the --input again, and {_input_name(input_path)} is read "
                        "once (stdin, a FIFO or a device): give a file")
    if output is not None:
        _check_not_input(input_path, output)
    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes: gloo
    main = state.is_main_process
    if once and state.num_processes > 1:
        raise DataError(f"{_input_name(input_path)} is read once, by one process: give a file "
                        "to share the input between processes")
    extractor = ZeroShotExtractor.from_pretrained(run_dir, device=state.device, precision=precision)
    label_set = extractor.label_set(labels, descriptions=descriptions, top_k=top_k,
                                    open_set=open_set)
    settings = {"run": os.path.abspath(run_dir), "input": os.path.abspath(input_path),
                "labels": list(label_set.labels), "texts": list(label_set.texts),
                "top_k": top_k, "open_set": open_set, "images": images}
    if extractor.precision != "fp32":  # fp32 outputs keep the settings they always had
        settings["precision"] = extractor.precision
    if output is not None and resume and output.is_file() and not partial_path(output).exists():
        check_finished(input_path, output, settings, max_line_bytes)
        return 0
    start: int | str = 0
    locked = False
    try:
        if main and output is not None and not direct:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                locked = take_lock(lock_path(output), output, f"this output ({lock_path(output)})")
                fresh = not (resume and partial_path(output).is_file())
                start = 0 if fresh else resume_point(input_path, output, settings, max_line_bytes)
                if fresh:
                    if partial_path(output).exists():
                        log.warning("%s: starting over (--resume continues it)", partial_path(output))
                    partial_path(output).write_bytes(b"")
                    atomic_write_json(settings_path(output), {**settings, "consumed": 0,
                                                              "sha256": hashlib.sha256().hexdigest()})
            except (DataError, RunFolderError, OSError) as exc:
                start = (f"cannot write {output}: {exc.strerror or exc}" if isinstance(exc, OSError)
                         else str(exc))
        if state.num_processes > 1:
            start = broadcast_object_list([start])[0]
        if isinstance(start, str):
            raise DataError(start)
        return _predict_rest(extractor, input_path, label_set, images=images, output=output,
                             direct=direct, chunk_size=chunk_size, start=start, state=state,
                             progress=progress, settings=settings, max_line_bytes=max_line_bytes)
    finally:
        if locked:
            lock_path(output).unlink(missing_ok=True)


def _predict_rest(extractor: ZeroShotExtractor, input_path: Path, label_set: LabelSet, *,
                  images: str, output: Path | None, direct: bool, chunk_size: int, start: int,
                  state: PartialState, progress: bool, settings: dict,
                  max_line_bytes: int = MAX_LINE_BYTES) -> int:
    """predict_file after its output is held and its resume point known. After each chunk is
    on disk, OUTPUT.partial.json records how many input lines it holds and their sha256."""
    main = state.is_main_process
    record = main and output is not None and not direct
    consumed = ((input_fingerprint(input_path, start, max_line_bytes)[0] if start else hashlib.sha256())
                if record else None)
    if start:
        log.info("resuming %s after its %d complete lines", partial_path(output), start)
    total = (None if read_once(input_path)
             else (count_samples(input_path, max_line_bytes) - start if main else 0))
    counts: Counter = Counter()
    bar = tqdm(total=total, unit=" samples", desc="predict", dynamic_ncols=True,
               disable=not (main and progress and sys.stderr.isatty()))
    # One process: the bar moves with each model batch (a chunk of 1,024 samples takes a while
    # on a CPU); several: with each chunk written, the others' batches being out of sight.
    per_batch = state.num_processes == 1
    if per_batch:
        extractor.on_batch = bar.update
    written = 0
    handle = None
    if main and output is not None:
        handle = open(output if direct else partial_path(output), "a", encoding="utf-8")
    try:
        for predictions in scored_chunks(extractor, input_path, label_set, images=images,
                                         chunk_size=chunk_size, skip=start, state=state,
                                         image_counts=counts, consumed=consumed,
                                         max_line_bytes=max_line_bytes):
            if main:
                if handle is not None:
                    _write(handle, predictions)
                    if record:
                        os.fsync(handle.fileno())
                        atomic_write_json(settings_path(output), {
                            **settings, "consumed": start + written + len(predictions),
                            "sha256": consumed.hexdigest()})
                else:
                    _write(sys.stdout, predictions)
            written += len(predictions)
            if not per_batch:
                bar.update(len(predictions))
    finally:
        extractor.on_batch = None
        bar.close()
        if handle is not None:
            handle.close()
    if record:
        finish(output, {**settings, "consumed": start + written, "sha256": consumed.hexdigest()})
    state.wait_for_everyone()
    log.info("%d predictions (%d process%s); %s", written, state.num_processes,
             "" if state.num_processes == 1 else "es", _image_note(counts, state.num_processes))
    return written


def _image_note(counts: Counter, processes: int) -> str:
    """The images of this process's samples, in words (from ZeroShotExtractor.last_image_report)."""
    where = "" if processes == 1 else " (this process)"
    if "with_image" not in counts:
        return f"images: none read{where}, the run reads text only"
    return (f"images{where}: {counts['with_image']} of {counts['samples']} samples scored with "
            f"their image, {counts['no_image_given']} had none, {counts['unusable_image']} an "
            "unusable one")
