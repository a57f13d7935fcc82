"""The 2022 kit's checkpoints: loaded into our models, saved back for the kit, fetched by name.

The kit's published files cannot be downloaded here; their stand-ins are ``state_dict``s saved
from neuralpredictors 0.3.0 models built as the kit builds them (``test_kit_equivalence``),
with random weights of the published shapes (64 channels, the mice's real neuron counts). The
names are fetched from a local HTTP server that serves such files under the kit's file names.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest
import torch
from test_kit_equivalence import coordinates, kit_encoder, perturb

import sensorium_models as sm
from sensorium_models.configs import MouseInfo, build_model
from sensorium_models.errors import KitCheckpointError
from sensorium_models.kit import (
    KIT_CHECKPOINTS,
    KitCheckpoint,
    fetch_kit_checkpoint,
    from_kit_state_dict,
    git_blob_sha1,
    load_kit_checkpoint,
    to_kit_state_dict,
)

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE = (36, 64)
#: The published files' mice (SENSORIUM_FORMAT.md section 5) and the 2022 release's others.
SOTA_MOUSE = {"26872-17-20": 7776}
PLUS_MOUSE = {"27204-5-13": 7538}
ALL_MICE = {
    "21067-10-18": 8372,
    "22846-10-16": 7344,
    "23343-5-17": 7334,
    "23656-14-22": 8107,
    "23964-4-22": 8098,
    **SOTA_MOUSE,
    **PLUS_MOUSE,
}
PUBLISHED = {
    "sensorium-sota": ("sensorium-sota", SOTA_MOUSE),
    "sensorium-ln": ("sensorium-ln", SOTA_MOUSE),
    "sensorium-plus-sota": ("sensorium-plus-sota", PLUS_MOUSE),
    "sensorium-plus-ln": ("sensorium-plus-ln", PLUS_MOUSE),
    "sensorium-generalization": ("sensorium-sota", ALL_MICE),
}


def kit_model(name: str, neurons: dict[str, int], *, core_bias: bool = False) -> Any:
    """The kit's model of config ``name`` at the published width, random weights, eval mode."""
    channels = sm.get_config(name).input_channels
    sources = {m: coordinates(n, seed=i) for i, (m, n) in enumerate(neurons.items())}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = kit_encoder(
            name, channels, sources, hidden=64, neurons=neurons, core_bias=core_bias
        )
    perturb(theirs, seed=1)
    return theirs.eval()


def inputs(name: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    config = sm.get_config(name)
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(3, config.input_channels, *IMAGE, generator=generator)
    pupil = torch.randn(3, 2, generator=generator)
    return images, ({"pupil_center": pupil} if config.use_shifter else {})


def assert_same_predictions(ours: Any, theirs: Any, name: str) -> None:
    images, extra = inputs(name)
    with torch.no_grad():
        for mouse in ours.mice:
            mine = ours(images, mouse=mouse, **extra)
            torch.testing.assert_close(
                mine, theirs(images, data_key=mouse, **extra), rtol=1e-6, atol=1e-7
            )
            assert mine.shape == (3, ours.readout(mouse).n_neurons)


class TestPublishedLayouts:
    """Stand-ins of each published file load strictly and predict as the kit's model."""

    @pytest.mark.parametrize("published", list(PUBLISHED))
    def test_load_and_predict_as_the_kit(self, published: str, tmp_path: pathlib.Path) -> None:
        name, neurons = PUBLISHED[published]
        theirs = kit_model(name, neurons)
        path = tmp_path / KIT_CHECKPOINTS[published].file
        torch.save(theirs.state_dict(), path)
        state = torch.load(path, weights_only=True)
        mouse = next(iter(neurons))  # the layout SENSORIUM_FORMAT.md section 5 describes
        assert state[f"readout.{mouse}._features"].shape == (1, 64, 1, neurons[mouse])
        assert state[f"readout.{mouse}.sigma"].shape == (1, neurons[mouse], 2, 2)
        assert state[f"readout.{mouse}.source_grid"].shape == (neurons[mouse], 2)
        assert not any(k.endswith("conv.bias") for k in state)  # core_bias=False

        ours = load_kit_checkpoint(path, model=KIT_CHECKPOINTS[published].model)
        assert not ours.training
        assert {m: ours.readout(m).n_neurons for m in ours.mice} == neurons
        assert ours.config.input_channels == theirs.core.input_channels
        assert_same_predictions(ours, theirs, name)
        # every tensor, written back, is the file's
        back = to_kit_state_dict(ours)
        assert list(back) == list(state)
        for key, value in state.items():
            assert torch.equal(back[key], value), key

    def test_registry_names_the_published_files(self) -> None:
        assert set(KIT_CHECKPOINTS) == set(PUBLISHED)
        for entry in KIT_CHECKPOINTS.values():
            assert entry.url().startswith(
                "https://raw.githubusercontent.com/sinzlab/sensorium/main/"
            )
            assert entry.url().endswith(f"model_checkpoints/pretrained/{entry.file}")
            assert len(entry.git_sha1) == 40


class TestBackToTheKit:
    """A model of ours saves a ``state_dict`` that the kit's model loads with ``strict=True``."""

    @pytest.mark.parametrize("name", ["sensorium-sota", "sensorium-ln", "sensorium-plus-sota"])
    def test_kit_loads_ours_strictly(self, name: str) -> None:
        neurons = {"m1": 40, "m2": 25}
        mice = {
            m: MouseInfo(n_neurons=n, coordinates=coordinates(n, seed=i), kind="static")
            for i, (m, n) in enumerate(neurons.items())
        }
        ours = build_model(name, mice)
        perturb(ours, seed=3)
        ours.eval()
        theirs = kit_model(name, neurons)
        theirs.load_state_dict(to_kit_state_dict(ours), strict=True)
        assert_same_predictions(ours, theirs, name)

    def test_later_kit_with_core_biases(self, tmp_path: pathlib.Path) -> None:
        """The kit since a31226d (``core_bias=True``): biases in the later layers' convolutions,
        inferred from the tensors; the config says so and the way back is strict too."""
        theirs = kit_model("sensorium-sota", {"m1": 30}, core_bias=True)
        state = theirs.state_dict()
        assert "core.features.layer1.ds_conv.spatial_conv.bias" in state
        assert "core.features.layer0.conv.bias" not in state
        ours = from_kit_state_dict(state, "sensorium-sota")
        assert ours.config.core_bias
        assert_same_predictions(ours, theirs, "sensorium-sota")
        fresh = kit_model("sensorium-sota", {"m1": 30}, core_bias=True)
        fresh.load_state_dict(to_kit_state_dict(ours), strict=True)

    def test_other_widths_are_read_from_the_tensors(self) -> None:
        theirs = kit_model("sensorium-ln", {"m1": 9})
        small = kit_encoder(
            "sensorium-ln", 1, {"m1": coordinates(9, 0)}, hidden=8, neurons={"m1": 9}
        )
        perturb(small, seed=4)
        ours = from_kit_state_dict(small.state_dict(), "sensorium-ln")
        assert ours.config.hidden_channels == 8 and ours.config.layers == 3
        assert_same_predictions(ours, small.eval(), "sensorium-ln")
        assert theirs.core.features[0].conv.weight.shape[0] == 64


class TestErrors:
    """What does not fit is named, and nothing is loaded silently."""

    @pytest.fixture(scope="class")
    def state(self) -> dict[str, torch.Tensor]:
        return dict(kit_model("sensorium-plus-sota", {"m1": 20}).state_dict())

    def test_wrong_model_names_the_fields(self, state: dict[str, torch.Tensor]) -> None:
        with pytest.raises(KitCheckpointError, match=r"input_channels: .* has 1, the checkpoint 4"):
            from_kit_state_dict(state, "sensorium-sota")
        with pytest.raises(KitCheckpointError, match="layers: sensorium-plus-ln has 3"):
            from_kit_state_dict(state, "sensorium-plus-ln")
        with pytest.raises(KitCheckpointError, match="no 2022 kit counterpart"):
            from_kit_state_dict(state, "video-gru")

    def test_missing_extra_and_misshapen_tensors(self, state: dict[str, torch.Tensor]) -> None:
        missing = {k: v for k, v in state.items() if k != "readout.m1.bias"}
        with pytest.raises(KitCheckpointError, match=r"missing \['readout.m1.bias'\]"):
            from_kit_state_dict(missing, "sensorium-plus-sota")
        extra = {**state, "core.features.layer0.conv.bias": torch.zeros(64)}
        with pytest.raises(KitCheckpointError, match="not in the model.*layer0.conv.bias"):
            from_kit_state_dict(extra, "sensorium-plus-sota")
        short = {**state, "shifter.m1.mlp.0.weight": torch.zeros(5, 3)}
        with pytest.raises(KitCheckpointError, match=r"wrong shapes.*shifter.m1.mlp.0.weight"):
            from_kit_state_dict(short, "sensorium-plus-sota")
        flat = {**state, "readout.m1._features": torch.zeros(64, 20)}
        with pytest.raises(KitCheckpointError, match="readout.m1._features: shape"):
            from_kit_state_dict(flat, "sensorium-plus-sota")
        foreign = {"layer.weight": torch.zeros(3)}
        with pytest.raises(KitCheckpointError, match="not a tensor of the kit's"):
            from_kit_state_dict(foreign, "sensorium-sota")

    def test_files(self, state: dict[str, torch.Tensor], tmp_path: pathlib.Path) -> None:
        path = tmp_path / "model.pth"
        torch.save(state, path)
        with pytest.raises(KitCheckpointError, match=f"{path}: pass model="):
            load_kit_checkpoint(path)
        with pytest.raises(KitCheckpointError, match="no such file"):
            load_kit_checkpoint(tmp_path / "absent.pth", model="sensorium-sota")
        garbage = tmp_path / "garbage.pth"
        garbage.write_bytes(b"not a checkpoint")
        with pytest.raises(KitCheckpointError, match=f"{garbage}: not a torch state_dict"):
            load_kit_checkpoint(garbage, model="sensorium-sota")
        with pytest.raises(KitCheckpointError, match="unknown kit checkpoint 'sota'"):
            fetch_kit_checkpoint("sota")
        with pytest.raises(KitCheckpointError, match="is a 'sensorium-sota' model, not"):
            load_kit_checkpoint("sensorium-generalization", model="sensorium-ln")
        with pytest.raises(KitCheckpointError, match="is a 'sensorium-sota' model, not"):
            load_kit_checkpoint("sensorium-generalization", model=sm.get_config("sensorium-ln"))
        ours = build_model(
            "video-gru", {"m": MouseInfo(n_neurons=3, coordinates=None, kind="dynamic")}
        )
        with pytest.raises(KitCheckpointError, match="no kit counterpart|only 2022 models"):
            to_kit_state_dict(ours)


class TestFetch:
    """Names resolve to the kit's file names under the base URL, are downloaded once into the
    cache and checked; a bad download leaves nothing behind."""

    @pytest.fixture
    def served(self, tmp_path: pathlib.Path, http_server: Any) -> tuple[Any, pathlib.Path]:
        root = tmp_path / "pretrained"
        root.mkdir()
        state = kit_model("sensorium-sota", SOTA_MOUSE).state_dict()
        torch.save(state, root / "sensorium_sota_model.pth")
        return http_server(root, listing=False), root

    def test_download_once_then_cache(
        self,
        served: tuple[Any, pathlib.Path],
        tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        server, root = served
        monkeypatch.setenv("SENSORIUM_KIT_URL", server.url)
        data = (root / "sensorium_sota_model.pth").read_bytes()
        entry = KitCheckpoint(
            "mirror-sota",
            "sensorium_sota_model.pth",
            "sensorium-sota",
            git_blob_sha1(data),
            len(data),
            "a mirror",
        )
        cache = tmp_path / "cache"
        model = load_kit_checkpoint(entry, cache_dir=cache, progress=False, model="sensorium-sota")
        cached = cache / "kit" / entry.git_sha1 / entry.file
        assert cached.read_bytes() == data
        assert [p.name for p in cached.parent.iterdir()] == [entry.file]  # no temporary left
        requests = server.request_count
        again = load_kit_checkpoint(entry, cache_dir=cache, progress=False)
        assert server.request_count == requests  # from the cache
        theirs = kit_model("sensorium-sota", SOTA_MOUSE)
        assert_same_predictions(model, theirs, "sensorium-sota")
        assert_same_predictions(again, theirs, "sensorium-sota")

    def test_published_name_checks_the_published_checksum(
        self,
        served: tuple[Any, pathlib.Path],
        tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """``SENSORIUM_KIT_URL`` points the names at a mirror; a file that is not the
        published one (here: random weights) is refused and not cached."""
        server, _ = served
        monkeypatch.setenv("SENSORIUM_KIT_URL", server.url)
        cache = tmp_path / "cache"
        with pytest.raises(
            KitCheckpointError,
            match=r"sensorium_sota_model.pth: (expected 2383728 bytes|checksum mismatch)",
        ):
            load_kit_checkpoint("sensorium-sota", cache_dir=cache, progress=False)
        entry = KIT_CHECKPOINTS["sensorium-generalization"]  # size unknown: the hash decides
        with pytest.raises(KitCheckpointError, match="generalization_model.pth: no such file"):
            fetch_kit_checkpoint(entry, cache_dir=cache, progress=False)
        data = (served[1] / "sensorium_sota_model.pth").read_bytes()
        (served[1] / entry.file).write_bytes(data)
        with pytest.raises(
            KitCheckpointError, match=f"checksum mismatch.*expected {entry.git_sha1}"
        ):
            fetch_kit_checkpoint(entry, cache_dir=cache, progress=False)
        assert not any(p.is_file() for p in cache.rglob("*"))

    def test_cache_dir_from_environment(
        self, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        entry = KIT_CHECKPOINTS["sensorium-ln"]
        monkeypatch.setenv("SENSORIUM_CACHE", os.fspath(tmp_path))
        target = tmp_path / "kit" / entry.git_sha1 / entry.file
        target.parent.mkdir(parents=True)
        target.write_bytes(b"")  # an existing file is used without a request
        assert fetch_kit_checkpoint(entry) == target


def test_git_blob_sha1_is_gits() -> None:
    """``git hash-object`` of a known content (the empty file's famous hash)."""
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


class TestCommandLine:
    """``evaluate``/``submit`` take kit files (``--kit-model``) and published names."""

    def test_evaluate_a_kit_file_as_our_model(self, tmp_path: pathlib.Path, capsys: Any) -> None:
        import json

        import sensorium_data as sd
        from sensorium_models.cli import main
        from sensorium_models.evaluation import evaluate

        trees = sd.synthesize(tmp_path / "trees", kind="static", n_mice=1, n_trials=60, n_neurons=9)
        store = tmp_path / "s.zarr"
        sd.convert(trees, store, progress=False)
        (mouse,) = sd.list_mice(store)
        info = MouseInfo.from_dataset(sd.open_mouse(store, mouse))
        ours = build_model("sensorium-sota", {mouse: info}, overrides={"hidden_channels": 8})
        perturb(ours, seed=5)
        ours.eval()
        path = tmp_path / "kit.pth"
        torch.save(to_kit_state_dict(ours), path)
        report = tmp_path / "report.json"
        args = ["evaluate", "--store", str(store), "--checkpoint", str(path), "--device", "cpu"]
        assert main([*args, "--kit-model", "sensorium-sota", "--json", str(report)]) == 0
        got = json.loads(report.read_text())["tiers"]
        want = evaluate(ours, store)["tiers"]
        assert set(got) == set(want) == {"validation", "test"}
        for tier in want:
            for metric, value in want[tier]["mice"][mouse].items():
                assert got[tier]["mice"][mouse][metric] == pytest.approx(value, abs=1e-6), metric
        capsys.readouterr()
        assert main([*args, "--kit-model", "sensorium-ln"]) == 1
        assert "layers: sensorium-ln has 3, the checkpoint 4" in capsys.readouterr().err
        assert main([*args, "--kit-model", "nope"]) == 1
        assert "--kit-model: unknown model 'nope'" in capsys.readouterr().err
        missing = ["evaluate", "--store", str(store), "--checkpoint", "sota", "--device", "cpu"]
        assert main(missing) == 1
        assert "nor is it a kit checkpoint name" in capsys.readouterr().err
