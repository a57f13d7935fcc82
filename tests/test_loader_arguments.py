"""make_loaders checks its arguments when called: each mistake gets one error that names it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.loading.checks import LoaderArgumentError
from sensorium_data.loading.loaders import make_loaders


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


# ----------------------------------------------------------------------------- 2023 windows


@pytest.fixture(scope="module")
def video_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.example_store(
        tmp_path_factory.mktemp("video"), kind="dynamic", n_mice=1, n_trials=40, n_frames=60
    )


def _usable(store: Path, tier: str, convention: str) -> tuple[list[int], list[int]]:
    (mouse,) = sd.list_mice(store)
    ds = sd.open_mouse(store, mouse)
    trials = np.flatnonzero(ds.tiers.values == tier)
    valid = ds.valid_frames.values[trials]
    padded = ds.sizes["frame"]
    stops = np.where(valid < padded, valid - 1, valid) if convention == "competition" else valid
    return trials.tolist(), stops.tolist()


def test_a_window_longer_than_some_trials_is_refused_when_made(video_store: Path) -> None:
    trials, usable = _usable(video_store, "train", "competition")
    frames = max(usable)  # longer than every padded trial (the others fill the padded length)
    short = [t for t, u in zip(trials, usable, strict=True) if u < frames]
    assert short  # the store has padded trials
    with pytest.raises(LoaderArgumentError) as info:
        make_loaders(video_store, tiers=["train"], frames=frames)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"frames={frames}: {len(short)} of the {len(trials)} 'train' trials")
    assert f"trial {short[0]} ({usable[trials.index(short[0])]} frames)" in text
    # a fixed window is checked the same way, offset included
    with pytest.raises(LoaderArgumentError, match=r"frame_offset=5 \+ frames="):
        make_loaders(video_store, tiers=["train"], frames=frames - 4, frame_offset=5)
    # a window every trial can give is fine
    make_loaders(video_store, tiers=["train"], frames=min(usable))


def test_scored_frames_decide_whole_trial_lengths(video_store: Path) -> None:
    for convention in ("competition", "kit-head"):
        trials, usable = _usable(video_store, "train", convention)
        loaders = make_loaders(
            video_store, tiers=["train"], batch_size=64, scored_frames=convention
        )
        (loader,) = loaders["train"].values()
        batch = next(iter(loader))
        got = dict(zip(batch["trial"].tolist(), batch["valid_frames"].tolist(), strict=True))
        assert got == dict(zip(trials, usable, strict=True))
    with pytest.raises(LoaderArgumentError, match="scored_frames must be one of 'competition'"):
        make_loaders(video_store, scored_frames="kit")
