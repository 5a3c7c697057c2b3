"""`zsmie data check`: read a whole JSONL data file and report every problem, not just the first.

Each line goes through the same parser training and prediction use (`parse_jsonl_line`), so a
file that checks clean also loads. On top of per-line errors the check reports repeated ids,
a file that mixes MRE and MET samples, and images that are missing or unreadable (counted
only, under `images="blank"`). Arbitrary bytes never crash it: whatever it cannot parse is a
problem with its line number.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from zsmie.choices import IMAGE_POLICIES
from zsmie.data.images import image_problem
from zsmie.data.jsonl import MAX_LINE_BYTES, iter_jsonl_lines, parse_jsonl_line
from zsmie.data.sample import DataError, Sample


@dataclass
class Problem:
    line: int  # 0: the file as a whole
    message: str


@dataclass
class CheckReport:
    path: str
    problems: list[Problem] = field(default_factory=list)
    lines: int = 0  # non-blank lines read
    samples: int = 0  # lines that parsed to a sample
    tasks: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    unlabelled: int = 0
    images: Counter = field(default_factory=Counter)  # ok | missing | unreadable | none given

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, line: int, message: str) -> None:
        self.problems.append(Problem(line, message))

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["ok"] = self.ok
        for key in ("tasks", "labels", "images"):
            data[key] = dict(sorted(getattr(self, key).items()))
        return data

    def format(self) -> str:
        """Every problem as `file:line: message`, then a summary."""
        name = Path(self.path).name
        rows = [f"{name}:{p.line}: {p.message}" if p.line else f"{name}: {p.message}"
                for p in self.problems]
        tasks = ", ".join(f"{k.upper()} {v}" for k, v in sorted(self.tasks.items())) or "none"
        images = ", ".join(f"{k} {v}" for k, v in sorted(self.images.items())) or "none"
        rows += [
            f"{self.path}: {self.samples} samples from {self.lines} lines; "
            f"{len(self.problems)} problem(s)",
            f"  tasks: {tasks}",
            f"  labels: {len(self.labels)} distinct"
            + "".join(f", {k} ({v})" for k, v in self.labels.most_common())
            + f"; without a label: {self.unlabelled}"
            + (" (fine for `predict`; training and evaluation need labels)"
               if self.unlabelled == self.samples and self.samples else ""),
            f"  images: {images}",
        ]
        return "\n".join(rows)


def _check_sample(sample: Sample, number: int, images: str, report: CheckReport) -> None:
    report.samples += 1
    report.tasks[sample.task] += 1
    if sample.label is None:
        report.unlabelled += 1
    else:
        report.labels[sample.label] += 1
    if sample.image is None:
        report.images["none given"] += 1
        return
    problem = image_problem(sample.image)
    kind = "ok" if problem is None else "missing" if problem == "missing" else "unreadable"
    report.images[kind] += 1
    if problem is not None and images == "error":
        report.add(number, f"field 'image' {sample.image!r:.120} is {problem}")


def check_jsonl(path: str | Path, images: str = "error",
                max_line_bytes: int = MAX_LINE_BYTES) -> CheckReport:
    """Check a JSONL data file line by line; `images="blank"` counts image problems only; a line
    longer than `max_line_bytes` is a problem (read in bounded pieces, never whole)."""
    if images not in IMAGE_POLICIES:
        raise DataError(f"images = {images!r}: expected 'error' or 'blank'")
    path = Path(path)
    report = CheckReport(str(path))
    if not path.is_file():
        report.add(0, "no such file")
        return report
    first_line: dict[str, int] = {}  # id -> line
    first_of_task: dict[str, int] = {}
    try:
        def long(number: int, size: int) -> None:
            report.lines += 1
            report.add(number, f"line longer than {max_line_bytes} bytes (about {size} bytes); "
                               "raise --max-line-bytes to read it")

        for number, raw in iter_jsonl_lines(path, max_line_bytes, long):
            report.lines += 1
            where = f"{path.name}:{number}"
            try:
                sample = parse_jsonl_line(raw, where, path.parent)
            except DataError as exc:
                report.add(number, str(exc).removeprefix(f"{where}: "))
                continue
            except Exception as exc:  # a checker reports, it does not crash (tests fuzz for these)
                report.add(number, f"internal error while checking: {type(exc).__name__}: {exc}")
                continue
            _check_sample(sample, number, images, report)
            first_of_task.setdefault(sample.task, number)
            if sample.source != sample.id:  # an explicit id: must be unique
                if sample.id in first_line:
                    report.add(number, f"id {sample.id!r} already used on line {first_line[sample.id]}")
                else:
                    first_line[sample.id] = number
    except OSError as exc:
        report.add(0, f"cannot be read ({exc})")
    if len(report.tasks) > 1:  # the first sample sets the file's task
        other = max(first_of_task, key=first_of_task.__getitem__)
        report.add(
            first_of_task[other],
            f"the file mixes MRE ({report.tasks['mre']}) and MET ({report.tasks['met']}) samples; "
            f"the first {other.upper()} sample is here (one task per file)",
        )
    report.problems.sort(key=lambda problem: problem.line)
    if report.lines and not report.samples:
        report.add(0, "no usable samples")
    elif not report.lines:
        report.add(0, "empty file (no samples)")
    return report
