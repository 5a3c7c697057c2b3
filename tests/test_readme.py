"""The README works as written.

The fast tests read README.md and docs/*.md: commands name the project's own interpreter and
entry points, run folders are made before they are used, links and anchors resolve.

The slow test runs the README's bash blocks in order, as written, in a copy of the repository
(so `runs/demo` and `posts.jsonl` land in the copy), with the copy's `src` on PYTHONPATH and
this interpreter's environment as `.venv`. The rule for which blocks run: every ```bash block
runs, except one right after a `<!-- readme-test: skip: REASON -->` line (installing, training
on MNRE for minutes, running the test suite itself); a block after `<!-- readme-test: server
-->` is started in the background on a free port (`--port` added) until its page answers,
then stopped. `make` is run with `-o .venv/.installed-stamp`, so it never installs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MARKER = re.compile(r"<!-- readme-test: (skip|server)\b:?\s*(.*?)\s*-->")


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    marker: str  # "", "skip" or "server"
    reason: str


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.search(lines[i - 1]) if i else None
        out.append(Block(fence.group(1), "\n".join(lines[i + 1:end]) + "\n", i + 1,
                         marker.group(1) if marker else "", marker.group(2) if marker else ""))
        i = end + 1
    return out


def commands(block: Block) -> list[str]:
    """The block's shell commands: continuation lines joined, comments and here-doc bodies
    dropped."""
    out, heredoc, current = [], None, ""
    for line in block.text.splitlines():
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if stripped.endswith("\\"):
            continue
        here = re.search(r"<<-?\s*'?(\w+)'?", current)
        heredoc = here.group(1) if here else None
        out.append(current)
        current = ""
    return out


def documents() -> list[Path]:
    return [README, *DOCS]


# --- fast: the documents' commands and links ------------------------------------------------

def test_the_readme_is_short_and_every_block_is_run_or_says_why_not():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 210
    bash = [b for b in blocks(README) if b.lang == "bash"]
    assert len([b for b in bash if b.marker != "skip"]) >= 3  # demo, posts + predict, serve
    for block in bash:
        assert block.marker != "skip" or block.reason, f"README.md:{block.line}: skip without a reason"


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_commands_use_the_project_environment(path):
    for block in blocks(path):
        if block.lang != "bash":
            continue
        for command in commands(block):
            where = f"{path.name}:{block.line}: {command[:80]}"
            first = command.split()[0]
            # `python benchmarks/x.py` fails with "No module named zsmie" outside the venv
            assert first not in ("python", "python3", "zsmie", "accelerate", "pip", "pytest"), where
            if "zsmie " in command and first.startswith(".venv/bin/"):
                assert first in (".venv/bin/zsmie", ".venv/bin/python", ".venv/bin/accelerate",
                                 ".venv/bin/pip"), where


def _created(path: Path) -> set[str]:
    """Run folders that the document's commands (or `make demo`) create."""
    text = path.read_text(encoding="utf-8")
    made = set(re.findall(r"--out (runs/[\w./-]+)", text))
    if "make demo" in text:
        made.add("runs/demo")
    return made


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_runs_and_posts_are_made_before_they_are_used(path):
    made_here = _created(README) | _created(path)
    posts_made = False
    for block in blocks(path):
        if block.lang != "bash":
            continue
        for command in commands(block):
            where = f"{path.name}:{block.line}: {command[:80]}"
            for run in re.findall(r"--run (runs/[\w./-]+)", command):
                # cells of an experiment grid live under the grid's `out` (runs/mre/...)
                assert run in made_here or run.startswith("runs/mre/"), f"{where}: {run} is never made"
            if re.search(r"cat > posts\.jsonl", command):
                posts_made = True
            elif "posts.jsonl" in command and path == README:
                assert posts_made, f"{where}: posts.jsonl is used before it is written"
    text = path.read_text(encoding="utf-8")
    if path != README and "posts.jsonl" in text:
        # a document that uses posts.jsonl writes it itself, or says where it comes from
        assert "cat > posts.jsonl" in text or "README" in text


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^#{1,6} (.+)$", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_links_and_anchors_resolve(path):
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code are not links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"https?://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: link to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{path.name}: link to {target}: no such heading"


def test_no_internal_words_in_user_documents():
    for path in documents():
        text = path.read_text(encoding="utf-8")
        for word in (r"\bissue \d+", r"\btargets? \d", r"method notes", r"lab notebook"):
            assert not re.search(word, text, re.I), f"{path.name}: {word}"


def test_the_citation_file_names_this_version_and_the_paper():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == project["version"] and cff["license"] == project["license"]
    assert cff["authors"] and cff["message"]
    [paper] = cff["references"]
    assert paper["title"].startswith("Multimodal Graph-based Variational Mixture of Experts")
    # the README's BibTeX entry names the same paper
    assert " ".join(paper["title"].split()) in " ".join(README.read_text(encoding="utf-8").split())


# --- slow: the README's commands, run as written ------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", ".pytest_cache",
                                    "*.egg-info", "posts.jsonl")
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    return dest


def _shown_output(readme_blocks: list[Block], after: Block) -> list[dict]:
    """The JSON lines the README shows right after a block."""
    following = readme_blocks[readme_blocks.index(after) + 1]
    assert following.lang == "json", f"README.md:{after.line}: no output shown after the block"
    return [json.loads(line) for line in following.text.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readme_commands_run_as_written(tmp_path):
    if not (Path(sys.prefix) / "bin" / "zsmie").exists():
        pytest.skip(f"no zsmie entry point in {sys.prefix}/bin (install the project first)")
    copy = _copy_repo(tmp_path / "zsmie")
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "CUDA_VISIBLE_DEVICES": ""}
    readme_blocks = blocks(README)
    ran = []
    for block in readme_blocks:
        if block.lang != "bash" or block.marker == "skip":
            continue
        text = re.sub(r"^make ", "make -o .venv/.installed-stamp ", block.text, flags=re.M)
        if block.marker == "server":
            [command] = commands(block)
            command = command.split(" #")[0] + f" --port {_free_port()}"
            _serve_until_the_page_answers(command, copy, env)
            ran.append(block.line)
            continue
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=copy, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (
            f"README.md:{block.line}: exit {result.returncode}\n{result.stdout[-2000:]}\n"
            f"{result.stderr[-3000:]}")
        ran.append(block.line)
        if any("zsmie predict" in c for c in commands(block)):
            shown = _shown_output(readme_blocks, block)
            got = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
            assert [p["id"] for p in got] == [p["id"] for p in shown]
            for mine, theirs in zip(got, shown, strict=True):
                assert mine["prediction"] == theirs["prediction"]
                assert [r["label"] for r in mine["ranked"]] == [r["label"] for r in theirs["ranked"]]
                for a, b in zip(mine["ranked"], theirs["ranked"], strict=True):
                    assert abs(a["score"] - b["score"]) < 0.25, (a, b)  # "may differ a little"
    assert (copy / "runs" / "demo" / "best.safetensors").is_file()
    assert len(ran) >= 3


def _serve_until_the_page_answers(command: str, cwd: Path, env: dict) -> None:
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    url = "http://127.0.0.1:" + command.rsplit(" ", 1)[1]
    deadline = time.time() + 300
    try:
        while True:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.time() < deadline, "the README's serve command did not answer in 300 s"
            try:
                page = httpx.get(f"{url}/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_demo_relations_the_readme_lists_are_the_demos():
    text = README.read_text(encoding="utf-8")
    listed = re.search(r"The demo's posts carry (\d+) relations: (.*?); labels it never saw",
                       text, re.S)
    assert listed, "the README no longer lists the demo's relations"
    names = set(re.findall(r"`([a-z_]+)`", listed.group(2)))
    demo = REPO / "src" / "zsmie" / "data" / "demo" / "mre_demo.jsonl"
    labels = {json.loads(line)["label"] for line in demo.read_text(encoding="utf-8").splitlines()}
    assert names == labels and int(listed.group(1)) == len(labels)
