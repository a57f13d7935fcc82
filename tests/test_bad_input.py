"""Every rule of the official layout, broken one at a time: a clear error, nothing finished.

Each breaker edits a valid tree; ``convert`` must raise an error naming the file and what is
wrong, and the output path must not hold a store that opens (nor a half-written mouse).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from trees import write_tree, zip_tree

import sensorium_data as sd
from sensorium_data.errors import InvalidFileTreeError, SensoriumDataError, UnsafePickleError


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _unequal(root: Path) -> None:
    (root / "data" / "behavior" / "36.npy").unlink()


def _missing(root: Path) -> None:
    for key in ("images", "responses", "behavior", "pupil_center"):  # same count, 4 missing
        os.rename(root / "data" / key / "4.npy", root / "data" / key / "37.npy")


def _shape(root: Path) -> None:
    np.save(root / "data" / "responses" / "30.npy", np.zeros(6, dtype="float32"))


def _dtype(root: Path) -> None:
    np.save(root / "data" / "behavior" / "12.npy", np.zeros(3, dtype="float64"))


def _trials_meta(root: Path) -> None:
    np.save(root / "meta" / "trials" / "frame_image_id.npy", np.arange(36))


def _neurons_meta(root: Path) -> None:
    np.save(root / "meta" / "neurons" / "area.npy", np.array(["V1"] * 4))


def _not_npy(root: Path) -> None:
    (root / "data" / "images" / "9.npy").write_bytes(b"\x00not numpy")


def _bad_meta_npy(root: Path) -> None:
    (root / "meta" / "trials" / "tiers.npy").write_bytes(b"PK garbage")


def _pickle(root: Path) -> None:
    np.save(
        root / "meta" / "trials" / "frame_trial_ts.npy",
        np.array([_Evil()] * 37, dtype=object),
        allow_pickle=True,
    )


def _bad_name(root: Path) -> None:
    np.save(root / "data" / "responses" / "extra.npy", np.zeros(5, dtype="float32"))


def _one_missing(root: Path) -> None:
    (root / "data" / "pupil_center" / "5.npy").unlink()


def _npy_minor(root: Path, path: str = "data/responses/3.npy") -> None:
    raw = bytearray((root / path).read_bytes())
    raw[7] = 136  # numpy refuses format version 1.136
    (root / path).write_bytes(bytes(raw))


def _stat(root: Path, key: str, stat: str, value: np.ndarray) -> None:
    np.save(root / "meta" / "statistics" / key / "all" / f"{stat}.npy", value)


def _no_tiers(root: Path) -> None:
    (root / "meta" / "trials" / "tiers.npy").unlink()


def _empty_meta_trials(root: Path) -> None:
    for path in (root / "meta" / "trials").iterdir():
        path.unlink()


def _string_data(root: Path) -> None:
    for path in (root / "data" / "behavior").iterdir():
        np.save(path, np.load(path).astype("<U3"))


def _nested_config(root: Path) -> None:
    (root / "config.json").write_text("[" * 100_000 + "]" * 100_000)


BREAKERS: dict[str, tuple[Callable[[Path], None], type[Exception], str]] = {
    "unequal-trial-counts": (
        _unequal,
        InvalidFileTreeError,
        r"data/behavior/36.npy: trial file is missing; data keys hold unequal numbers of trial "
        r"files \(data/behavior: 36, .*data/images: 37",
    ),
    "one-missing-trial-file": (
        _one_missing,
        InvalidFileTreeError,
        r"data/pupil_center/5.npy: trial file is missing; .*\(.*data/pupil_center: 36, "
        r"data/responses: 37\)",
    ),
    "npy-minor-version": (
        _npy_minor,
        InvalidFileTreeError,
        r"data/responses/3.npy: unsupported .npy format version 1.136",
    ),
    "meta-npy-minor-version": (
        lambda root: _npy_minor(root, "meta/neurons/area.npy"),
        InvalidFileTreeError,
        r"meta/neurons/area.npy: unsupported .npy format version 1.136",
    ),
    "statistics-length-1": (
        lambda root: _stat(root, "responses", "std", np.ones(1)),
        InvalidFileTreeError,
        r"meta/statistics/responses/all/std.npy: has shape \(1,\) but statistics of responses "
        r"need the shape \(5,\) of one trial of data/responses",
    ),
    "statistics-length-4": (
        lambda root: _stat(root, "behavior", "mean", np.ones(4)),
        InvalidFileTreeError,
        r"meta/statistics/behavior/all/mean.npy: has shape \(4,\) but .* need the shape \(3,\)",
    ),
    "statistics-images-shape": (
        lambda root: _stat(root, "images", "mean", np.ones((12, 7))),
        InvalidFileTreeError,
        r"meta/statistics/images/all/mean.npy: has shape \(12, 7\) but .*\(1, 12, 20\) .*"
        r"broadcasts to it",
    ),
    "statistics-strings": (
        lambda root: _stat(root, "pupil_center", "std", np.array(["a", "b"])),
        InvalidFileTreeError,
        r"meta/statistics/pupil_center/all/std.npy: holds <U1 values; statistics must be numbers",
    ),
    "no-tiers": (_no_tiers, InvalidFileTreeError, r"meta/trials/tiers.npy: file is missing"),
    "empty-meta-trials": (
        _empty_meta_trials,
        InvalidFileTreeError,
        r"meta/trials/tiers.npy: file is missing; every tree needs the tier of each trial",
    ),
    "numeric-tiers": (
        lambda root: np.save(root / "meta" / "trials" / "tiers.npy", np.zeros(37)),
        InvalidFileTreeError,
        r"meta/trials/tiers.npy: holds float64\(37,\); expected one tier name per trial",
    ),
    "string-data": (
        _string_data,
        InvalidFileTreeError,
        r"data/behavior/0.npy: holds <U3 values; trials hold numbers \(bool, integer or float\)",
    ),
    "record-meta": (
        lambda root: np.save(root / "meta" / "trials" / "rec.npy", np.zeros(37, "f4,i2")),
        InvalidFileTreeError,
        r"meta/trials/rec.npy: holds \[\('f0', '<f4'\), \('f1', '<i2'\)\] \(raw bytes or "
        r"records\), which the store cannot keep",
    ),
    "nested-config": (
        _nested_config,
        InvalidFileTreeError,
        r"config.json: JSON nested more than 32 levels deep",
    ),
    "missing-trial-file": (
        _missing,
        InvalidFileTreeError,
        r"data/behavior/4.npy: trial file is missing \(data/behavior/ holds 37 files numbered up to 37\)",
    ),
    "trial-shape-differs": (
        _shape,
        InvalidFileTreeError,
        r"data/responses/30.npy: shape \(6,\) dtype float32 differs from trial 0's shape \(5,\)",
    ),
    "trial-dtype-differs": (
        _dtype,
        InvalidFileTreeError,
        r"data/behavior/12.npy: shape \(3,\) dtype float64 differs from trial 0's shape \(3,\) dtype float32",
    ),
    "trial-meta-length": (
        _trials_meta,
        InvalidFileTreeError,
        r"meta/trials/frame_image_id.npy: has length 36 but the tree has 37 trials",
    ),
    "neuron-meta-length": (
        _neurons_meta,
        InvalidFileTreeError,
        r"meta/neurons/area.npy: has length 4 but the tree has 5 neurons",
    ),
    "trial-not-npy": (_not_npy, InvalidFileTreeError, r"data/images/9.npy: not a valid .npy file"),
    "meta-not-npy": (
        _bad_meta_npy,
        InvalidFileTreeError,
        r"meta/trials/tiers.npy: not a valid .npy file",
    ),
    "unsafe-pickle": (
        _pickle,
        UnsafePickleError,
        r"meta/trials/frame_trial_ts.npy: refused to unpickle",
    ),
    "bad-trial-name": (
        _bad_name,
        InvalidFileTreeError,
        r"data/responses/extra.npy: unexpected file name",
    ),
}


def assert_nothing_finished(store: Path) -> None:
    """The output holds no store at all, or one whose mice all open (none half-written)."""
    if not store.exists():
        return
    try:
        mice = sd.list_mice(store)
    except sd.StoreNotFoundError:
        return
    for mouse, meta in mice.items():
        assert meta["complete"], f"{mouse} is half-written"
        sd.open_mouse(store, mouse)


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("breaker", list(BREAKERS))
def test_bad_tree_gives_clear_error_and_no_store(
    tmp_path: Path, breaker: str, as_zip: bool
) -> None:
    edit, error, message = BREAKERS[breaker]
    root = write_tree(tmp_path)
    edit(root)
    src = zip_tree(root) if as_zip else root
    store = tmp_path / "out.zarr"
    with pytest.raises(error, match=message) as info:
        sd.convert([src], store, progress=False)
    assert str(src) in str(info.value)
    assert not store.exists()  # a new store is removed again when its only mouse fails


def test_bad_mouse_added_to_existing_store_keeps_the_others(tmp_path: Path) -> None:
    good = write_tree(tmp_path / "good")
    store = tmp_path / "out.zarr"
    sd.convert([good], store, progress=False)
    bad = write_tree(tmp_path / "bad", "dynamic")
    np.save(bad / "data" / "videos" / "20.npy", np.zeros((6, 10, 19), dtype="float32"))
    with pytest.raises(InvalidFileTreeError, match="data/videos/20.npy"):
        sd.convert([bad], store, progress=False)
    assert list(sd.list_mice(store)) == ["11111-1-1"]
    assert_nothing_finished(store)
    from sensorium_data.store.verify import verify

    assert verify(store, [good]) == []


def _zip_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    out = tmp_path / "weird.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


@pytest.mark.parametrize(
    "members, message",
    [
        (
            {"top/data/responses/0.npy": b"", "../escape.npy": b"x"},
            "would escape the zip's top folder",
        ),
        ({"top/data/responses/0.npy": b"", "top/../../etc/x": b"x"}, "would escape"),
        ({"/abs/data/responses/0.npy": b""}, "would escape"),
        (
            {"data/responses/0.npy": b"", "config.json": b"{}"},
            "'config.json' lie at the zip's root",
        ),
        ({"config.json": b"{}"}, "lie at the zip's root; expected exactly one top-level folder"),
        (
            {"a/data/responses/0.npy": b"", "b/data/responses/0.npy": b""},
            "expected exactly one top-level folder in the zip, found 2: a, b",
        ),
        ({}, "found 0"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "loose-and-folder",
        "no-folder",
        "two-folders",
        "empty",
    ],
)
def test_bad_zip_layouts(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    src = _zip_with(tmp_path, members)
    with pytest.raises(InvalidFileTreeError, match=message):
        sd.convert([src], tmp_path / "out.zarr", progress=False)
    assert not (tmp_path / "out.zarr").exists()


def test_not_a_zip_and_missing_paths(tmp_path: Path) -> None:
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip")
    with pytest.raises(InvalidFileTreeError, match="fake.zip: not a valid zip file"):
        sd.open_tree(fake)
    with pytest.raises(InvalidFileTreeError, match="nowhere: no such folder"):
        sd.open_tree(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidFileTreeError, match="is this the top folder"):
        sd.open_tree(tmp_path / "empty")


def test_refuses_to_write_into_a_foreign_zarr_group(tmp_path: Path) -> None:
    import zarr

    foreign = tmp_path / "foreign.zarr"
    zarr.create_group(str(foreign), zarr_format=3, attributes={"mine": 1})
    root = write_tree(tmp_path)
    with pytest.raises(SensoriumDataError, match="not a sensorium_data store; refusing"):
        sd.convert([root], foreign, progress=False)
    assert dict(zarr.open_group(str(foreign), mode="r").attrs) == {"mine": 1}
    assert sorted(os.listdir(foreign)) == ["zarr.json"]
