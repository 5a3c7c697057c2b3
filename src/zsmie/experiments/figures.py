"""The paper's analysis figures (sections 5.6-5.8), drawn with matplotlib's Agg canvas.

- `sweep_figure`: test F1 and accuracy against a swept setting, mean +- std over seeds, from
  a grid's finished cells (Figure 3: the number of experts K; Figure 4: beta).
- `experts_figure`: a trained MG-VMoE evaluated with one expert forced on, for each expert:
  macro P / R / F1 and per-label F1 (Figure 5).
- `tsne_figure`: t-SNE of the test samples' embeddings (`HeadOutput.embedding`), coloured
  by label, one panel per run, e.g. MG-VMoE beside a baseline (Figure 6).

Figures are built on `matplotlib.figure.Figure` with an Agg canvas, never pyplot, so that
drawing them changes no global matplotlib state.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from zsmie.config import Config, ConfigError, config_to_dict, load_config
from zsmie.evaluation.plots import pr_figure, save_figure  # noqa: F401 (pr_figure: re-exported)
from zsmie.evaluation.run import evaluate_run, load_run
from zsmie.experiments.runner import collect_records, load_grid
from zsmie.experiments.tables import mean_std
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.run_folder import CONFIG, RESULTS

MODEL_NAMES = {
    "proto": "Proto",
    "mmproto": "MMProto",
    "zsbert": "ZS-BERT",
    "matching": "Matching",
    "mgvmoe": "MG-VMoE",
    "similarity": "Training-free",
}


def config_value(config: Config, key: str) -> Any:
    """The value of a dotted key ("model.experts") in a config."""
    node: Any = config_to_dict(config)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"unknown config key {key!r}")
        node = node[part]
    return node


# ----------------------------------------------------------------------------- sweeps


def sweep_points(records: Sequence[dict], key: str) -> list[dict]:
    """Group grid records by the value of `key` in each cell's config.toml.

    -> [{"value", "f1": (mean, std), "accuracy": (mean, std), "seeds"}] by value, percent.
    """
    by_value: dict[Any, list[dict]] = defaultdict(list)
    for record in records:
        config = load_config(Path(record["dir"]) / CONFIG)
        by_value[config_value(config, key)].append(record)
    if not by_value:
        raise ValueError(f"no finished runs to plot against {key!r}")
    return [
        {
            "value": value,
            "f1": mean_std([r["test"]["f1"] for r in runs]),
            "accuracy": mean_std([r["test"]["accuracy"] for r in runs]),
            "seeds": sorted(r["seed"] for r in runs),
        }
        for value, runs in sorted(by_value.items())
    ]


def plot_sweep(points: Sequence[dict], key: str, path: Path, title: str = "") -> Path:
    """Test F1 and accuracy (mean +- std) against the swept values, evenly spaced."""
    figure = Figure(figsize=(4.5, 3.2))
    ax = figure.add_subplot()
    x = np.arange(len(points))
    for metric, label, marker in (("f1", "F1", "o"), ("accuracy", "Acc", "s")):
        mean = [p[metric][0] for p in points]
        std = [p[metric][1] for p in points]
        ax.errorbar(x, mean, yerr=std, marker=marker, capsize=3, label=label)
    ax.set_xticks(x, [f"{p['value']:g}" if isinstance(p["value"], float) else str(p["value"])
                      for p in points])
    ax.set_xlabel(key.split(".")[-1])
    ax.set_ylabel("test score (%)")
    ax.set_title(title or f"test F1 and accuracy against {key}")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(figure, path)


def sweep_figure(grid_path: str | Path, key: str, out: str | Path | None = None) -> Path:
    """Figure 3 / 4 from a grid's finished cells; written next to its table by default."""
    grid = load_grid(grid_path)
    records = collect_records(grid)
    if not records:
        raise FileNotFoundError(f"{grid_path}: no finished cells under {grid.out}; run "
                                f"`zsmie experiment --config {grid_path}` first")
    path = Path(out) if out else grid.results.with_name(grid.results.name + ".png")
    return plot_sweep(sweep_points(records, key), key, path, title=grid.name)


# ----------------------------------------------------------------------------- experts


def expert_metrics(
    run_dir: str | Path, data_dir: str | None = None, part: str = "test"
) -> list[dict]:
    """Metrics of a trained MG-VMoE run with each single expert forced on, experts 0..K-1."""
    config = load_config(Path(run_dir) / CONFIG)
    if config.model.name != "mgvmoe" or not config.model.vmoe:
        raise ConfigError(f"{run_dir}: not an MG-VMoE run with its VMoE layer "
                          f"(model.name = {config.model.name!r}, model.vmoe = {config.model.vmoe})")
    return [
        evaluate_run(run_dir, data_dir, overrides=[f"model.force_expert={k}"])[part]
        for k in range(config.model.experts)
    ]


def plot_experts(
    per_expert: Sequence[dict], path: Path, overall: dict | None = None, title: str = ""
) -> Path:
    """Macro P / R / F1 per forced expert (bars) and per-label F1 (heat map), Figure 5.

    Experts are numbered from 1 as in the paper: expert #k is `model.force_expert=k-1`.
    """
    figure = Figure(figsize=(10, 3.6))
    bars, heat = figure.subplots(1, 2, width_ratios=[1.2, 1])
    n = len(per_expert)
    x = np.arange(n)
    width = 0.27
    for i, (key, label) in enumerate((("precision", "P"), ("recall", "R"), ("f1", "F1"))):
        bars.bar(x + (i - 1) * width, [100 * m[key] for m in per_expert], width, label=label)
    if overall is not None:
        bars.axhline(100 * overall["f1"], color="black", linestyle="--", linewidth=1,
                     label="F1, all experts")
    names = [f"#{k + 1}" for k in range(n)]
    bars.set_xticks(x, names)
    bars.set_xlabel("expert forced on")
    bars.set_ylabel("test score (%)")
    bars.legend(fontsize=8)
    bars.grid(axis="y", alpha=0.3)
    labels = list(per_expert[0]["labels"])
    grid = np.array([[100 * m["per_label"][label]["f1"] for label in labels] for m in per_expert])
    image = heat.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100)
    heat.set_yticks(x, names)
    heat.set_xticks(np.arange(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    heat.set_title("per-label F1 (%)", fontsize=9)
    figure.colorbar(image, ax=heat)
    figure.suptitle(title or "MG-VMoE with a single expert forced on")
    return save_figure(figure, path)


def experts_figure(
    run_dir: str | Path, out: str | Path | None = None, data_dir: str | None = None
) -> Path:
    """Figure 5 for a trained MG-VMoE run; written into the run folder by default."""
    run = Path(run_dir)
    per_expert = expert_metrics(run, data_dir)
    results = run / RESULTS
    overall = json.loads(results.read_text(encoding="utf-8"))["test"] if results.is_file() else None
    return plot_experts(per_expert, Path(out) if out else run / "experts.png", overall,
                        title=f"{run.name}: single experts forced on (test)")


# ----------------------------------------------------------------------------- t-SNE


def run_embeddings(
    run_dir: str | Path, part: str = "test", data_dir: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """Embeddings [N, h] of a finished run's samples of one part and their gold labels."""
    loaded = load_run(run_dir, data_dir)
    core = loaded.accelerator.unwrap_model(loaded.model)
    prototypes = label_prototypes(core, loaded.prepared.texts(part), {})
    predictions = run_model(loaded.model, loaded.loaders[part], prototypes,
                            accelerator=loaded.accelerator)
    names = loaded.prepared.split.part(part)
    return predictions.embeddings.numpy(), [names[i] for i in predictions.labels.tolist()]


def tsne_2d(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE to 2-D [N, 2]; perplexity min(30, (N - 1) / 3), as small sets need.

    Small sets (N <= 200) use the exact gradient: deterministic, and faster there than
    Barnes-Hut, whose OpenMP threads stall on a busy machine.
    """
    from sklearn.manifold import TSNE

    n = len(embeddings)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 samples, got {n}")
    perplexity = max(1.0, min(30.0, (n - 1) / 3))
    method = "exact" if n <= 200 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=method)
    return tsne.fit_transform(np.asarray(embeddings, dtype=np.float32))


def plot_tsne(
    panels: dict[str, tuple[np.ndarray, Sequence[str]]],
    path: Path,
    seed: int = 0,
    labels: Sequence[str] | None = None,
) -> Path:
    """One t-SNE panel per entry {title: (embeddings, labels)}, colours shared across panels.

    `labels` keeps only the samples of those labels (the paper shows chosen categories).
    """
    kept = {}
    for title, (embeddings, gold) in panels.items():
        keep = [i for i, g in enumerate(gold) if labels is None or g in labels]
        kept[title] = (np.asarray(embeddings)[keep], [gold[i] for i in keep])
    classes = sorted({g for _, gold in kept.values() for g in gold})
    colours = {c: f"C{i % 10}" for i, c in enumerate(classes)}
    figure = Figure(figsize=(4.2 * len(kept), 4))
    axes = figure.subplots(1, len(kept), squeeze=False)[0]
    for ax, (title, (embeddings, gold)) in zip(axes, kept.items(), strict=True):
        points = tsne_2d(embeddings, seed)
        for c in classes:
            mask = np.array([g == c for g in gold])
            if mask.any():
                ax.scatter(points[mask, 0], points[mask, 1], s=12, color=colours[c], label=c)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=min(len(classes), 6), fontsize=8,
                  bbox_to_anchor=(0.5, -0.08))
    return save_figure(figure, path)


def tsne_figure(
    runs: Sequence[str | Path],
    out: str | Path | None = None,
    names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    data_dir: str | None = None,
    seed: int = 0,
) -> Path:
    """Figure 6: test embeddings of each run side by side; into the first run's folder."""
    if not runs:
        raise ConfigError("t-SNE needs at least one run folder")
    if names and len(names) != len(runs):
        raise ConfigError(f"{len(names)} panel names for {len(runs)} runs: give one per run")
    panels = {}
    for i, run in enumerate(runs):
        model = load_config(Path(run) / CONFIG).model.name
        title = names[i] if names else f"{MODEL_NAMES.get(model, model)} ({Path(run).name})"
        title = title if title not in panels else f"{title} [{i + 1}]"
        panels[title] = run_embeddings(run, "test", data_dir)
    return plot_tsne(panels, Path(out) if out else Path(runs[0]) / "tsne.png", seed, labels)
