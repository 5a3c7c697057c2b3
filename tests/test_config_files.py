"""Every config file and every grid cell in the repository loads under the current config
rules, and the rules added for them (removed settings, feature_cache, head-only settings)
refuse what they should with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from zsmie.config import ConfigError, config_to_dict, load_config, read_toml, save_config
from zsmie.experiments.open_world import protocol_grid
from zsmie.experiments.runner import load_grid

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.toml"))
GRIDS = sorted([*(REPO / "experiments").glob("*.toml"), *(REPO / "benchmarks").glob("*.toml")])


def test_the_files_are_found():
    assert len(CONFIGS) >= 9 and len(GRIDS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_file_loads(path):
    config = load_config(path)
    assert config.task in ("mre", "met")
    assert "split" not in read_toml(path).get("data", {})  # the removed setting is gone


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.name)
def test_every_grid_cell_loads(path):
    grid = load_grid(path)
    assert grid.rows
    # an open-world grid runs once per protocol (zsmie.experiments.open_world)
    grids = [protocol_grid(grid, p) for p in ("open", "generalized")] if grid.zero_shot_out else [grid]
    for each in grids:
        for row in each.rows:
            for seed in each.seeds:
                assert each.cell_config(row, seed).seed == seed


def test_a_run_saved_by_an_earlier_version_still_loads(tmp_path):
    """Earlier versions saved `data.split = "auto"` in every run's config.toml."""
    path = tmp_path / "config.toml"
    save_config(load_config(REPO / "configs" / "mre_proto.toml"), path)
    path.write_text(path.read_text().replace("[data]\n", '[data]\nsplit = "auto"\n'))
    assert 'split = "auto"' in path.read_text()
    assert config_to_dict(load_config(path)) == config_to_dict(
        load_config(REPO / "configs" / "mre_proto.toml"))


@pytest.mark.parametrize(("override", "message"), [
    ('data.split="list.txt"', "data.split = 'list.txt': this setting was removed"),
    ("feature_cache=of", "feature_cache = 'of': expected one of ['auto', 'memory', 'off'] or a "
                         "folder path"),
    ("feature_cache=Memory", "feature_cache = 'Memory'"),
    ('feature_cache=""', "feature_cache = ''"),
    ("model.experts=64", "model.experts = 64: model.name = 'proto' does not use it (only 'mgvmoe'"),
    ("model.vat_mode=penalty", "model.vat_mode = 'penalty': model.name = 'proto' does not use it"),
    ("model.negatives=5", "model.negatives = 5: model.name = 'proto' does not use it (only 'cross'"),
])
def test_refused_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        load_config(None, [override])


def test_accepted_settings():
    assert load_config(None, ["feature_cache=./features"]).feature_cache == "./features"
    assert load_config(None, ["feature_cache=/tmp/f"]).feature_cache == "/tmp/f"
    assert load_config(None, ["model.name=mgvmoe", "model.experts=64"]).model.experts == 64
    assert load_config(None, ["model.name=cross", "model.negatives=5"]).model.negatives == 5
    # a head-only setting at its default is no error under another head (saved run configs)
    assert load_config(None, ["model.experts=8", "model.negatives=3"]).model.name == "proto"


def test_base_file_then_this_files_keys(tmp_path):
    """`base = "file"`: the base's keys, this file's over them (tables merge key by key), a
    chain of bases read in order, the path relative to the file that names it."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "root.toml").write_text('seed = 3\n[train]\nlr = 0.5\nepochs = 7\n[model]\nscale = 4.0\n')
    (tmp_path / "sub" / "mid.toml").write_text('base = "../root.toml"\n[train]\nepochs = 2\n')
    (tmp_path / "leaf.toml").write_text('base = "sub/mid.toml"\nseed = 9\n[model]\ndropout = 0.3\n')
    config = load_config(tmp_path / "leaf.toml")
    assert (config.seed, config.train.lr, config.train.epochs) == (9, 0.5, 2)
    assert (config.model.scale, config.model.dropout) == (4.0, 0.3)
    # an override still wins over every file of the chain
    assert load_config(tmp_path / "leaf.toml", ["train.lr=0.25"]).train.lr == 0.25


@pytest.mark.parametrize(("files", "message"), [
    ({"a.toml": 'base = "b.toml"\n', "b.toml": 'base = "a.toml"\n'}, "base = 'a.toml' makes a cycle: "),
    ({"a.toml": 'base = "a.toml"\n'}, "base = 'a.toml' makes a cycle: "),
    ({"a.toml": 'base = "missing.toml"\n'}, "base = 'missing.toml': no such file "),
    ({"a.toml": "base = 3\n"}, "base = 3: expected the path of another config file"),
])
def test_bad_base_names_the_file(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=f"^{tmp_path}/[ab].toml: " + message.replace("(", r"\(")):
        load_config(tmp_path / "a.toml")


def test_the_recommended_config_is_proto_plus_its_changes():
    """configs/mre_recommended.toml names mre_proto.toml as its base and states its changes."""
    path = REPO / "configs" / "mre_recommended.toml"
    assert read_toml(path)["base"] == "mre_proto.toml"
    config, proto = load_config(path), load_config(REPO / "configs" / "mre_proto.toml")
    assert (config.text.finetune, config.train.lr, config.train.epochs) == (True, 2e-5, 3)
    assert (config.model, config.data.format) == (proto.model, proto.data.format)
