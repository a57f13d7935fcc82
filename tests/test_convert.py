"""convert -> verify -> export round trips of both years, and the store's contract."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from trees import write_tree, zip_tree

import sensorium_data as sd
from sensorium_data.store.export import export
from sensorium_data.store.verify import verify


def same_files(a: Path, b: Path) -> list[str]:
    """Relative paths whose bytes differ or exist on one side only."""
    rel = lambda root: {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    ra, rb = rel(a), rel(b)
    out = sorted(ra ^ rb)
    out += [p for p in sorted(ra & rb) if not filecmp.cmp(a / p, b / p, shallow=False)]
    return out


def assert_same_mouse(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.drop_attrs().load(), b.drop_attrs().load())


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_round_trip_convert_verify_export(tmp_path: Path, kind: str) -> None:
    src = write_tree(tmp_path / "src", kind)
    store = tmp_path / "out.zarr"
    assert sd.convert([src], store, progress=False) == [sd.open_tree(src).data_key]
    assert verify(store, [src]) == []
    back = export(store, None, tmp_path / "exported")
    assert back.name == src.name
    assert same_files(src, back) == []  # every file byte for byte: names, dtypes, pickles


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_schema_of_an_opened_mouse(tmp_path: Path, kind: str) -> None:
    src = write_tree(tmp_path, kind, n_trials=37, n_neurons=5, n_frames=20)
    store = tmp_path / "out.zarr"
    sd.convert([src], store, progress=False)
    ds = sd.open_mouse(store)
    assert ds.sizes["trial"] == 37 and ds.sizes["neuron"] == 5
    np.testing.assert_array_equal(ds.trial, np.arange(37))
    np.testing.assert_array_equal(ds.neuron, np.load(src / "meta/neurons/unit_ids.npy"))
    assert "trial_scan_idx" in ds.coords and "neuron_scan_idx" in ds.coords  # name in both folders
    assert ds.frame_trial_ts.dims == ("trial",)
    assert str(ds.frame_trial_ts.values[0]) == "Timestamp('2019-07-03 10:00:00')"
    assert ds.cell_motor_coordinates.dims == ("neuron", "xyz")
    assert list(ds.pupil_axis.values) == ["horizontal", "vertical"]
    stimulus = "images" if kind == "static" else "videos"
    if kind == "static":
        assert ds[stimulus].dims == ("trial", "channel", "height", "width")
        assert list(ds.behavior_variable.values) == [
            "pupil_dilation",
            "pupil_dilation_derivative",
            "running_speed",
        ]
        assert ds.responses.dims == ("trial", "neuron")
    else:
        assert ds[stimulus].dims == ("trial", "height", "width", "frame")
        assert ds.responses.dims == ("trial", "neuron", "frame")
        assert list(ds.behavior_variable.values) == ["pupil_dilation", "running_speed"]
        nan_frames = [np.isnan(np.load(src / f"data/responses/{i}.npy")).any(0) for i in range(37)]
        first_nan = [int(f.argmax()) if f.any() else 20 for f in nan_frames]
        np.testing.assert_array_equal(ds.valid_frames, first_nan)
    for name in ("responses", stimulus, "behavior", "pupil_center"):
        i = 17
        np.testing.assert_array_equal(ds[name][i].values, np.load(src / f"data/{name}/{i}.npy"))
        assert ds[name].dtype == np.load(src / f"data/{name}/0.npy").dtype
    stats = sd.open_statistics(store)
    np.testing.assert_array_equal(
        stats["responses"]["all"]["std"].values,
        np.load(src / "meta/statistics/responses/all/std.npy"),
    )
    assert set(stats["responses"]) == {"all", "stimulus_frame"}
    meta = ds.attrs["sensorium"]
    assert meta["kind"] == kind and meta["source_name"] == src.name and meta["complete"] is True


def test_integer_images_stay_integer(tmp_path: Path) -> None:
    src = write_tree(tmp_path, image_dtype="uint8")
    sd.convert([src], tmp_path / "s.zarr", progress=False)
    assert sd.open_mouse(tmp_path / "s.zarr").images.dtype == np.uint8
    assert verify(tmp_path / "s.zarr", [src]) == []


def test_zip_and_folder_give_the_same_store(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "a", "dynamic")
    zipped = zip_tree(src)
    sd.convert([src], tmp_path / "folder.zarr", progress=False)
    sd.convert([zipped], tmp_path / "zip.zarr", progress=False)
    assert_same_mouse(sd.open_mouse(tmp_path / "folder.zarr"), sd.open_mouse(tmp_path / "zip.zarr"))
    assert verify(tmp_path / "zip.zarr", [zipped]) == []


@pytest.mark.slow
def test_several_mice_one_store_and_adding_keeps_the_others(tmp_path: Path) -> None:
    a = write_tree(tmp_path, "static", name="static11111-1-1-GrayImageNet-x")
    b = write_tree(tmp_path, "dynamic", name="dynamic22222-2-2-Video-x", seed=1)
    c = write_tree(tmp_path, "static", name="static33333-3-3-GrayImageNet-x", seed=2)
    store = tmp_path / "s.zarr"
    assert sd.convert([a, b], store, progress=False) == ["11111-1-1", "22222-2-2"]
    before = sd.open_mouse(store, "11111-1-1").load()
    sd.convert([c], store, progress=False)
    tree = sd.open_store(store)
    assert {k for k in tree.children} == {"11111-1-1", "22222-2-2", "33333-3-3"}
    assert_same_mouse(tree["11111-1-1"].to_dataset(inherit=False), before)
    assert sd.open_mouse(store, "dynamic22222-2-2-Video-x").attrs["sensorium"]["kind"] == "dynamic"
    assert verify(store, [a, b, c]) == []


def test_same_mouse_twice_is_refused_unless_overwrite(tmp_path: Path) -> None:
    src = write_tree(tmp_path)
    store = tmp_path / "s.zarr"
    sd.convert([src], store, progress=False)
    with pytest.raises(sd.MouseExistsError, match="already holds mouse 11111-1-1.*--overwrite"):
        sd.convert([src], store, progress=False)
    np.save(src / "data/responses/3.npy", np.full(5, 7, dtype="float32"))
    assert verify(store, [src]) != []
    sd.convert([src], store, progress=False, overwrite=True)
    assert verify(store, [src]) == []
    with pytest.raises(sd.InvalidFileTreeError, match="are the same mouse"):
        sd.convert([src, zip_tree(src)], tmp_path / "t.zarr", progress=False)


def test_chunking_options_are_applied_and_lossless(tmp_path: Path) -> None:
    src = write_tree(tmp_path, "dynamic", n_trials=11, n_frames=30, n_neurons=3)
    store = tmp_path / "s.zarr"
    opts = sd.ChunkOptions(
        trials_per_chunk=2, trials_per_shard=5, frames_per_chunk=7, compressor="zstd", clevel=3
    )
    sd.convert([src], store, chunking=opts, progress=False)
    arr = zarr.open_array(str(store / "22222-2-2" / "videos"), mode="r")
    assert arr.chunks == (2, 6, 10, 7) and arr.shards == (4, 6, 10, 35)
    assert verify(store, [src]) == []
    with pytest.raises(ValueError, match="frames_per_chunk must be a positive integer"):
        sd.ChunkOptions(frames_per_chunk=0)
    with pytest.raises(ValueError, match="compressor must be one of"):
        sd.ChunkOptions(compressor="gzip9")


def test_full_size_trial_shapes_get_frame_chunks(tmp_path: Path) -> None:
    from sensorium_data.store.schema import ChunkOptions, choose_chunks

    chunks, shards = choose_chunks(
        "dynamic", ("trial", "neuron", "frame"), (700, 8000, 300), 4, ChunkOptions()
    )
    assert chunks == (1, 8000, 25) and shards == (4, 8000, 300)
    chunks, shards = choose_chunks(
        "dynamic", ("trial", "behavior_variable", "frame"), (700, 2, 300), 4, ChunkOptions()
    )
    assert chunks == (1, 2, 300)  # small trials: one chunk per trial, no frame split
    chunks, shards = choose_chunks(
        "static", ("trial", "channel", "height", "width"), (6000, 1, 144, 256), 4, ChunkOptions()
    )
    assert chunks == (16, 1, 144, 256) and shards == (512, 1, 144, 256)


@pytest.mark.parametrize("scheduler", ["synchronous", "processes"])
def test_local_schedulers(tmp_path: Path, scheduler: str) -> None:
    src = zip_tree(write_tree(tmp_path, "dynamic"))
    store = tmp_path / "s.zarr"
    sd.convert([src], store, scheduler=scheduler, num_workers=2, progress=False)
    assert verify(store, [src]) == []


def test_dask_distributed_cluster(tmp_path: Path) -> None:
    from distributed import LocalCluster

    src = write_tree(tmp_path, "static", n_trials=70)
    store = tmp_path / "s.zarr"
    opts = sd.ChunkOptions(trials_per_chunk=4, trials_per_shard=8)  # 9 tasks over 2 processes
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        sd.convert([src], store, scheduler=cluster.scheduler_address, chunking=opts, progress=False)
    assert verify(store, [src]) == []


def test_bad_scheduler_and_memory_store_with_processes(tmp_path: Path) -> None:
    src = write_tree(tmp_path)
    with pytest.raises(ValueError, match="scheduler must be threads"):
        sd.convert([src], tmp_path / "s.zarr", scheduler="gpu", progress=False)
    with pytest.raises(ValueError, match="memory:// store lives in one process"):
        sd.convert([src], "memory://x/s.zarr", scheduler="processes", progress=False)
    assert not (tmp_path / "s.zarr").exists()


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(sd.StoreNotFoundError, match="no Zarr v3 store here"):
        sd.open_mouse(tmp_path / "nothing.zarr")
    a = write_tree(tmp_path, name="static11111-1-1-GrayImageNet-x")
    b = write_tree(tmp_path, name="static22222-1-1-GrayImageNet-x")
    sd.convert([a, b], tmp_path / "s.zarr", progress=False)
    with pytest.raises(
        sd.MouseNotFoundError, match=r"holds 2 mice \(11111-1-1, 22222-1-1\); pass mouse"
    ):
        sd.open_mouse(tmp_path / "s.zarr")
    with pytest.raises(KeyError, match="holds no mouse '99999-9-9'"):
        sd.open_mouse(tmp_path / "s.zarr", "99999-9-9")
    assert os.path.isdir(tmp_path / "s.zarr" / "11111-1-1")


def _shuffle(store: Path, mouse: str, name: str) -> str:
    codecs = zarr.open_array(str(store / mouse / name), mode="r").metadata.to_dict()["codecs"]
    return codecs[0]["configuration"]["codecs"][1]["configuration"]["shuffle"]


def test_shuffle_auto_per_variable_and_override(tmp_path: Path) -> None:
    src = write_tree(tmp_path, "dynamic")
    sd.convert([src], tmp_path / "auto.zarr", progress=False)
    got = {
        v: _shuffle(tmp_path / "auto.zarr", "22222-2-2", v)
        for v in ("videos", "responses", "behavior")
    }
    assert got == {"videos": "bitshuffle", "responses": "noshuffle", "behavior": "shuffle"}
    sd.convert(
        [src], tmp_path / "one.zarr", chunking=sd.ChunkOptions(shuffle="bitshuffle"), progress=False
    )
    assert _shuffle(tmp_path / "one.zarr", "22222-2-2", "responses") == "bitshuffle"
    assert verify(tmp_path / "one.zarr", [src]) == []
    with pytest.raises(ValueError, match="shuffle must be one of auto"):
        sd.ChunkOptions(shuffle="byte")


def test_model_ready_images_are_the_kits_rescale_and_verified(tmp_path: Path) -> None:
    from sensorium_data.loading.transforms import rescale_images

    src = write_tree(tmp_path, "static", n_trials=21)
    store = tmp_path / "s.zarr"
    opts = sd.ChunkOptions(image_scales=(0.5, 0.25), trials_per_chunk=4, trials_per_shard=8)
    sd.convert([src], store, chunking=opts, progress=False)
    mouse = zarr.open_group(str(store / "11111-1-1"), mode="r")
    full = mouse["images"][...]
    assert dict(mouse.attrs)["sensorium"]["scaled"] == {
        "0.25": "scaled/0.25/images",
        "0.5": "scaled/0.5/images",
    }
    for scale in (0.25, 0.5):
        small = mouse[f"scaled/{scale}/images"]
        assert small.dtype == np.float32 and small.chunks[0] == 4
        np.testing.assert_array_equal(small[...], rescale_images(full, scale))
    assert verify(store, [src]) == []
    # a corrupted copy is reported, naming it
    zarr.open_array(str(store / "11111-1-1" / "scaled" / "0.5" / "images"), mode="r+")[9] = 0
    (problem,) = verify(store, [src])
    assert "scaled/0.5/images trials 8..15" in problem
    # none are stored on request, and 2023 videos never get one
    sd.convert(
        [src], store, chunking=sd.ChunkOptions(image_scales=()), overwrite=True, progress=False
    )
    assert "scaled" not in zarr.open_group(str(store / "11111-1-1"), mode="r")
    with pytest.raises(ValueError, match="image_scales must be factors between 0 and 1"):
        sd.ChunkOptions(image_scales=(2.0,))
