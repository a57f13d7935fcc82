"""Store statistics with dask (``sensorium_data.analysis``), on a ``LocalCluster`` of worker
processes: the released statistics of synthetic mice (made from their train trials) must come
back exactly, and the oracle and explainable variance must equal the in-memory metrics."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import xarray as xr

import sensorium_data as sd
from sensorium_data import analysis, metrics


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def static_store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    # the last mouse is a competition mouse: its test responses are withheld (zero)
    return sd.example_store(
        tmp_path_factory.mktemp("static"), kind="static", n_mice=2, n_trials=150, n_neurons=7
    )


@pytest.fixture(scope="module")
def dynamic_store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return sd.example_store(
        tmp_path_factory.mktemp("dynamic"),
        kind="dynamic",
        n_mice=1,
        n_trials=40,
        n_neurons=5,
        n_frames=60,
        competition=False,
    )


def assert_released(store: pathlib.Path, mouse: str, scheduler: Any) -> None:
    again = analysis.recompute_statistics(store, mouse, scheduler=scheduler)
    stored = sd.open_statistics(store, mouse)
    assert set(again) == set(stored)
    for key, ds in again.items():
        for name in analysis.STATISTICS:
            np.testing.assert_array_equal(
                ds[name].values, stored[key]["all"][name].values, err_msg=f"{key} {name}"
            )


class TestRecomputedStatistics:
    def test_2022_on_a_cluster_of_processes(self, static_store, cluster) -> None:
        for mouse in sd.list_mice(static_store):
            assert_released(static_store, mouse, cluster)

    def test_2023_per_frame(self, dynamic_store, cluster) -> None:
        (mouse,) = sd.list_mice(dynamic_store)
        assert_released(dynamic_store, mouse, cluster)
        stats = analysis.recompute_statistics(dynamic_store, mouse, scheduler="synchronous")
        assert stats["videos"]["mean"].dims == ("height", "width", "frame")
        assert stats["responses"]["mean"].dims == ("neuron", "frame")

    def test_chosen_keys(self, static_store) -> None:
        mouse = next(iter(sd.list_mice(static_store)))
        only = analysis.recompute_statistics(static_store, mouse, keys=("responses",))
        assert set(only) == {"responses"}
        given = analysis.neuron_summary(static_store, mouse, statistics=only["responses"])
        xr.testing.assert_identical(given, analysis.neuron_summary(static_store, mouse))

    def test_another_tier_differs(self, static_store) -> None:
        mouse = next(iter(sd.list_mice(static_store)))
        valid = analysis.recompute_statistics(static_store, mouse, tier="validation")
        train = analysis.recompute_statistics(static_store, mouse)
        assert not np.array_equal(valid["responses"]["mean"], train["responses"]["mean"])

    def test_bad_arguments(self, static_store) -> None:
        mouse = next(iter(sd.list_mice(static_store)))
        with pytest.raises(ValueError, match="tier: .* has no trials of \\['nope'\\]"):
            analysis.recompute_statistics(static_store, mouse, tier="nope")
        with pytest.raises(ValueError, match="scheduler must be threads"):
            analysis.recompute_statistics(static_store, mouse, scheduler="gpu")


class TestSummary:
    def test_oracle_and_explainable_variance(self, static_store, cluster) -> None:
        summary = analysis.store_summary(static_store, scheduler=cluster)

        def withheld(mouse: str) -> bool:
            ds = sd.open_mouse(static_store, mouse, chunks=None)
            return not ds.responses.values[ds.tiers.values == "test"].any()

        first, competition = sorted(sd.list_mice(static_store), key=withheld)
        ds = sd.open_mouse(static_store, first, chunks=None)
        test = np.flatnonzero(ds.tiers.values == "test")
        responses, ids = ds.responses.values[test], ds.frame_image_id.values[test]
        one = summary[first]
        np.testing.assert_allclose(
            one.oracle_correlation, metrics.oracle_correlation(responses, ids), rtol=1e-6
        )
        np.testing.assert_allclose(
            one.explainable_variance, metrics.explainable_variance(responses, ids), rtol=1e-6
        )
        np.testing.assert_array_equal(one.neuron, ds.neuron)
        train = ds.responses.values[ds.tiers.values == "train"]
        np.testing.assert_allclose(one.response_mean, train.mean(0), rtol=1e-6)
        # the competition mouse withholds its test responses: nothing to say about repeats
        assert np.isnan(summary[competition].oracle_correlation).all()

    def test_2023_summary(self, dynamic_store) -> None:
        (mouse,) = sd.list_mice(dynamic_store)
        one = analysis.neuron_summary(dynamic_store, mouse)
        np.testing.assert_allclose(
            one.oracle_correlation, metrics.store_oracle(dynamic_store, mouse), rtol=1e-6
        )
        assert one.attrs["repeats_tier"] == "oracle"

    def test_command_line(self, static_store, tmp_path, capsys) -> None:
        from sensorium_data.cli import main

        out = tmp_path / "stats.zarr"
        assert main(["stats", str(static_store), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert printed.count(" equal") == 2  # both mice's stored statistics recomputed
        tree = xr.open_datatree(out, engine="zarr", consolidated=False)
        assert set(tree.children) == set(sd.list_mice(static_store))
        assert main(["stats", str(static_store), "--scheduler", "gpu"]) == 1
        assert "scheduler must be threads" in capsys.readouterr().err
