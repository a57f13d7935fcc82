"""``example_store``: a converted synthetic store in one call, reused when asked again."""

from __future__ import annotations

import pathlib

import pytest

import sensorium_data as sd


def test_makes_a_store_and_reuses_it(tmp_path: pathlib.Path) -> None:
    store = sd.example_store(tmp_path, kind="static", n_mice=2, n_trials=60, n_neurons=8)
    mice = sd.list_mice(store)
    assert len(mice) == 2
    trees = sorted(p.name for p in (store.parent / "trees").iterdir())
    assert sum(name.endswith(".ground_truth.npz") for name in trees) == 2
    ds = sd.open_mouse(store, next(iter(mice)))
    assert ds.sizes["trial"] == 60 and ds.sizes["neuron"] == 8

    marker = store / "zarr.json"
    before = marker.stat().st_mtime_ns
    again = sd.example_store(tmp_path, kind="static", n_mice=2, n_trials=60, n_neurons=8)
    assert again == store
    assert marker.stat().st_mtime_ns == before  # found, not rewritten


def test_other_arguments_make_another_store(tmp_path: pathlib.Path) -> None:
    a = sd.example_store(tmp_path, kind="static", n_mice=1, n_trials=60, n_neurons=8)
    b = sd.example_store(tmp_path, kind="static", n_mice=1, n_trials=60, n_neurons=8, seed=1)
    assert a != b
    assert list(sd.list_mice(a)) != list(sd.list_mice(b))


def test_an_interrupted_example_is_made_again(tmp_path: pathlib.Path) -> None:
    store = sd.example_store(tmp_path, kind="dynamic", n_mice=1, n_trials=30, n_neurons=4)
    (store / "zarr.json").unlink()  # as if the conversion had been killed
    again = sd.example_store(tmp_path, kind="dynamic", n_mice=1, n_trials=30, n_neurons=4)
    assert again == store
    assert len(sd.list_mice(again)) == 1


def test_bad_arguments_name_themselves(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="n_trials"):
        sd.example_store(tmp_path, n_trials=0)
    with pytest.raises(ValueError, match="kind"):
        sd.example_store(tmp_path, kind="images")
