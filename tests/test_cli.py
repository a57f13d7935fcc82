"""The ``sensorium-data`` command line, end to end on synthetic data of both years."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_convert import same_files

from sensorium_data.cli import main


@pytest.fixture(scope="module")
def synth_trees(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", str(out), "--kind", "static", "--mice", "2", "--zip"]) == 0
    assert main(["synth", str(out), "--kind", "dynamic", "--trials", "30", "--seed", "3"]) == 0
    trees = sorted(p for p in out.iterdir() if not p.name.endswith(".npz"))
    assert [p.suffix for p in trees] == ["", ".zip", ".zip"]  # dynamic folder, two static zips
    return trees


@pytest.mark.slow
def test_convert_verify_info_export(tmp_path: Path, synth_trees: list[Path], capsys) -> None:
    store = tmp_path / "s.zarr"
    srcs = [str(p) for p in synth_trees]
    assert main(["convert", *srcs, "-o", str(store), "--no-progress"]) == 0
    assert "wrote 3 mice" in capsys.readouterr().out
    assert main(["verify", str(store), *srcs, "--no-progress"]) == 0
    assert "equals its 3 source tree(s)" in capsys.readouterr().out

    assert main(["info", str(store)]) == 0
    info = capsys.readouterr().out
    assert info.count("(static, complete)") == 2 and info.count("(dynamic, complete)") == 1
    assert "train" in info and "final_test" in info and "live_test_main" in info
    assert "videos" in info and "(1, 36, 64, 25)" in info  # chunks of the video windows
    assert "in the store" in info and "of source files" in info

    dynamic = synth_trees[0]
    mouse = dynamic.name[len("dynamic") :].split("-Video")[0]
    assert main(["export", str(store), mouse, str(tmp_path / "exp"), "--no-progress"]) == 0
    assert same_files(dynamic, tmp_path / "exp" / dynamic.name) == []
    assert main(["export", str(store), mouse, str(tmp_path / "exp"), "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err

    arr = zarr.open_array(str(store / mouse / "responses"), mode="r+")
    block = arr[5]
    block[0, 0] += 1.0
    arr[5] = block
    assert main(["verify", str(store), str(dynamic), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert (
        f"mouse {mouse}: data/responses trials 4..7: 1 values differ, first at index (1, 0, 0)"
        in err
    )


def test_convert_refuses_twice_and_overwrites(
    tmp_path: Path, synth_trees: list[Path], capsys
) -> None:
    store = str(tmp_path / "s.zarr")
    src = str(synth_trees[1])
    assert main(["convert", src, "-o", store, "--no-progress"]) == 0
    assert main(["convert", src, "-o", store, "--no-progress"]) == 1
    assert "already holds mouse" in (err := capsys.readouterr().err) and "--overwrite" in err
    assert (
        main(
            [
                "convert",
                src,
                "-o",
                store,
                "--no-progress",
                "--overwrite",
                "--trials-per-shard",
                "64",
                "--compressor",
                "zstd",
            ]
        )
        == 0
    )
    arr = zarr.open_array(f"{store}/{Path(src).name[6:].split('-Gray')[0]}/images", mode="r")
    assert arr.shards[0] == 64


def test_errors_exit_1_with_a_message(tmp_path: Path, capsys) -> None:
    assert main(["convert", str(tmp_path / "missing"), "-o", str(tmp_path / "s.zarr")]) == 1
    assert "missing: no such folder" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nothing.zarr")]) == 1
    assert "no Zarr v3 store here" in capsys.readouterr().err
    assert main(["synth", str(tmp_path), "--kind", "static", "--trials", "3"]) == 1
    assert "n_trials" in capsys.readouterr().err
    assert main(["synth", str(tmp_path), "--kind", "static", "--behavior-gain", "-1"]) == 1
    assert "behavior_gain must be a finite number >= 0, got -1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "x", "-o", "y", "--storage-options", "not json"])
    assert "not valid JSON" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.slow
def test_demo_console_script(tmp_path: Path) -> None:
    exe = shutil.which("sensorium-data")
    assert exe, "the console script is installed by pip install -e ."
    proc = subprocess.run(
        [exe, "demo", "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "3. verify: store equals its sources" in proc.stdout
    assert proc.stdout.count("complete)") == 3
    assert np.isfinite(float(proc.stdout.split("mean train response per neuron ")[1].split()[0]))
    # the store stays where the user asked, and the demo says how to open it
    assert f"kept in {tmp_path}: open it with sensorium_data.open_mouse(" in proc.stdout
    assert (tmp_path / "sensorium.zarr" / "zarr.json").is_file()


def test_convert_scaled_image_options(tmp_path: Path, synth_trees: list[Path], capsys) -> None:
    static = str(synth_trees[1])
    store = tmp_path / "s.zarr"
    assert main(["convert", static, "-o", str(store), "--no-progress", "--image-scale", "0.5"]) == 0
    mouse = next(p for p in store.iterdir() if p.is_dir())
    assert sorted(p.name for p in (mouse / "scaled").iterdir() if p.is_dir()) == ["0.5"]
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    assert "scaled/0.5/images" in capsys.readouterr().out
    args = ["convert", static, "-o", str(store), "--no-progress", "--overwrite"]
    assert main([*args, "--no-scaled-images"]) == 0
    assert not (mouse / "scaled").exists()
    assert main([*args, "--image-scale", "2"]) == 1
    assert "image_scales must be factors between 0 and 1" in capsys.readouterr().err


def test_synth_encoder_options(tmp_path: Path, capsys) -> None:
    args = ["synth", str(tmp_path), "--kind", "static", "--trials", "40", "--neurons", "4"]
    assert main([*args, "--image-size", "36x64", "--behavior-gain", "0", "--shift-scale", "0"]) == 0
    (tree,) = [Path(line) for line in capsys.readouterr().out.split()]
    with np.load(tree.parent / f"{tree.name}.ground_truth.npz") as truth:
        assert float(truth["behavior_gain"]) == 0.0 and float(truth["shift_scale"]) == 0.0


@pytest.mark.parametrize("command", ["sensorium-data", "sensorium-models"])
def test_version_of_both_commands(command: str) -> None:
    from importlib.metadata import version

    done = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == version("sensorium-data")


# ----------------------------------------------------------------------------- help and flags


def _subparsers(parser) -> dict:
    import argparse

    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    out = {}
    for name, sub in action.choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        out.update({f"{name} {k}": v for k, v in nested[0].choices.items()} if nested else {})
        out[name] = sub
    return out


@pytest.mark.parametrize("module", ["sensorium_data.cli", "sensorium_models.cli"])
def test_every_option_says_what_it_does_and_each_command_shows_an_example(module: str) -> None:
    import importlib

    cli = importlib.import_module(module)
    prog = "sensorium-data" if module.startswith("sensorium_data") else "sensorium-models"
    commands = _subparsers(cli._parser())
    assert len(commands) >= (10 if prog == "sensorium-data" else 3)
    for name, sub in commands.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{prog} {name}: {action.option_strings or action.dest}"
        text = sub.format_help()
        example = text.split("example:\n", 1)
        assert len(example) == 2, f"{prog} {name} --help shows no example"
        assert example[1].strip().startswith(f"{prog} {name.split()[0]}"), (name, example[1])


def test_help_shows_defaults() -> None:
    from sensorium_data.cli import _parser
    from sensorium_models.cli import _parser as models_parser
    from sensorium_models.configs import NAMED_CONFIGS
    from sensorium_models.training import TrainConfig

    data = _subparsers(_parser())
    assert "blosc compression level, 0-9 (default: 5)" in " ".join(
        data["convert"].format_help().split()
    )
    models = _subparsers(models_parser())
    train = " ".join(models["train"].format_help().split()).replace("- ", "-")
    assert f"one of: {', '.join(NAMED_CONFIGS)}" in train
    cfg = TrainConfig()
    for flag, value in (
        ("--epochs", cfg.max_epochs),
        ("--seed", cfg.seed),
        ("--frames", cfg.frames),
        ("--patience", cfg.patience),
    ):
        assert f"(default: {value}" in train.split(flag, 2)[2], flag


def test_synth_refuses_to_overwrite_without_the_flag(tmp_path: Path, capsys) -> None:
    args = ["synth", str(tmp_path), "--kind", "static", "--trials", "40", "--neurons", "4"]
    args += ["--image-size", "36x64"]
    assert main(args) == 0
    (tree,) = [Path(line) for line in capsys.readouterr().out.split()]
    marker = tree / "meta" / "mine.txt"
    marker.write_text("keep me")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tree) in err and "pass --overwrite" in err
    assert "overwrite=True" not in err
    assert marker.read_text() == "keep me"
    assert main([*args, "--overwrite"]) == 0
    assert not marker.exists()
