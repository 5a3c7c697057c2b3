import pytest

from zsmie.config import ConfigError, load_config, save_config


def test_overrides_are_typed_and_nested(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('task = "mre"\n[train]\nlr = 1e-5\n', encoding="utf-8")
    config = load_config(path, ["train.lr=3e-4", "images=blank", "train.epochs=2",
                                "text.finetune=true", "model.name=proto"])
    assert config.train.lr == 3e-4 and config.images == "blank" and config.train.epochs == 2
    assert config.text.finetune is True and config.model.name == "proto"


def test_saved_config_reloads_identically(tmp_path):
    config = load_config(None, ["seed=2", "model.scale=20"])
    save_config(config, tmp_path / "config.toml")
    assert load_config(tmp_path / "config.toml") == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrr=1", r"unknown key 'train.lrr'"),
        ("train.epochs=two", r"train.epochs = 'two': expected int"),
        ("images=sometimes", r"images = 'sometimes': expected one of \['blank', 'error'\]"),
        ("train.balanced=1", r"train.balanced = 1: expected true or false"),
        ("noequals", r"expected key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
