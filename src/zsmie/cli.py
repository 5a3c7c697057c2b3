"""The `zsmie` command. Thin: parses options and calls the library."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from importlib import resources
from pathlib import Path

import typer
from tqdm.auto import tqdm
from typer.core import TyperCommand, TyperGroup

from zsmie.choices import DATA_FORMATS, DEVICES, IMAGE_POLICIES, PRECISIONS, PROTOCOLS, TASKS
from zsmie.config import ConfigError, load_config
from zsmie.data.sample import DataError
from zsmie.display import shown
from zsmie.errors import ZsmieError
from zsmie.run_folder import MODEL_FILES, TRAIN_LOG, ModelFolderError, claim_run


class _HelpFlag:
    """`--help` is a flag: no value placeholder beside it in the help."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class _Command(_HelpFlag, TyperCommand):
    pass


class _Group(_HelpFlag, TyperGroup):
    pass


app = typer.Typer(
    cls=_Group, add_completion=False, no_args_is_help=True,
    help="Zero-shot multimodal information extraction: rank relation or entity-type labels that "
         "were never seen in training for posts (text and image). Train a run with `demo` or "
         "`train`, then use it with `predict` or `serve`.",
)
# OSError: files that cannot be read or written (the messages name them).
# ZsmieError: every one-line error of zsmie (config, data, checkpoint, encoder, run folder).
USER_ERRORS = (ZsmieError, OSError)
RESUME_HELP = ("continue the run in OUT from its last epoch checkpoint, with its saved config.toml "
               "(after a crash or a kill)")
OVERWRITE_HELP = "replace the run in a non-empty OUT (without it a non-empty OUT is refused)"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"zsmie {version('zsmie')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("zsmie (not installed: no version metadata)")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 metavar="", help="print the installed version and exit"),
) -> None:
    pass


class _AboveProgressBars(logging.StreamHandler):
    """Log lines through tqdm.write: each on its own line above a progress bar, which is
    redrawn below it (a plain stream handler writes into the bar's line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own rule: a handler never raises
            self.handleError(record)


def _setup_logging(run_dir: Path | None = None) -> None:
    handlers: list[logging.Handler] = [_AboveProgressBars(sys.stderr)]
    if run_dir is not None and _main_process():  # the others must not write before its claim
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(run_dir / TRAIN_LOG, encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers, force=True,
    )
    for noisy in ("httpx", "accelerate", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def _main_process() -> bool:
    """False in the other processes of a distributed launch (torchrun sets RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def _claim(run: Path, resume: bool, overwrite: bool):
    """Hold the run folder before its train.log opens (the other processes of a distributed
    launch leave it to the main one)."""
    return claim_run(run, resume, overwrite) if _main_process() else contextlib.nullcontext()


def _resume(run: Path) -> dict:
    from zsmie.training.trainer import resume_run

    return resume_run(run)


class _ResumeCommand(_Command):
    """`--resume` is a flag beside `--out` (`train --out RUN --resume`); the older form
    `--resume RUN` (or `--resume=RUN`) still works and reads as `--out RUN --resume`."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg.startswith("--resume="):
                run = arg.split("=", 1)[1]
            elif arg == "--resume" and i + 1 < len(args) and not args[i + 1].startswith("-"):
                run = args.pop(i + 1)
            else:
                continue
            if any(a == "--out" or a.startswith("--out=") for a in args):
                _fail(ConfigError(f"--resume {run} names the run folder and so does --out: "
                                  "give it once, as --out RUN --resume"))
            args[i:i + 1] = ["--out", run, "--resume"]
            break
        return super().parse_args(ctx, args)


# No "[...]" in help texts: the help's rich markup takes square brackets for a style and drops
# them with their text.
PRECISION_HELP = ("fp32 | int8 | int8-onnx: int8 runs the text encoders' linear layers as "
                  "dynamically quantised int8 on the CPU (faster, scores drift slightly; see "
                  "docs/usage.md); int8-onnx runs them through ONNX Runtime in int8, quantised "
                  "per token (exported once into the run's onnx/ folder) "
                  "(default: the run's text.precision, fp32)")


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> str:
    """An option with a fixed set of values, checked before anything loads; the error names the
    option as typed, not the config key or library argument it becomes."""
    if value not in allowed:
        raise ConfigError(f"{flag} {value!r}: expected one of {', '.join(allowed)}")
    return value


def _precision(value: str | None) -> str | None:
    """--precision checked before anything loads (None: the run's own)."""
    return None if value is None else _choice("--precision", value, PRECISIONS)


def _print_json(data: dict) -> None:
    """A command's closing summary, its scores to 4 decimals (the run's files keep them whole)."""
    if _main_process():
        typer.echo(json.dumps(shown(data), indent=2))


@app.command(cls=_Command)
def splits(
    task: str = typer.Option("mre", help="mre or met"),
    data_dir: Path = typer.Option(..., help="dataset folder"),
    seed: int = typer.Option(0, help="split seed (MET: run 0, 1 or 2)"),
    data_format: str = typer.Option(
        "", "--format", help="the dataset's format: mnre | wikidiverse | jsonl | demo "
        "(default: mnre for --task mre, wikidiverse for --task met)"),
) -> None:
    """Print the zero-shot label split as JSON: {"train": [...], "val": [...], "test": [...]}."""
    from zsmie.data.datasets import load_samples
    from zsmie.data.splits import make_label_split

    try:
        _choice("--task", task, TASKS)
        fmt = _choice("--format", data_format or {"mre": "mnre", "met": "wikidiverse"}[task],
                      DATA_FORMATS)
        overrides = [f'task="{task}"', f'data.format="{fmt}"', f"seed={seed}"]
        config = load_config(None, overrides)
        config.data.dir = str(data_dir)
        samples = load_samples(config)
        _print_json(make_label_split(config.task, samples, seed).as_dict())
    except USER_ERRORS as exc:
        _fail(exc)


@app.command(cls=_ResumeCommand)
def train(
    config: Path | None = typer.Option(None, help="TOML config file"),
    out: Path | None = typer.Option(None, help="run folder to write"),
    data_dir: Path | None = typer.Option(None, help="dataset folder (sets data.dir)"),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="change one config setting, e.g. train.epochs=3 (repeatable)"),
    resume: bool = typer.Option(False, "--resume", metavar="", help=RESUME_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help=OVERWRITE_HELP),
) -> None:
    """Train a model, select it on validation, and write test metrics to OUT/results.json."""
    from zsmie.training.trainer import NonFiniteLoss
    from zsmie.training.trainer import train as run_training

    if out is None or (config is None and not resume):
        _fail(ConfigError("train needs --config and --out (or --out RUN --resume to continue a run)"))
    try:
        if resume and (config is not None or set_ or data_dir is not None or overwrite):
            raise ConfigError("--resume continues a run with its saved config.toml; "
                              "--config, --set, --data-dir and --overwrite are not accepted with it")
        with _claim(out, resume, overwrite):
            _setup_logging(out)
            if resume:
                results = _resume(out)
            else:
                cfg = load_config(config, set_, set_flag="--set")
                if data_dir is not None:
                    cfg.data.dir = str(data_dir)
                results = run_training(cfg, out, overwrite=overwrite)
    except (*USER_ERRORS, NonFiniteLoss) as exc:
        _fail(exc)
    _print_json({"run": str(out), "best_epoch": results["best_epoch"], "test": _brief(results)})


@app.command(cls=_Command)
def evaluate(
    run: Path = typer.Option(..., help="a finished run folder, or a model folder (save_pretrained)"),
    data_dir: Path | None = typer.Option(None, help="dataset folder, if it moved"),
    set_: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE",
        help="change an evaluation-time setting, e.g. model.force_expert=3 (repeatable)"
    ),
    protocol: str = typer.Option(
        "zero_shot", help="zero_shot | open (None samples added) | generalized (seen + unseen)"
    ),
    precision: str | None = typer.Option(None, metavar="fp32|int8|int8-onnx", help=PRECISION_HELP),
) -> None:
    """Recompute test metrics from a run's saved weights (or under an open-world protocol)."""
    from zsmie.evaluation.run import evaluate_run

    _setup_logging()
    try:
        _choice("--protocol", protocol, PROTOCOLS)
        if _precision(precision) is not None:
            set_ = [*set_, f'text.precision="{precision}"']
        if protocol != "zero_shot":
            if set_:
                raise ConfigError("--set and --precision are not accepted with "
                                  "--protocol open|generalized")
            from zsmie.evaluation.protocols import evaluate_run_protocol

            result = evaluate_run_protocol(run, protocol, str(data_dir) if data_dir else None)
            _print_json({"run": str(run), **{k: v for k, v in result.items()
                                              if not k.startswith("pr_curve")}})
            return
        results = evaluate_run(run, str(data_dir) if data_dir else None, set_)
    except USER_ERRORS as exc:
        _fail(exc)
    _print_json({"run": str(run), "val": _brief(results, "val"), "test": _brief(results)})


@app.command(cls=_Command)
def export(
    run: Path = typer.Option(..., help="a finished run folder (or a model folder)"),
    out: Path = typer.Option(..., help="model folder to write"),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="",
                                   help="replace the model in a non-empty OUT (its model files "
                                        "are rewritten, other files stay; without it a non-empty "
                                        "OUT is refused)"),
) -> None:
    """Save a run's model as a model folder (save_pretrained): config.toml, model.safetensors,
    inference.json and a README.md model card. It answers exactly as the run does."""
    from zsmie.pretrained import convert_run

    try:
        if out.exists() and not out.is_dir():
            raise ModelFolderError(f"{out}: not a folder; --out names the model folder to write")
        entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if entries and not overwrite:
            listed = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            raise ModelFolderError(f"{out}: the folder is not empty ({listed}); add --overwrite to "
                                   "replace the model in it, or choose another --out")
        convert_run(run, out)
    except USER_ERRORS as exc:
        _fail(exc)
    _print_json({"run": str(run), "out": str(out), "files": list(MODEL_FILES)})


@app.command(cls=_Command)
def experiment(
    config: Path = typer.Option(..., help="grid TOML (rows x seeds), see experiments/"),
    row: list[str] = typer.Option([], metavar="ROW", help="run only this row of the grid (repeatable)"),
) -> None:
    """Run a grid of runs (resuming finished cells) and write its results table."""
    from zsmie.experiments.runner import load_grid, run_grid, write_table

    _setup_logging()
    try:
        grid = load_grid(config)
        records = run_grid(grid, row or None)
    except USER_ERRORS as exc:
        _fail(exc)
    command = f"zsmie experiment --config {config}" + "".join(f" --row {r!r}" for r in row)
    typer.echo(write_table(grid, records, command=command))


figures = typer.Typer(cls=_Group, no_args_is_help=True, help="The paper's analysis figures, as PNG files.")
app.add_typer(figures, name="figures")


@figures.command("sweep", cls=_Command)
def figures_sweep(
    grid: Path = typer.Option(..., help="a grid TOML whose cells have run (e.g. experts_sweep)"),
    key: str = typer.Option(..., help="the swept config key: model.experts, model.beta, ..."),
    out: Path | None = typer.Option(None, help="PNG to write (default: beside the grid's table)"),
) -> None:
    """Test F1 and accuracy against a swept setting, mean +- std over seeds (Figures 3, 4)."""
    from zsmie.experiments.figures import sweep_figure

    _setup_logging()
    try:
        typer.echo(str(sweep_figure(grid, key, out)))
    except USER_ERRORS as exc:
        _fail(exc)


@figures.command("experts", cls=_Command)
def figures_experts(
    run: Path = typer.Option(..., help="a finished MG-VMoE run folder"),
    out: Path | None = typer.Option(None, help="PNG to write (default: RUN/experts.png)"),
    data_dir: Path | None = typer.Option(None, help="dataset folder, if it moved"),
) -> None:
    """Per-expert P / R / F1 with one expert forced on at a time (Figure 5)."""
    from zsmie.experiments.figures import experts_figure

    _setup_logging()
    try:
        typer.echo(str(experts_figure(run, out, str(data_dir) if data_dir else None)))
    except USER_ERRORS as exc:
        _fail(exc)


@figures.command("tsne", cls=_Command)
def figures_tsne(
    run: list[Path] = typer.Option(..., metavar="RUN", help="a finished run folder, one panel each "
                                  "(repeatable)"),
    name: list[str] = typer.Option([], metavar="TITLE", help="a panel title, one per --run (repeatable)"),
    label: list[str] = typer.Option([], metavar="LABEL", help="plot only this label (repeatable)"),
    out: Path | None = typer.Option(None, help="PNG to write (default: first RUN/tsne.png)"),
    data_dir: Path | None = typer.Option(None, help="dataset folder, if it moved"),
    seed: int = typer.Option(0, help="t-SNE random state"),
) -> None:
    """t-SNE of the test samples' embeddings coloured by label, runs side by side (Figure 6)."""
    from zsmie.experiments.figures import tsne_figure

    _setup_logging()
    try:
        path = tsne_figure(run, out, name or None, label or None,
                           str(data_dir) if data_dir else None, seed)
    except USER_ERRORS as exc:
        _fail(exc)
    typer.echo(str(path))


@app.command(cls=_ResumeCommand)
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="run folder to write"),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="change one config setting, e.g. train.epochs=3 (repeatable)"),
    resume: bool = typer.Option(False, "--resume", metavar="", help=RESUME_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help=OVERWRITE_HELP),
) -> None:
    """Train and evaluate on the embedded demo data (60 invented posts; not a benchmark)."""
    from zsmie.training.trainer import train as run_training

    config_file = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
    try:
        if resume and (set_ or overwrite):
            raise ConfigError("--resume continues a run with its saved config.toml; "
                              "--set and --overwrite are not accepted with it")
        with _claim(out, resume, overwrite):
            _setup_logging(out)
            if resume:
                results = _resume(out)
            else:
                results = run_training(load_config(config_file, set_, set_flag="--set"), out,
                                       overwrite=overwrite)
    except USER_ERRORS as exc:
        _fail(exc)
    if _main_process():
        typer.echo(f"demo split: {json.dumps(results['data']['split'])}")
    _print_json({"run": str(out), "test": _brief(results)})


@app.command(cls=_Command)
def predict(
    run: Path = typer.Option(..., help="a finished run folder, or a model folder (save_pretrained)"),
    input_file: Path = typer.Option(
        ..., "--input", help="the posts to label: a JSONL file, one post a line (see README)"
    ),
    labels: str = typer.Option("", help='candidate labels, comma-separated: "a,b,c"'),
    labels_file: Path | None = typer.Option(None, help="candidate labels, one per line"),
    descriptions: str | None = typer.Option(
        None, metavar="FILE",
        help="a file of label descriptions, TOML or JSON: a map from each label to its "
             "description (label = \"...\"), or the packaged alias mnre (MNRE's relations)"
    ),
    top_k: int = typer.Option(5, help="labels kept per sample, best first"),
    open_set: bool = typer.Option(
        False, "--open-set", metavar="",  # a flag: no value (the default metavar says <bool>)
        help="answer 'none of these' under the run's calibrated threshold",
    ),
    images: str = typer.Option("error", help="a given image that is missing or unreadable: error | blank"),
    output: Path | None = typer.Option(None, help="JSONL file to write (default: stdout)"),
    chunk_size: int = typer.Option(1024, help="samples read, scored and written at a time"),
    resume: bool = typer.Option(False, metavar="", help="continue a killed run's OUTPUT.partial"),
    progress: bool = typer.Option(True, metavar="", help="progress bar with samples/s (only on a terminal)"),
    precision: str | None = typer.Option(None, metavar="fp32|int8|int8-onnx", help=PRECISION_HELP),
    max_line_bytes: int = typer.Option(1 << 20, help="an input line's size in bytes, at most (a "
                                       "longer line is an error, read in bounded pieces)"),
) -> None:
    """Rank any labels (unseen in training) for each sample of a JSONL file, streamed in chunks.

    Several processes: `accelerate launch -m zsmie predict ...` (same lines, same order)."""
    from zsmie.data.labels import read_label_file, split_labels
    from zsmie.inference.batch import predict_file

    _setup_logging()
    try:
        _choice("--images", images, IMAGE_POLICIES)
        if bool(labels) == (labels_file is not None):
            raise DataError("give the candidate labels with exactly one of --labels or --labels-file")
        candidates = read_label_file(labels_file) if labels_file is not None else split_labels(labels)
        predict_file(run, input_file, candidates, descriptions=descriptions, top_k=top_k,
                     open_set=open_set, images=images, output=output, chunk_size=chunk_size,
                     resume=resume, progress=progress, precision=_precision(precision),
                     max_line_bytes=max_line_bytes)
    except (*USER_ERRORS, ValueError) as exc:
        _fail(exc)


def _allowed_hosts(host: str, given: str | None) -> list[str]:
    """The Host headers `serve` answers: --allowed-hosts, else the loopback names for a
    loopback address, any for every interface (0.0.0.0, ::), else the address itself."""
    if given is not None:
        hosts = [h.strip() for h in given.split(",") if h.strip()]
        if not hosts:
            raise ConfigError(f"--allowed-hosts {given!r}: give host names, or * for any")
        return hosts
    if host in ("127.0.0.1", "localhost", "::1"):
        return ["127.0.0.1", "localhost", "::1"]
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return [host]


@app.command(cls=_Command)
def serve(
    run: Path = typer.Option(..., help="a finished run folder, or a model folder (save_pretrained)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, help="TCP port"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    max_samples: int = typer.Option(64, help="samples per request, at most (else 413)"),
    max_labels: int = typer.Option(128, help="labels per request, at most (else 413)"),
    max_work: int = typer.Option(8192, help="encoder tokens per request, at most (else 413): the "
                                 "samples' tokens plus the label texts' tokens"),
    max_body_bytes: int = typer.Option(1 << 20, help="request body size in bytes, at most (else 413)"),
    max_image_bytes: int = typer.Option(1 << 19, help="one sample's posted image (image_data) in "
                                        "bytes once decoded, at most (else 413)"),
    batch_samples: int = typer.Option(256, help="samples per model call (micro-batching); 1: one "
                                      "sample at a time"),
    batch_tokens: int = typer.Option(256, help="encoder tokens per model call: a heavier request "
                                     "is scored in pieces, lighter ones going first"),
    max_wait_ms: float = typer.Option(2.0, help="how long a model call waits for more requests"),
    precision: str | None = typer.Option(None, metavar="fp32|int8|int8-onnx", help=PRECISION_HELP),
    max_connections: int = typer.Option(1000, help="open connections, at most: a new one closes "
                                        "the longest idle one"),
    header_timeout: float = typer.Option(10.0, help="seconds a connection has to send a request's "
                                         "headers"),
    body_timeout: float = typer.Option(30.0, help="seconds to receive a request's body (else 408)"),
    keep_alive: float = typer.Option(5.0, help="seconds an idle keep-alive connection stays open"),
    allowed_hosts: str | None = typer.Option(None, help="Host headers answered, comma-separated, "
                                             "or * for any (default: the loopback names when "
                                             "listening on loopback, any on 0.0.0.0, else --host)"),
    quiet: bool = typer.Option(False, "--quiet", metavar="", help="no access log line per request"),
) -> None:
    """An HTTP JSON API over a run (POST /predict, GET /health) and a page to try it at /."""
    import torch

    from zsmie.inference.extractor import ZeroShotExtractor
    from zsmie.serving.app import Limits, create_app
    from zsmie.serving.batcher import MicroBatcher
    from zsmie.serving.server import serve as run_server

    _setup_logging()
    logging.getLogger("zsmie.access").setLevel(logging.WARNING if quiet else logging.INFO)
    try:  # every option checked before the model loads
        if _choice("--device", device, DEVICES) == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not 1 <= port <= 65535:
            raise ConfigError(f"--port {port}: must be between 1 and 65535")
        limits = Limits(max_samples=max_samples, max_labels=max_labels, max_work=max_work,
                        max_body_bytes=max_body_bytes, max_image_bytes=max_image_bytes,
                        body_timeout=body_timeout)
        for name, value, least in (("--batch-samples", batch_samples, 1),
                                   ("--batch-tokens", batch_tokens, 1),
                                   ("--max-connections", max_connections, 1),
                                   ("--header-timeout", header_timeout, 1),
                                   ("--keep-alive", keep_alive, 1), ("--max-wait-ms", max_wait_ms, 0)):
            if not value >= least:
                raise ConfigError(f"{name} = {value}: must be at least {least}")
        hosts = _allowed_hosts(host, allowed_hosts)
        extractor = ZeroShotExtractor.from_pretrained(run, device=device, precision=_precision(precision))
    except (*USER_ERRORS, ValueError) as exc:
        _fail(exc)
    batcher = MicroBatcher(extractor, batch_samples, max_wait_ms / 1000, batch_tokens)
    app_ = create_app(extractor, limits, batcher, hosts)
    shown = f"[{host}]" if ":" in host else host

    def ready() -> None:
        typer.echo(f"zsmie serve: ready. Page: http://{shown}:{port}/  API: POST "
                   f"http://{shown}:{port}/predict, GET http://{shown}:{port}/health", err=True)

    run_server(app_, host, port, max_connections, header_timeout, keep_alive, ready)


@app.command(cls=_Command)
def calibrate(
    run: Path = typer.Option(..., help="a finished run folder"),
    data_dir: Path | None = typer.Option(None, help="dataset folder, if it moved"),
) -> None:
    """Choose the open-set threshold on the run's validation split; writes RUN/open_set.json."""
    from zsmie.evaluation.run import calibrate_run

    _setup_logging()
    try:
        record = calibrate_run(run, str(data_dir) if data_dir else None)
    except (*USER_ERRORS, ValueError) as exc:
        _fail(exc)
    if record is None:
        _fail(ValueError("the run's validation split has fewer than 2 labels: nothing to calibrate"))
    _print_json({k: record[k] for k in ("threshold", "macro_f1", "accuracy", "labels", "samples")})


@app.command("type-prior", cls=_Command)
def type_prior(
    run: Path = typer.Option(..., help="a finished MRE run folder"),
    data_dir: Path | None = typer.Option(None, help="dataset folder, if it moved"),
    templates: str | None = typer.Option(
        None, help="also weigh entity-filled label templates: a packaged alias (mnre) or a "
        "TOML/JSON file of label -> template; '' for those the label names spell; 'off': no "
        "templates (default: as the run's config says)"),
) -> None:
    """Fit the type-aware score on the run's validation split; writes RUN/type_prior.json.

    It chooses the typing source, temperature and weight (and with --templates the template
    weight); predict, serve and evaluate apply them."""
    from zsmie.training.type_prior import fit_run

    _setup_logging()
    try:
        record = fit_run(run, str(data_dir) if data_dir else None, templates)
    except (*USER_ERRORS, ValueError) as exc:
        _fail(exc)
    _print_json({"type_prior": record["type_prior"],
                 "without_type_prior": {p: {k: v for k, v in m.items() if k in ("f1", "accuracy")}
                                        for p, m in record["without_type_prior"].items()},
                 **{p: {k: v for k, v in record[p].items() if k in ("f1", "accuracy")}
                    for p in ("val", "test")}})


@app.command("config-reference", cls=_Command)
def config_reference(
    out: Path | None = typer.Option(None, help="write the reference to this file (atomically) "
                                    "instead of printing it"),
) -> None:
    """Print every configuration key with its type, default and meaning, as Markdown.

    docs/configuration.md is this output: `zsmie config-reference --out docs/configuration.md`."""
    from zsmie.config import reference_markdown
    from zsmie.io import atomic_write_text

    text = reference_markdown()
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        atomic_write_text(out, text)
    except USER_ERRORS as exc:
        _fail(exc)


data_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Check and convert data files.")
app.add_typer(data_app, name="data")


@data_app.command("check", cls=_Command)
def data_check(
    file: Path = typer.Argument(..., help="a JSONL data file"),
    images: str = typer.Option(
        "error", help="missing or unreadable images: error (a problem each) | blank (counted)"
    ),
    as_json: bool = typer.Option(False, "--json", metavar="", help="print the report as JSON"),
    max_line_bytes: int = typer.Option(1 << 20, help="a line's size in bytes, at most (a longer "
                                       "line is a problem, read in bounded pieces)"),
) -> None:
    """Report every problem of a JSONL data file with its line number, then a summary.

    Exit code 0 if the file is clean, 1 if it has any problem."""
    from zsmie.data.check import check_jsonl

    try:
        report = check_jsonl(file, _choice("--images", images, IMAGE_POLICIES), max_line_bytes)
    except (*USER_ERRORS, ValueError) as exc:
        _fail(exc)
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.format())
    raise typer.Exit(0 if report.ok else 1)


@data_app.command("convert", cls=_Command)
def data_convert(
    data_format: str = typer.Option(..., "--format",
                                    help="the dataset's format: mnre | wikidiverse | jsonl | demo"),
    data_dir: Path = typer.Option(..., help="dataset folder (or file)"),
    out: Path = typer.Option(..., help="JSONL file to write"),
    task: str | None = typer.Option(None, help="mre or met (default: by format)"),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="change one config setting, e.g. data.image_dir=DIR (repeatable)"),
) -> None:
    """Convert a dataset to the project's JSONL format (atomically)."""
    from zsmie.data.convert import DEFAULT_TASK, convert_dataset

    _setup_logging()
    try:
        _choice("--format", data_format, DATA_FORMATS)
        task = _choice("--task", task or DEFAULT_TASK.get(data_format, "mre"), TASKS)
        # the --set values checked as config settings; the data layer takes the values it reads
        config = load_config(None, [*set_, f'data.format="{data_format}"', f'task="{task}"'])
        count = convert_dataset(data_format, data_dir, out, config.task, config.data.image_dir)
    except USER_ERRORS as exc:
        _fail(exc)
    _print_json({"out": str(out), "samples": count})


def _brief(results: dict, part: str = "test") -> dict:
    keys = ("precision", "recall", "f1", "accuracy", "labels")
    return {k: results[part][k] for k in keys}


if __name__ == "__main__":
    app()
