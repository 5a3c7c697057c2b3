"""Shared fixtures. Real MNRE lives at ../shared/data/mnre beside the repository (CI has it);
tests that need it skip with a clear reason on a fresh clone without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
MNRE_DIR = REPO.parent / "shared" / "data" / "mnre"


@pytest.fixture(scope="session")
def mnre_dir() -> Path:
    if not (MNRE_DIR / "txt" / "mnre_train.txt").is_file():
        pytest.skip(f"real MNRE not found at {MNRE_DIR} (see README, 'Datasets')")
    return MNRE_DIR


@pytest.fixture(scope="session")
def minilm():
    """The packaged MiniLM text encoder (works with no model hub), loaded once."""
    from zsmie.encoders.text import TextEncoder

    return TextEncoder("minilm", max_length=128)


@pytest.fixture(scope="session")
def trained_demo(tmp_path_factory) -> Path:
    """The embedded demo trained once (1 epoch): the one finished Proto run shared by every
    test that needs one. Read only: a test that changes a run copies it into its tmp_path
    first (shutil.copytree)."""
    from importlib import resources

    from zsmie.config import load_config
    from zsmie.training.trainer import train

    out = tmp_path_factory.mktemp("demo") / "run"
    demo = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
    train(load_config(demo, ["train.epochs=1", "train.progress=false", "feature_cache=off"]), out)
    return out


@pytest.fixture(scope="session")
def trained_image_demo(tmp_path_factory) -> Path:
    """The embedded demo as an image run (MG-VMoE over the tiny random ViT), 1 epoch (4 s)."""
    from importlib import resources

    from zsmie.config import load_config
    from zsmie.training.trainer import train

    out = tmp_path_factory.mktemp("image-demo") / "run"
    demo = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
    train(load_config(demo, ["train.epochs=1", "train.progress=false", "feature_cache=off",
                             "model.name=mgvmoe", 'vision.model="tiny-random-vit"']), out)
    return out


# `slow` by measured cost (`make test-fast` runs the rest): a fixture that trains a model or
# reads real MNRE costs 25-40 s of setup on 2 cores (a demo training 27 s, demo_runs 40 s:
# `pytest --durations=40`), and a test that trains in its own body 10 s or more.
TRAINING_FIXTURES = frozenset({"trained_demo", "trained_image_demo", "demo_run", "demo_runs",
                               "extractor", "none_demo", "mnre_dir", "server", "browser",
                               "client"})
# Measured at 10 s or more without a training fixture (`pytest -m "not slow" --durations=40`
# on 2 cores shared with training runs, load 10-15): fresh interpreters importing torch, CLI
# runs that build a model, MG-VAT's many-step tau searches, hypothesis's many examples.
MEASURED_SLOW = frozenset({
    "test_train_reports_bad_config_cleanly",  # 104 s
    "test_resume_refuses_a_folder_that_is_not_a_run",  # 91 s
    "test_wise_ft_ends_reproduce_the_original_and_the_finetuned_scores",  # 74 s
    "test_two_processes_writing_the_same_entries",  # 65 s
    "test_no_torchvision_warning_on_import",  # 56 s
    "test_penalty_tau_does_not_collapse_where_the_penalty_is_below_the_curvature",  # 48 s
    "test_protocol_scores_of_a_run_with_an_ensemble_mix_both_models",  # 42 s
    "test_radius_tau_beats_a_random_direction_and_keeps_its_norm",  # 39 s
    "test_validation_cap_leaves_train_and_test_alone",  # 39 s
    "test_label_descriptions_from_the_packaged_map_or_a_file",  # 31 s
    "test_check_survives_arbitrary_text_lines",  # 14 s
    "test_check_survives_arbitrary_json",  # 12 s
})
TRAINS_IN_BODY = ("train(", 'invoke("train"', 'invoke("demo"', "run_grid(", "evaluate_run(",
                  "run_experiment(", "resume_run(", '"experiment"', "choose_type_prior(")


def pytest_collection_modifyitems(items):
    import inspect

    for item in items:
        if item.get_closest_marker("slow") or not hasattr(item, "function"):
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        try:
            body = inspect.getsource(item.function)
        except (OSError, TypeError):
            body = ""
        if (fixtures & TRAINING_FIXTURES or any(call in body for call in TRAINS_IN_BODY)
                or item.originalname in MEASURED_SLOW):
            item.add_marker(pytest.mark.slow)
