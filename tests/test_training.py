"""Training, evaluation, submission and the ``sensorium-models`` CLI on tiny synthetic stores.

Stores are made once per module (two static mice, the second a competition mouse with withheld
test responses; one dynamic mouse); models are shrunk with config overrides so every run takes
a second or two on a CPU.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import sensorium_data as sd
from sensorium_data.loading.loaders import make_loaders
from sensorium_data.submission import check_submission
from sensorium_models import training
from sensorium_models.cli import main
from sensorium_models.evaluation import evaluate, predict, write_submission
from sensorium_models.kit import from_kit_state_dict
from sensorium_models.training import TrainConfig, TrainingError, load_checkpoint, load_model, train

TINY_2D = {
    "hidden_channels": 8,
    "layers": 2,
    "input_kernel": 5,
    "hidden_kernel": 3,
    "grid_hidden_features": 4,
}
STATIC = TrainConfig(max_epochs=2, batch_size=32, device="cpu", seed=3)
VIDEO = {"hidden_channels": [8, 16, 16]}  # the kit's kernels: T_out = T - 18
DYNAMIC = TrainConfig(max_epochs=2, frames=60, device="cpu")
# that the CNN learns a stimulus-only mouse is checked in test_insilico_trained.py
MODULATOR_EPOCHS, MODULATOR_CORRELATION = 8, 0.7  # measured: 0.88 after 8 epochs (0.76 after 4)


@pytest.fixture(scope="module")
def static_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two static mice, 144 x 256 images (trained at scale 0.25); the second withholds test."""
    out = tmp_path_factory.mktemp("static")
    trees = sd.synthesize(out / "trees", kind="static", n_mice=2, n_trials=120, n_neurons=12)
    sd.convert(trees, out / "s.zarr", progress=False)
    return out / "s.zarr"


@pytest.fixture(scope="module")
def dynamic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dynamic")
    trees = sd.synthesize(  # 90 frames, 60 to 90 valid: 10 to 40 scored after the first 50
        out / "trees",
        kind="dynamic",
        n_trials=60,
        n_neurons=16,
        n_frames=90,
        competition=False,
        seed=5,
    )
    sd.convert(trees, out / "d.zarr", progress=False)
    return out / "d.zarr"


@pytest.fixture(scope="module")
def static_run(static_store: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run") / "plus"
    return train(
        static_store, "sensorium-plus-sota", out, config=STATIC, overrides=TINY_2D, progress=False
    )


@pytest.fixture(scope="module")
def dynamic_run(dynamic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run") / "video"
    return train(
        dynamic_store, "video-factorised-3d", out, config=DYNAMIC, overrides=VIDEO, progress=False
    )


def _mice(store: Path) -> list[str]:
    return list(sd.list_mice(store))


def _open_and_competition(store: Path) -> tuple[str, str]:
    """(the mouse with test responses, the competition mouse that withholds them)."""
    mice = _mice(store)
    has_final = ["final_test" in sd.open_mouse(store, m).tiers.values.tolist() for m in mice]
    return mice[has_final.index(False)], mice[has_final.index(True)]


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class TestTrainRun:
    def test_checkpoint_and_log(self, static_run, static_store: Path) -> None:
        out = static_run.out_dir
        assert (out / "checkpoint.pt").is_file() and not list(out.glob(".*tmp"))
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert [e["epoch"] for e in log] == [1, 2] == [e["epoch"] for e in static_run.history]
        for entry in log:
            for key in ("loss", "score", "lr", "seconds", "samples_per_s", "data_wait_share"):
                assert np.isfinite(entry[key]), key
            assert entry["tier"] == "validation" and entry["lr"] == 0.009
            assert 0 <= entry["data_wait_share"] < 1
            assert 0 <= entry["readout_edge_share"] <= 1
            assert entry["readout_collapsed"] == (entry["readout_edge_share"] > 0.9)
        state = load_checkpoint(out)
        assert state["epoch"] == 2 and state["finished"]
        assert list(state["mice"]) == _mice(static_store)
        assert state["model_config"]["name"] == "sensorium-plus-sota"
        assert state["model_config"]["hidden_channels"] == 8
        assert state["train_config"]["optimizer"] == "adam"  # the year's default, resolved
        assert set(state["sampler"]["passes"]) == set(_mice(static_store))
        assert {"optimizer", "scheduler", "rng", "best_model", "best_score"} <= set(state)

    def test_load_model_gives_the_best_weights(self, static_run) -> None:
        model = load_model(static_run.out_dir)
        assert not model.training and model.config == static_run.model.config
        assert _states_equal(model.state_dict(), static_run.model.state_dict())
        best = max(static_run.history, key=lambda e: e["score"])
        assert static_run.best_epoch == best["epoch"]
        assert static_run.best_score == pytest.approx(best["score"])

    @pytest.mark.slow
    def test_evaluate_scores_tiers_with_responses(self, static_run, static_store: Path) -> None:
        report = evaluate(static_run.model, static_store)
        first, competition = _open_and_competition(static_store)
        assert set(report["tiers"]) == {"validation", "test"}
        assert set(report["tiers"]["test"]["mice"]) == {first}  # the other one withholds it
        scores = report["tiers"]["test"]["mice"][first]
        assert {"single_trial_correlation", "correlation_to_average", "feve"} <= set(scores)
        assert all(np.isfinite(v) for v in scores.values())
        skipped = "\n".join(report["skipped"])
        assert f"mouse {competition} tier 'test': responses withheld" in skipped
        assert f"mouse {competition} tier 'final_test': responses withheld" in skipped
        valid = report["tiers"]["validation"]
        assert valid["mean"]["single_trial_correlation"] == pytest.approx(
            np.mean([s["single_trial_correlation"] for s in valid["mice"].values()])
        )

    def test_submission_is_valid(self, static_run, static_store: Path, tmp_path: Path) -> None:
        files = write_submission(static_run.model, static_store, tmp_path / "sub")
        names = sorted(f.name for f in files)
        assert names == [
            "submission_file_final_test.csv",
            "submission_file_live_test.csv",
            "submission_file_live_test.csv",
        ]
        check_submission(tmp_path / "sub", static_store)

    @pytest.mark.slow
    def test_modulator_model_round_trip(self, static_store: Path, tmp_path: Path) -> None:
        """The behaviour modulator trains on both mice, is saved and loaded whole, and its
        predictions (which need the trials' behaviour) make a valid submission."""
        one = dataclasses.replace(STATIC, max_epochs=1)
        run = train(
            static_store,
            "sensorium-plus-modulator",
            tmp_path / "run",
            config=one,
            overrides=TINY_2D,
            progress=False,
        )
        model = load_model(run.out_dir)
        assert sorted(model.modulators) == sorted(_mice(static_store))
        assert _states_equal(model.state_dict(), run.model.state_dict())
        moved = [p for p in model.modulators.parameters() if p.abs().sum() > 0]
        assert moved, "the modulators did not train"
        mouse = _open_and_competition(static_store)[0]
        np.testing.assert_array_equal(
            predict(model, static_store, "test", mouse),
            predict(run.model, static_store, "test", mouse),
        )
        write_submission(model, static_store, tmp_path / "sub")
        check_submission(tmp_path / "sub", static_store)

    def test_predict_static(self, static_run, static_store: Path) -> None:
        mouse = _open_and_competition(static_store)[0]
        pred = predict(static_run.model, static_store, "test", mouse)
        tiers = np.array(sd.open_mouse(static_store, mouse).tiers.values.tolist())
        assert pred.shape == ((tiers == "test").sum(), 12) and (pred > 0).all()
        with pytest.raises(sd.SensoriumDataError, match="tier: mouse .* has no 'oracle'"):
            predict(static_run.model, static_store, "oracle", mouse)


@pytest.mark.slow
class TestDynamic:
    def test_train_evaluate_submit(self, dynamic_run, dynamic_store, tmp_path: Path) -> None:
        assert [(e["tier"], e["lr"]) for e in dynamic_run.history] == [("oracle", 0.005)] * 2
        assert load_checkpoint(dynamic_run.out_dir)["train_config"]["optimizer"] == "adamw"
        model = load_model(dynamic_run.out_dir)
        report = evaluate(model, dynamic_store)
        assert {"oracle", "live_test_main", "final_test_main"} <= set(report["tiers"])
        oracle = report["tiers"]["oracle"]["mean"]
        assert set(oracle) == {"single_trial_correlation", "correlation_to_average"}
        write_submission(model, dynamic_store, tmp_path / "sub")
        assert (tmp_path / "sub" / "predictions_main.zip").is_file()
        check_submission(tmp_path / "sub", dynamic_store)

    def test_predictions_cover_every_valid_frame(self, dynamic_run, dynamic_store) -> None:
        model = dynamic_run.model
        (mouse,) = _mice(dynamic_store)
        ds = sd.open_mouse(dynamic_store, mouse)
        trials = np.flatnonzero(np.array(ds.tiers.values.tolist()) == "oracle")
        valid = ds.valid_frames.values[trials]
        pred = predict(model, dynamic_store, "oracle", mouse, batch_size=3)
        assert pred.shape == (len(trials), 16, 90)
        lost = 90 - model.frames_out(90)  # frames the temporal kernels consume: 10 + 4 + 4
        assert lost == 18
        for p, v in zip(pred, valid, strict=True):
            assert np.isfinite(p[:, :v]).all() and np.isnan(p[:, v:]).all()
            assert (p[:, :lost] == p[:, lost : lost + 1]).all()  # first prediction repeated
        # batching trials of different lengths changes nothing (the core is causal)
        alone = predict(model, dynamic_store, "oracle", mouse, batch_size=1)
        np.testing.assert_allclose(alone, pred, rtol=1e-5, atol=1e-6)


class TestResume:
    @pytest.mark.slow
    def test_resume_continues_where_it_stopped(self, static_run, static_store, tmp_path) -> None:
        out = tmp_path / "run"
        one = dataclasses.replace(STATIC, max_epochs=1)
        first = train(
            static_store, "sensorium-plus-sota", out, config=one, overrides=TINY_2D, progress=False
        )
        assert first.epochs == 1 and first.resumed_from == 0
        saved = load_checkpoint(out)["optimizer"]["state"][0]["step"]
        assert int(saved) == 3  # one step per round of mice: 3 batches of 32 train trials
        second = train(
            static_store,
            "sensorium-plus-sota",
            out,
            config=STATIC,
            overrides=TINY_2D,
            progress=False,
        )
        assert second.resumed_from == 1 and second.epochs == 2
        assert [e["epoch"] for e in second.history] == [1, 2]
        state = load_checkpoint(out)
        assert state["optimizer"]["state"][0]["step"] == 2 * saved  # Adam's counters went on
        # the same weights as the uninterrupted 2-epoch run (same seed, same batches)
        assert _states_equal(state["best_model"], load_checkpoint(static_run.out_dir)["best_model"])
        assert [e["loss"] for e in second.history] == [e["loss"] for e in static_run.history]
        again = train(
            static_store,
            "sensorium-plus-sota",
            out,
            config=STATIC,
            overrides=TINY_2D,
            progress=False,
        )
        assert again.resumed_from == 2 and again.epochs == 2  # finished: nothing to do

    @pytest.mark.slow
    def test_resume_a_checkpoint_older_than_a_config_field(self, static_store, tmp_path) -> None:
        """A checkpoint written before a ModelConfig field existed resumes: the missing field
        takes its default. Another value of an existing field is still refused."""
        out = tmp_path / "run"
        one = dataclasses.replace(STATIC, max_epochs=1)
        train(static_store, "sensorium-ln", out, config=one, overrides=TINY_2D, progress=False)
        state = load_checkpoint(out)
        for field in (
            "behavior_modulator",
            "modulator_hidden",
            "modulator_layers",
            "gamma_modulator",
        ):
            del state["model_config"][field]
        torch.save(state, out / "checkpoint.pt")
        again = train(
            static_store, "sensorium-ln", out, config=STATIC, overrides=TINY_2D, progress=False
        )
        assert again.resumed_from == 1 and again.epochs == 2
        with pytest.raises(TrainingError, match=r"another model config \(differs in \['gamma_"):
            train(
                static_store,
                "sensorium-ln",
                out,
                config=STATIC,
                overrides={**TINY_2D, "gamma_modulator": 1.0},
                progress=False,
            )

    def test_interrupted_epoch_is_redone(self, static_store, tmp_path, monkeypatch) -> None:
        out, real = tmp_path / "run", training.stop_score
        calls = []

        def interrupt_second(run):
            calls.append(run.epoch)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(run)

        monkeypatch.setattr(training, "stop_score", interrupt_second)
        mice = _mice(static_store)[:1]
        with pytest.raises(KeyboardInterrupt):
            train(
                static_store,
                "sensorium-sota",
                out,
                mice=mice,
                config=STATIC,
                overrides=TINY_2D,
                progress=False,
            )
        assert load_checkpoint(out)["epoch"] == 1
        assert len((out / "log.jsonl").read_text().splitlines()) == 1
        monkeypatch.setattr(training, "stop_score", real)
        result = train(
            static_store,
            "sensorium-sota",
            out,
            mice=mice,
            config=STATIC,
            overrides=TINY_2D,
            progress=False,
        )
        assert result.resumed_from == 1 and [e["epoch"] for e in result.history] == [1, 2]

    def test_another_model_in_the_folder_is_refused(self, static_run, static_store) -> None:
        with pytest.raises(TrainingError, match=r"out_dir: .* another model config .*hidden"):
            train(
                static_store,
                "sensorium-plus-sota",
                static_run.out_dir,
                config=STATIC,
                overrides={**TINY_2D, "hidden_channels": 4},
                progress=False,
            )


def test_early_stopping_decays_then_restores_best(static_store, tmp_path, monkeypatch) -> None:
    scores = iter([0.1, 0.3, 0.2, 0.2, 0.25, 0.1, 0.9])
    seen: list[dict] = []

    def scripted(run):
        seen.append({k: v.clone() for k, v in run.net.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(training, "stop_score", scripted)
    config = TrainConfig(max_epochs=7, patience=2, max_lr_decays=1, batch_size=64, device="cpu")
    result = train(
        static_store,
        "sensorium-ln",
        tmp_path / "run",
        mice=_mice(static_store)[:1],
        config=config,
        overrides=TINY_2D,
        progress=False,
    )
    actions = [e["action"] for e in result.history]
    assert actions == ["improved", "improved", "wait", "decay", "wait", "stop"]
    assert result.stopped_early and result.epochs == 6 and result.best_epoch == 2
    assert [e["lr"] for e in result.history] == pytest.approx([0.009] * 4 + [0.009 * 0.3] * 2)
    assert _states_equal(result.model.state_dict(), seen[1])  # the weights scored at epoch 2
    assert not _states_equal(result.model.state_dict(), seen[-1])
    assert _states_equal(load_model(tmp_path / "run").state_dict(), seen[1])


def test_loss_decreases(static_store, tmp_path) -> None:
    mouse = _open_and_competition(static_store)[0]
    config = TrainConfig(max_epochs=3, patience=3, batch_size=16, device="cpu", seed=0)
    result = train(
        static_store,
        "sensorium-sota",
        tmp_path / "run",
        mice=[mouse],
        config=config,
        overrides=TINY_2D,
        progress=False,
    )
    losses = [e["loss"] for e in result.history]
    assert losses[2] < losses[1] < losses[0]


def test_video_model_beats_a_constant_predictor(dynamic_run, dynamic_store) -> None:
    """Two epochs on 40 synthetic clips: the test tiers' official single-trial correlation is
    clearly above that of a constant (or per-frame-mean) predictor, 0. (A static CNN needs
    about 2000 trials and 10 epochs, a minute here, to do as much: see benchmarks/training.py.)
    """
    tiers = ["live_test_main", "final_test_main"]
    report = evaluate(dynamic_run.model, dynamic_store, tiers)
    for tier in tiers:
        assert report["tiers"][tier]["mean"]["single_trial_correlation"] > 0.05, tier


def test_readout_edge_share_finds_a_collapse(static_run, caplog) -> None:
    """Positions driven into a corner of the feature map (the predictor's tanh saturated) are
    reported, per mouse; a fresh model's positions are not at the edge."""
    from sensorium_models import build_model

    model = static_run.model
    shares = training.readout_edge_share(model)
    assert set(shares) == set(model.readouts)
    fresh = build_model(model.config, model.mice)
    assert max(training.readout_edge_share(fresh).values()) < 0.5
    mouse = next(iter(model.readouts))
    last = fresh.readouts[mouse].mu_transform[-2]  # Linear before the final tanh
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([5.0, -5.0]))  # x -> +1, y -> -1: a corner
    shares = training.readout_edge_share(fresh)
    assert shares[mouse] == 1.0 and min(shares.values()) < 0.5


def test_a_collapsed_readout_is_logged_and_can_stop_the_run(
    static_store, tmp_path, monkeypatch, caplog
) -> None:
    """The collapse (forced here: a real one needs a long run) is logged once, recorded per
    epoch, and with ``stop_on_collapse`` ends the run as finished after that epoch."""
    mouse = _open_and_competition(static_store)[0]
    monkeypatch.setattr(training, "readout_edge_share", lambda net: {mouse: 0.97})
    kwargs = {"mice": [mouse], "overrides": TINY_2D, "progress": False}
    with caplog.at_level("WARNING", logger="sensorium_models.training"):
        kept = train(static_store, "sensorium-sota", tmp_path / "kept", config=STATIC, **kwargs)
    assert [e["readout_collapsed"] for e in kept.history] == [True, True]
    assert [e["readout_edge_share"] for e in kept.history] == [0.97, 0.97]
    warnings = [r for r in caplog.records if "collapsed to the edge" in r.getMessage()]
    assert len(warnings) == 1 and mouse in warnings[0].getMessage()
    config = dataclasses.replace(STATIC, stop_on_collapse=True)
    stopped = train(static_store, "sensorium-sota", tmp_path / "stopped", config=config, **kwargs)
    assert stopped.epochs == 1 and stopped.stopped_early
    assert stopped.history[-1]["action"] == "collapsed"
    assert load_checkpoint(tmp_path / "stopped")["finished"]


def test_poisson_loss_on_the_last_frames() -> None:
    """2023: (B, N, T) responses are compared with (B, T_out, N) rates on the last T_out frames."""
    responses = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5)
    rates = torch.full((2, 2, 3), 2.0)
    targets = training._targets(responses, rates)
    assert torch.equal(targets, responses[:, :, 3:].transpose(1, 2))
    expected = (rates - targets * torch.log(rates + 1e-12)).sum()
    assert training.poisson_loss(rates, targets) == pytest.approx(float(expected))
    static = torch.rand(4, 3)
    assert training._targets(static, torch.rand(4, 3)) is static


class TestConfig:
    def test_year_defaults(self) -> None:
        static, dynamic = TrainConfig().resolved("static"), TrainConfig().resolved("dynamic")
        assert (static.optimizer, static.lr, static.batch_size, static.stop_tier) == (
            "adam",
            0.009,
            128,
            "validation",
        )
        assert (dynamic.optimizer, dynamic.lr, dynamic.batch_size, dynamic.stop_tier) == (
            "adamw",
            0.005,
            8,
            "oracle",
        )
        assert (static.patience, static.lr_decay_factor, static.max_lr_decays) == (5, 0.3, 4)
        assert TrainConfig.from_dict(static.to_dict()) == static

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("lr", -1.0),
            ("optimizer", "sgd"),
            ("batch_size", 0),
            ("lr_decay_factor", 1.0),
            ("patience", 0),
            ("in_memory", "yes"),
            ("max_epochs", 1.5),
            ("stop_on_collapse", 1),
        ],
    )
    def test_bad_values_name_the_field(self, field: str, value) -> None:
        with pytest.raises(ValueError, match=f"TrainConfig.{field} must be"):
            TrainConfig(**{field: value})

    def test_unknown_model_and_mouse(self, static_store, tmp_path) -> None:
        with pytest.raises(TrainingError, match="model: unknown name 'nope'"):
            train(static_store, "nope", tmp_path, progress=False)
        with pytest.raises(TrainingError, match="mice: .* holds no mouse"):
            train(static_store, "sensorium-sota", tmp_path, mice=["1-2-3"], progress=False)
        with pytest.raises(
            TrainingError, match="model: .*static data but config 'video-gru' is for dynamic"
        ):
            train(static_store, "video-gru", tmp_path, progress=False)


@pytest.mark.slow
class TestCLI:
    def test_train_evaluate_submit(self, static_store: Path, tmp_path: Path, capsys) -> None:
        run, mouse = tmp_path / "run", _open_and_competition(static_store)[0]
        args = [
            "train",
            "--store",
            str(static_store),
            "--model",
            "sensorium-ln",
            "--mice",
            mouse,
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--device",
            "cpu",
            "--out",
            str(run),
            "--overrides",
            json.dumps(TINY_2D),
            "--seed",
            "1",
            "--quiet",
        ]
        assert main(args) == 0
        assert "sensorium-ln: 1 epochs" in capsys.readouterr().out
        assert (run / "checkpoint.pt").is_file()
        report = tmp_path / "report.json"
        common = ["--checkpoint", str(run), "--store", str(static_store)]
        assert main(["evaluate", *common, "--json", str(report)]) == 0
        assert "single_trial_correlation" in capsys.readouterr().out
        assert set(json.loads(report.read_text())["tiers"]) == {"validation", "test"}
        assert main(["submit", *common, "--out", str(tmp_path / "sub")]) == 0
        check_submission(tmp_path / "sub", static_store)
        assert main(["submit", *common, "--out", str(tmp_path / "sub")]) == 1
        assert "already exist" in capsys.readouterr().err
        # the way to the 2022 kit: its layout, loaded back into the same model
        kit_file = tmp_path / "for_kit.pth"
        assert main(["export-kit", "--checkpoint", str(run), "--out", str(kit_file)]) == 0
        assert main(["export-kit", "--checkpoint", str(run), "--out", str(kit_file)]) == 1
        assert "already exists" in capsys.readouterr().err
        state = torch.load(kit_file, weights_only=True)
        assert f"readout.{mouse}._features" in state
        back = from_kit_state_dict(state, "sensorium-ln", overrides={"layers": TINY_2D["layers"]})
        model = load_model(run)
        images = torch.randn(2, 1, 36, 64)
        with torch.no_grad():
            assert torch.equal(back(images, mouse=mouse), model(images, mouse=mouse))

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["train", "--store", "{s}", "--model", "nope"], "--model: unknown model 'nope'"),
            (
                ["train", "--store", "{s}", "--model", "sensorium-ln", "--overrides", "{"],
                "--overrides: not valid JSON",
            ),
            (
                [
                    "train",
                    "--store",
                    "{s}",
                    "--model",
                    "sensorium-ln",
                    "--overrides",
                    '{"x": 1}',
                    "--out",
                    "{t}",
                ],
                "--overrides: unknown ModelConfig field",
            ),
            (
                ["train", "--store", "{t}/missing.zarr", "--model", "sensorium-ln", "--out", "{t}"],
                "--store:",
            ),
            (
                ["train", "--store", "{s}", "--model", "sensorium-ln", "--epochs", "0"],
                "--epochs: expected a positive integer",
            ),
            (
                [
                    "train",
                    "--store",
                    "{s}",
                    "--model",
                    "sensorium-ln",
                    "--mice",
                    "1-2-3",
                    "--out",
                    "{t}",
                ],
                "--mice:",
            ),
            (["train", "--model", "sensorium-ln"], "--store"),
            (
                ["train", "--store", "{s}", "--model", "sensorium-ln", "--num-workers", "-1"],
                "--num-workers: must be an integer >= 0",
            ),
            (
                [
                    "train",
                    "--store",
                    "{s}",
                    "--model",
                    "sensorium-ln",
                    "--device",
                    "tpu9",
                    "--out",
                    "{t}",
                ],
                "--device: not a torch device",
            ),
            (["evaluate", "--store", "{s}", "--checkpoint", "{t}/none"], "--checkpoint:"),
            (["submit", "--store", "{s}", "--checkpoint", "{t}"], "--out"),
            (["fit"], "invalid choice: 'fit'"),
        ],
    )
    def test_errors_exit_1_naming_the_argument(
        self, static_store: Path, tmp_path: Path, capsys, args: list[str], message: str
    ) -> None:
        argv = [a.replace("{s}", str(static_store)).replace("{t}", str(tmp_path)) for a in args]
        assert main(argv) == 1
        assert message in capsys.readouterr().err


def _learning_mouse(tmp_path: Path, **knobs) -> tuple[Path, dict[str, np.ndarray]]:
    """A converted synthetic 36 x 64 static mouse (no competition quirks) and its ground truth;
    ``knobs`` go to :func:`sensorium_data.synthesize`."""
    (tree,) = sd.synthesize(
        tmp_path / "trees", kind="static", image_size=(36, 64), competition=False, **knobs
    )
    store = tmp_path / "s.zarr"
    sd.convert([tree], store, progress=False)
    with np.load(tree.parent / f"{tree.name}.ground_truth.npz") as truth:
        return store, dict(truth)


@pytest.mark.slow
def test_modulator_learns_the_behavioural_gain(tmp_path) -> None:
    """``sensorium-plus-modulator``, shrunk, on a mouse whose gain is set by running and pupil
    (``behavior_gain=1``): after a few epochs the modulator's gain follows the true one across
    test trials. A modulator that saw no behaviour, or the wrong trials', would stay near 0."""
    store, truth = _learning_mouse(
        tmp_path, n_trials=800, n_neurons=64, behavior_gain=1.0, shift_scale=0.0, seed=3
    )
    log_gain = truth["behavior_gain"] * truth["behavior_state"] @ truth["gain_weights"].T
    config = TrainConfig(max_epochs=MODULATOR_EPOCHS, batch_size=32, device="cpu", seed=42)
    result = train(
        store,
        "sensorium-plus-modulator",
        tmp_path / "run",
        config=config,
        overrides={"hidden_channels": 4},
        progress=False,
    )
    model = result.model.eval()
    (mouse,) = model.mice
    loader = make_loaders(store, tiers=["test"], batch_size=64)["test"][mouse]
    trials, learned = [], []
    with torch.no_grad():
        for batch in loader:
            trials.append(batch["trial"].numpy())
            learned.append(torch.log(model.modulators[mouse](batch["behavior"])).numpy())
    trials_, learned_ = np.concatenate(trials), np.concatenate(learned)
    r = np.corrcoef(learned_.mean(1), log_gain[trials_].mean(1))[0, 1]
    print(f"correlation of the mean log gain with the truth over test trials: {r:.3f}")
    assert r > MODULATOR_CORRELATION
