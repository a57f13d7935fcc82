"""Tests of the synthetic SENSORIUM data generator (both years)."""

from __future__ import annotations

import io
import json
import pathlib
import re
import zipfile
from typing import Any

import numpy as np
import pytest

from sensorium_data.synthetic import synthesize

STATIC_KEYS = {"images": (1, 144, 256), "responses": (64,), "behavior": (3,), "pupil_center": (2,)}
STATS = {"mean", "std", "min", "max", "median"}
DYNAMIC_TIERS = {
    "train",
    "oracle",
    "live_test_main",
    "live_test_bonus",
    "final_test_main",
    "final_test_bonus",
    "none",
}


def _load(tree: pathlib.Path, key: str, i: int | np.integer[Any]) -> np.ndarray:
    return np.asarray(np.load(tree / "data" / key / f"{i}.npy"))


def _meta(tree: pathlib.Path, group: str, name: str) -> np.ndarray:
    path = tree / "meta" / group / f"{name}.npy"
    return np.asarray(np.load(path, allow_pickle=name == "frame_trial_ts"))


def _stack(tree: pathlib.Path, key: str) -> np.ndarray:
    n = len(_meta(tree, "trials", "tiers"))
    return np.stack([_load(tree, key, i) for i in range(n)])


def _truth(tree: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(tree.with_name(tree.name + ".ground_truth.npz")) as npz:
        return dict(npz)


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column correlation of (samples, columns) arrays."""
    a, b = a - a.mean(0), b - b.mean(0)
    return np.asarray((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-12))


@pytest.fixture(scope="module")
def static_trees(tmp_path_factory: pytest.TempPathFactory) -> list[pathlib.Path]:
    return synthesize(tmp_path_factory.mktemp("static"), kind="static", n_mice=2)


@pytest.fixture(scope="module")
def dynamic_trees(tmp_path_factory: pytest.TempPathFactory) -> list[pathlib.Path]:
    return synthesize(tmp_path_factory.mktemp("dynamic"), kind="dynamic", n_mice=2)


class TestStaticLayout:
    def test_folder_and_data_files(self, static_trees: list[pathlib.Path]) -> None:
        assert len(static_trees) == 2
        keys = set()
        for tree in static_trees:
            match = re.fullmatch(r"static(\d+-\d+-\d+)-GrayImageNet-[0-9a-f]{32}", tree.name)
            assert match, tree.name
            keys.add(match.group(1))
            assert json.loads((tree / "config.json").read_text()) == {"links": {}}
            assert {p.name for p in (tree / "data").iterdir()} == set(STATIC_KEYS)
            for key, shape in STATIC_KEYS.items():
                names = {p.name for p in (tree / "data" / key).iterdir()}
                assert names == {f"{i}.npy" for i in range(240)}
                for i in (0, 117, 239):
                    arr = _load(tree, key, i)
                    assert arr.shape == shape and arr.dtype == np.float32
        assert len(keys) == 2
        images = _load(static_trees[0], "images", 3)
        assert images.min() >= 0 and images.max() <= 255
        assert np.array_equal(images, np.round(images))

    def test_meta_neurons(self, static_trees: list[pathlib.Path]) -> None:
        for tree in static_trees:
            unit_ids = _meta(tree, "neurons", "unit_ids")
            assert unit_ids.dtype == np.int64 and unit_ids.shape == (64,)
            assert len(np.unique(unit_ids)) == 64 and not np.array_equal(unit_ids, np.arange(64))
            assert set(_meta(tree, "neurons", "area")) == {"V1"}
            assert set(_meta(tree, "neurons", "layer")) <= {"L2/3", "L4"}
            coords = _meta(tree, "neurons", "cell_motor_coordinates")
            assert coords.dtype == np.float64 and coords.shape == (64, 3)
            for name in ("animal_ids", "sessions", "scan_idx"):
                values = _meta(tree, "neurons", name)
                assert values.shape == (64,) and values.dtype.kind == "i"
                assert len(set(values)) == 1
            assert str(_meta(tree, "neurons", "animal_ids")[0]) in tree.name

    def test_meta_trials(self, static_trees: list[pathlib.Path]) -> None:
        for m, tree in enumerate(static_trees):
            fields = {p.stem for p in (tree / "meta" / "trials").iterdir()}
            assert fields == {
                "tiers",
                "frame_image_id",
                "frame_image_class",
                "trial_idx",
                "frame_trial_ts",
                "scan_idx",
                "frame_pre_blank_period",
            }
            for name in fields:
                assert len(_meta(tree, "trials", name)) == 240
            tiers = _meta(tree, "trials", "tiers")
            assert tiers.dtype == np.dtype("<U10")
            expected = {"train", "validation", "test"} | ({"final_test"} if m == 1 else set())
            assert set(tiers) == expected
            assert _meta(tree, "trials", "frame_image_id").dtype == np.int64
            assert _meta(tree, "trials", "frame_pre_blank_period").dtype == np.float64
            stamps = _meta(tree, "trials", "frame_trial_ts")
            assert stamps.dtype == object
            for s in stamps[:5]:
                assert type(s) is str
                assert re.fullmatch(r"Timestamp\('\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?'\)", s)

    def test_statistics(self, static_trees: list[pathlib.Path]) -> None:
        tree = static_trees[0]
        shapes = {"images": (), "responses": (64,), "behavior": (3,), "pupil_center": (2,)}
        train = np.flatnonzero(_meta(tree, "trials", "tiers") == "train")
        for key, shape in shapes.items():
            for sub in ("all", "stimulus_frame"):
                folder = tree / "meta" / "statistics" / key / sub
                assert {p.stem for p in folder.iterdir()} == STATS
                for stat in STATS:
                    assert np.load(folder / f"{stat}.npy").shape == shape
        responses = np.stack([_load(tree, "responses", i) for i in train])
        stats = tree / "meta" / "statistics" / "responses" / "all"
        np.testing.assert_allclose(np.load(stats / "mean.npy"), responses.mean(0), rtol=1e-5)
        np.testing.assert_allclose(
            np.load(stats / "median.npy"), np.median(responses, 0), rtol=1e-5
        )
        images = np.stack([_load(tree, "images", i) for i in train[:200]])
        if len(train) <= 200:
            stats = tree / "meta" / "statistics" / "images" / "all"
            assert np.load(stats / "median.npy") == np.median(images)
            np.testing.assert_allclose(np.load(stats / "mean.npy"), images.mean(), rtol=1e-5)

    def test_file_order_is_not_presentation_order(self, static_trees: list[pathlib.Path]) -> None:
        trial_idx = _meta(static_trees[0], "trials", "trial_idx")
        assert trial_idx.dtype == np.int64
        assert sorted(trial_idx) == list(range(240))
        assert not np.array_equal(trial_idx, np.arange(240))


class TestDynamicLayout:
    def test_folder_and_data_files(self, dynamic_trees: list[pathlib.Path]) -> None:
        shapes = {
            "videos": (36, 64, 90),
            "responses": (32, 90),
            "behavior": (2, 90),
            "pupil_center": (2, 90),
        }
        for tree in dynamic_trees:
            assert re.fullmatch(r"dynamic\d+-\d+-\d+-Video-[0-9a-f]{32}", tree.name), tree.name
            for key, shape in shapes.items():
                names = {p.name for p in (tree / "data" / key).iterdir()}
                assert names == {f"{i}.npy" for i in range(60)}
                for i in (0, 59):
                    arr = _load(tree, key, i)
                    assert arr.shape == shape and arr.dtype == np.float32
            unit_ids = _meta(tree, "neurons", "unit_ids")
            assert unit_ids.dtype == np.uint32 and len(np.unique(unit_ids)) == 32
            assert _meta(tree, "neurons", "cell_motor_coordinates").shape == (32, 3)
            tiers = _meta(tree, "trials", "tiers")
            assert len(tiers) == 60 and set(tiers) == DYNAMIC_TIERS
            for key, shape in shapes.items():
                folder = tree / "meta" / "statistics" / key / "all"
                assert {p.stem for p in folder.iterdir()} == STATS
                for stat in STATS:
                    assert np.load(folder / f"{stat}.npy").shape == shape

    def test_nan_padding(self, dynamic_trees: list[pathlib.Path]) -> None:
        tree = dynamic_trees[0]
        truth = _truth(tree)
        lengths = []
        for i in range(60):
            arrays = {
                k: _load(tree, k, i) for k in ("videos", "responses", "behavior", "pupil_center")
            }
            length = int(np.argmax(np.isnan(arrays["videos"][0, 0]))) or 90
            for key, arr in arrays.items():
                assert not np.isnan(arr[..., :length]).any(), (i, key)
                assert np.isnan(arr[..., length:]).all(), (i, key)
            assert np.isnan(truth["rates"][i][:, length:]).all()
            assert not np.isnan(truth["rates"][i][:, :length]).any()
            lengths.append(length)
        assert lengths == list(truth["valid_length"])
        assert min(lengths) >= 60 and max(lengths) == 90 and min(lengths) < 90
        mean = np.load(tree / "meta" / "statistics" / "responses" / "all" / "mean.npy")
        assert np.isfinite(mean).all()  # every frame valid in some train trial

    def test_per_frame_statistics(self, dynamic_trees: list[pathlib.Path]) -> None:
        tree = dynamic_trees[0]
        train = np.flatnonzero(_meta(tree, "trials", "tiers") == "train")
        behavior = np.stack([_load(tree, "behavior", i) for i in train])
        folder = tree / "meta" / "statistics" / "behavior" / "all"
        np.testing.assert_allclose(np.load(folder / "mean.npy"), np.nanmean(behavior, 0), rtol=1e-5)
        np.testing.assert_allclose(
            np.load(folder / "median.npy"), np.nanmedian(behavior, 0), rtol=1e-5
        )


class TestSharedStimuli:
    def test_static_test_images_shared_and_repeated(self, static_trees: list[pathlib.Path]) -> None:
        by_id: dict[int, bytes] = {}
        id_sets = []
        for tree in static_trees:
            tiers = _meta(tree, "trials", "tiers")
            ids = _meta(tree, "trials", "frame_image_id")
            test = np.flatnonzero(tiers == "test")
            _, counts = np.unique(ids[test], return_counts=True)
            assert counts.min() >= 2 and len(counts) >= 2
            for i in test:
                image = _load(tree, "images", i).tobytes()
                assert by_id.setdefault(int(ids[i]), image) == image
            id_sets.append(set(ids[test]))
            assert not set(ids[test]) & set(ids[tiers == "train"])
        assert id_sets[0] == id_sets[1]
        train_ids = [
            set(_meta(t, "trials", "frame_image_id")[_meta(t, "trials", "tiers") == "train"])
            for t in static_trees
        ]
        assert not train_ids[0] & train_ids[1]

    def test_dynamic_repeated_clips(self, dynamic_trees: list[pathlib.Path]) -> None:
        clips = []
        for tree in dynamic_trees:
            tiers = _meta(tree, "trials", "tiers")
            groups: dict[bytes, int] = {}
            for i in np.flatnonzero(tiers == "oracle"):
                video = _load(tree, "videos", i).tobytes()
                groups[video] = groups.get(video, 0) + 1
            assert len(groups) >= 1 and min(groups.values()) >= 2
            clips.append(set(groups))
            train = {_load(tree, "videos", i).tobytes() for i in np.flatnonzero(tiers == "train")}
            assert len(train) == int((tiers == "train").sum())
        assert clips[0] == clips[1]
        types = set(_truth(dynamic_trees[0])["stimulus_type"])
        assert {"natural_movie", "gaussian_dots", "drifting_grating"} <= types


class TestCompetition:
    def test_static_competition_mouse(self, static_trees: list[pathlib.Path]) -> None:
        normal, comp = static_trees
        tiers = _meta(comp, "trials", "tiers")
        for i in np.flatnonzero(np.isin(tiers, ["test", "final_test"])):
            assert not _load(comp, "responses", i).any()
        assert _stack(comp, "responses")[tiers == "train"].any()
        trial_idx = _meta(comp, "trials", "trial_idx")
        assert trial_idx.dtype.kind == "U"
        assert all(re.fullmatch(r"[0-9a-f]{32}", s) for s in trial_idx)
        assert len(set(trial_idx)) == 240
        tiers = _meta(normal, "trials", "tiers")
        assert _stack(normal, "responses")[tiers == "test"].any()
        assert _truth(comp)["competition"] and not _truth(normal)["competition"]
        assert np.abs(_truth(comp)["rates"][np.isin(tiers, ["test"])]).sum() > 0

    def test_dynamic_competition_mouse(self, dynamic_trees: list[pathlib.Path]) -> None:
        normal, comp = dynamic_trees
        withheld = ["live_test_main", "live_test_bonus", "final_test_main", "final_test_bonus"]
        tiers = _meta(comp, "trials", "tiers")
        for i in np.flatnonzero(np.isin(tiers, withheld)):
            assert not np.nan_to_num(_load(comp, "responses", i)).any()
        for i in np.flatnonzero(tiers == "oracle"):
            assert np.nan_to_num(_load(comp, "responses", i)).any()
        tiers = _meta(normal, "trials", "tiers")
        assert any(
            np.nan_to_num(_load(normal, "responses", i)).any()
            for i in np.flatnonzero(tiers == "live_test_main")
        )

    @pytest.mark.parametrize("flag", [True, False])
    def test_forced(self, tmp_path: pathlib.Path, flag: bool) -> None:
        trees = synthesize(
            tmp_path, kind="static", n_trials=30, n_neurons=3, image_size=(18, 32), competition=flag
        )
        tiers = set(_meta(trees[0], "trials", "tiers"))
        assert ("final_test" in tiers) is flag


class TestGroundTruth:
    def test_static_rates_predict_responses(self, static_trees: list[pathlib.Path]) -> None:
        tree = static_trees[0]
        truth = _truth(tree)
        train = _meta(tree, "trials", "tiers") == "train"
        responses = _stack(tree, "responses")
        assert truth["rates"].shape == (240, 64) and truth["rates"].dtype == np.float32
        assert np.array_equal(truth["unit_ids"], _meta(tree, "neurons", "unit_ids"))
        assert np.mean(_corr(truth["rates"][train], responses[train])) > 0.3

    def test_dynamic_rates_predict_responses(self, dynamic_trees: list[pathlib.Path]) -> None:
        tree = dynamic_trees[0]
        truth = _truth(tree)
        assert truth["rates"].shape == (60, 32, 90)
        train = np.flatnonzero(_meta(tree, "trials", "tiers") == "train")
        rates = np.concatenate([truth["rates"][i][:, : truth["valid_length"][i]] for i in train], 1)
        resp = np.concatenate(
            [_load(tree, "responses", i)[:, : truth["valid_length"][i]] for i in train], 1
        )
        assert np.mean(_corr(rates.T, resp.T)) > 0.3

    def test_behavior_modulates_gain(self, static_trees: list[pathlib.Path]) -> None:
        tree = static_trees[0]
        truth = _truth(tree)
        train = _meta(tree, "trials", "tiers") == "train"
        responses = _stack(tree, "responses")[train]
        running = _stack(tree, "behavior")[train, 2:3]
        assert np.mean(_corr(np.repeat(running, 64, 1), responses)) > 0.1
        log_gain = truth["behavior_gain"] * truth["behavior_state"] @ truth["gain_weights"].T
        stimulus_only = truth["rates"] / np.exp(log_gain)
        with_behavior = np.mean(_corr(truth["rates"][train], responses))
        without = np.mean(_corr(stimulus_only[train], responses))
        assert with_behavior > without + 0.05

    def test_eye_position_matches_pupil_center(self, static_trees: list[pathlib.Path]) -> None:
        tree = static_trees[0]
        truth = _truth(tree)
        pupil = _stack(tree, "pupil_center")
        expected = (pupil - truth["eye_center"]) / truth["eye_scale"]
        np.testing.assert_allclose(truth["eye_position"], expected, atol=1e-3)

    def test_stimulus_only_encoder(self, tmp_path: pathlib.Path) -> None:
        kwargs: dict[str, Any] = {"kind": "static", "n_trials": 40, "n_neurons": 8}
        (plain,) = synthesize(tmp_path / "a", **kwargs, image_size=(36, 64))
        (tree,) = synthesize(
            tmp_path / "b", **kwargs, image_size=(36, 64), behavior_gain=0, shift_scale=0.0
        )
        assert tree.name != plain.name  # another world, another release suffix
        truth, before = _truth(tree), _truth(plain)
        assert float(truth["behavior_gain"]) == 0 and float(truth["shift_scale"]) == 0
        assert json.loads(str(truth["config"]))["behavior_gain"] == 0
        # the same stimuli and neurons: without gain and shift the rates are a function of the
        # image alone, so the two recordings differ exactly by the gain and the eye
        assert np.array_equal(_stack(tree, "images"), _stack(plain, "images"))
        assert not np.allclose(truth["rates"], before["rates"])
        ids = truth["stimulus_id"]
        repeated = [np.flatnonzero(ids == i) for i in np.unique(ids) if (ids == i).sum() > 1]
        assert repeated
        for rows in repeated:  # repeats of an image: one rate without behaviour, not so with it
            np.testing.assert_allclose(
                truth["rates"][rows], truth["rates"][rows[:1]].repeat(len(rows), 0), rtol=1e-5
            )
        assert not all(np.allclose(before["rates"][r], before["rates"][r[0]]) for r in repeated)
        (again,) = synthesize(
            tmp_path / "c", **kwargs, image_size=(36, 64), behavior_gain=0.0, shift_scale=0
        )
        assert again.name == tree.name
        assert np.array_equal(_truth(again)["rates"], truth["rates"])

    def test_fano_sets_the_noise(self, tmp_path: pathlib.Path) -> None:
        """The same world with less noise: the same rates, responses closer to them."""
        kwargs: dict[str, Any] = {"kind": "static", "n_trials": 120, "n_neurons": 16}
        kwargs.update(image_size=(36, 64), behavior_gain=0, shift_scale=0)
        (noisy,) = synthesize(tmp_path / "a", **kwargs)
        (quiet,) = synthesize(tmp_path / "b", **kwargs, fano=0.2)
        assert json.loads(str(_truth(quiet)["config"]))["fano"] == 0.2
        np.testing.assert_array_equal(_truth(noisy)["rates"], _truth(quiet)["rates"])

        def error(tree: pathlib.Path) -> float:
            return float(np.mean((_stack(tree, "responses") - _truth(tree)["rates"]) ** 2))

        assert error(quiet) < 0.2 * error(noisy)
        with pytest.raises(ValueError, match="fano must be a positive number, got 0"):
            synthesize(tmp_path / "c", **kwargs, fano=0)


class TestDeterminism:
    @staticmethod
    def _files(root: pathlib.Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    @pytest.mark.parametrize("kind", ["static", "dynamic"])
    def test_same_seed_same_bytes(self, tmp_path: pathlib.Path, kind: str) -> None:
        kwargs: dict[str, Any] = {
            "kind": kind,
            "n_mice": 2,
            "n_trials": 30,
            "n_neurons": 4,
            "image_size": (18, 32) if kind == "static" else None,
            "n_frames": 12 if kind == "dynamic" else None,
        }
        synthesize(tmp_path / "a", seed=3, **kwargs)
        synthesize(tmp_path / "b", seed=3, **kwargs)
        synthesize(tmp_path / "c", seed=4, **kwargs)
        a, b, c = (self._files(tmp_path / x) for x in "abc")
        assert a == b
        assert a.keys() != c.keys()  # mouse keys and names follow the seed
        resp_a = [v for k, v in a.items() if "/data/responses/" in k]
        resp_c = [v for k, v in c.items() if "/data/responses/" in k]
        assert resp_a != resp_c


class TestZip:
    @pytest.mark.parametrize("kind", ["static", "dynamic"])
    def test_zip(self, tmp_path: pathlib.Path, kind: str) -> None:
        zips = synthesize(
            tmp_path,
            kind=kind,
            n_trials=30,
            n_neurons=4,
            as_zip=True,
            image_size=(18, 32) if kind == "static" else None,
            n_frames=12 if kind == "dynamic" else None,
        )
        (path,) = zips
        assert path.suffix == ".zip" and path.is_file()
        name = path.name[:-4]
        assert not (tmp_path / name).exists()
        assert (tmp_path / f"{name}.ground_truth.npz").is_file()
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            tops = {n.split("/")[0] for n in names}
            assert tops == ({name, "__MACOSX"} if kind == "dynamic" else {name})
            if kind == "dynamic":
                assert any(re.fullmatch(r"__MACOSX/.*/\._[^/]+", n) for n in names)
            key = "images" if kind == "static" else "videos"
            files = [n for n in names if n.startswith(f"{name}/data/{key}/") and n.endswith(".npy")]
            assert len(files) == 30
            arr = np.load(io.BytesIO(zf.read(f"{name}/data/{key}/0.npy")))
            assert arr.dtype == np.float32
            assert arr.shape == ((1, 18, 32) if kind == "static" else (36, 64, 12))
            tiers = np.load(io.BytesIO(zf.read(f"{name}/meta/trials/tiers.npy")))
            assert len(tiers) == 30


class TestArguments:
    @pytest.mark.parametrize(
        ("kwargs", "argument"),
        [
            ({"kind": "video"}, "kind"),
            ({"kind": "static", "n_mice": 0}, "n_mice"),
            ({"kind": "static", "n_mice": True}, "n_mice"),
            ({"kind": "static", "n_trials": 5}, "n_trials"),
            ({"kind": "dynamic", "n_trials": 10}, "n_trials"),
            ({"kind": "static", "n_trials": 100.0}, "n_trials"),
            ({"kind": "static", "n_neurons": 0}, "n_neurons"),
            ({"kind": "dynamic", "n_frames": 2}, "n_frames"),
            ({"kind": "static", "n_frames": 30}, "n_frames"),
            ({"kind": "static", "image_size": (0, 64)}, "image_size"),
            ({"kind": "static", "image_size": (36,)}, "image_size"),
            ({"kind": "static", "image_size": (36.0, 64)}, "image_size"),
            ({"kind": "static", "seed": -1}, "seed"),
            ({"kind": "static", "competition": "yes"}, "competition"),
            ({"kind": "static", "behavior_gain": -0.1}, "behavior_gain"),
            ({"kind": "static", "behavior_gain": float("nan")}, "behavior_gain"),
            ({"kind": "dynamic", "shift_scale": "1"}, "shift_scale"),
            ({"kind": "static", "shift_scale": True}, "shift_scale"),
        ],
    )
    def test_bad_argument(
        self, tmp_path: pathlib.Path, kwargs: dict[str, Any], argument: str
    ) -> None:
        with pytest.raises(ValueError, match=argument):
            synthesize(tmp_path, **kwargs)
        assert not any(tmp_path.iterdir())

    def test_progress_bar(self, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
        synthesize(
            tmp_path, kind="static", n_trials=30, n_neurons=2, image_size=(18, 32), progress=True
        )
        assert "30/30" in capsys.readouterr().err
