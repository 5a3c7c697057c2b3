"""Figures of evaluation results: the open protocol's precision-recall curves.

A leaf of evaluation (matplotlib only, nothing of zsmie): evaluation/protocols.py draws
`open_pr.png` with it, and experiments/figures.py shares `save_figure`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def save_figure(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=150, bbox_inches="tight")
    return path


def pr_figure(results: dict[str, dict], out: Path, title: str = "") -> Path:
    """Micro precision against recall over the relation labels on the open protocol's test
    set (None samples included), one curve per entry of `results` (an open_world_open.json
    record each), the calibrated threshold marked on each curve."""
    figure = Figure(figsize=(5.5, 4.5))
    ax = figure.add_subplot()
    for name, result in results.items():
        curve, test = result["pr_curve_test"], result["test"]
        line = ax.plot(curve["recall"], curve["precision"], label=name, lw=1.2)[0]
        ax.plot([test["micro_recall"]], [test["micro_precision"]], "o", color=line.get_color())
    ax.set_xlabel("recall (micro, relation labels)")
    ax.set_ylabel("precision (micro, relation labels)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "open protocol: test precision-recall (dot: calibrated threshold)",
                 fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(figure, out)
