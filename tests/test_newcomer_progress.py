"""`zsmie predict`'s progress bar moves with each model batch, not with each chunk of lines."""

from __future__ import annotations

import json
import tomllib

import zsmie.inference.batch as file_prediction


def test_the_progress_bar_moves_per_batch_not_per_chunk(trained_demo, tmp_path, monkeypatch):
    bars = []

    class Bar:  # records what predict tells its bar
        def __init__(self, total=None, **kwargs):
            self.total, self.updates = total, []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr(file_prediction, "tqdm", Bar)
    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(
        json.dumps({"id": f"post-{i}", "text": f"Violinist Clara Weiss was born in Vienna in {1900 + i}",
                    "head": "Clara Weiss", "tail": "Vienna"}) + "\n" for i in range(150)))
    batch = tomllib.loads((trained_demo / "config.toml").read_text())["train"]["eval_batch_size"]
    assert batch < 150 < 1024  # several batches inside one chunk

    written = file_prediction.predict_file(trained_demo, posts, ["place_of_birth", "spouse"],
                                           output=tmp_path / "out.jsonl", chunk_size=1024)

    assert written == 150
    (bar,) = bars
    assert bar.total == 150
    assert bar.updates == [batch] * (150 // batch) + [150 % batch]


def test_log_lines_go_above_a_progress_bar_not_into_its_line():
    """`make demo` printed its log lines into the epoch bar's line; through tqdm.write each
    stands on its own line and the bar is drawn again below it."""
    import io
    import logging

    from tqdm import tqdm

    from zsmie.cli import _AboveProgressBars

    out = io.StringIO()
    logger = logging.getLogger("zsmie.test_progress")
    handler = _AboveProgressBars(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with tqdm(total=4, desc="epoch 1/3", file=out, ascii=True) as bar:
            bar.update(2)
            logger.warning("epoch 1: val f1 0.8453")
            bar.update(2)
    finally:
        logger.removeHandler(handler)
    lines = [line.split("\r")[-1] for line in out.getvalue().split("\n")]
    assert "epoch 1: val f1 0.8453" in lines  # a line of its own, not after the bar's text
