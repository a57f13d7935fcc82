"""make_loaders checks its arguments when called: each mistake gets one error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

import sensorium_data as sd
from sensorium_data.loader_checks import LoaderArgumentError
from sensorium_data.loaders import make_loaders


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.example_store(
        tmp_path_factory.mktemp("args"), kind="static", n_mice=2, n_trials=60, n_neurons=6
    )


@pytest.fixture(scope="module")
def mice(store: Path) -> list[str]:
    return list(sd.list_mice(store))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"batch_size": "64"}, "batch_size must be an integer >= 1, got '64'"),
        ({"batch_size": True}, "batch_size must be an integer >= 1"),
        ({"n_neurons": -1}, "n_neurons must be None or an integer >= 1, got -1"),
        ({"max_frame": -1}, "max_frame must be None or an integer >= 1, got -1"),
        ({"n_train_images": 0}, "n_train_images must be None or an integer >= 1"),
        ({"tiers": "train"}, r"tiers must be a list of names, got the string 'train'; "),
        ({"tiers": ["none"]}, "tiers: 'none' holds trials that are neither"),
        ({"tiers": ["tset"]}, r"tiers: no mouse has a tier 'tset' \(did you mean 'test'\?\)"),
        ({"include_behaviour": True}, r"no option 'include_behaviour' \(did you mean "),
        ({"shuffle": True}, "shuffle is set by make_loaders itself"),
        ({"frames": 10}, "frames: frame options apply to 2023 .dynamic. mice"),
    ],
)
def test_each_mistake_is_named(store: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(LoaderArgumentError, match=message) as info:
        make_loaders(store, **kwargs)
    assert "\n" not in str(info.value)  # one line


def test_a_mouse_name_as_a_string(store: Path, mice: list[str]) -> None:
    with pytest.raises(LoaderArgumentError, match=rf"use mice=\['{mice[0]}'\]"):
        make_loaders(store, mice=mice[0])


def test_the_misspelled_option_suggests_the_real_one(store: Path) -> None:
    with pytest.raises(LoaderArgumentError) as info:
        make_loaders(store, include_behaviour=True)
    text = str(info.value)
    assert "did you mean 'include_behavior'?" in text
    assert "num_workers" in text  # DataLoader's keywords are listed as allowed


def test_valid_calls_still_work(store: Path, mice: list[str]) -> None:
    loaders = make_loaders(store, mice=mice, tiers=["train", "final_test"], batch_size=8)
    assert set(loaders["train"]) == set(mice)
    # final_test is an official tier: only the competition mouse has it, the other is left out
    assert len(loaders["final_test"]) == 1
    loaders = make_loaders(store, mice=[mice[0]], tiers=["validation"], num_workers=0)
    batch = next(iter(loaders["validation"][mice[0]]))
    assert batch["responses"].shape[1] == 6
