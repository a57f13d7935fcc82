"""Scoring submissions and leaderboards (``sensorium_data.submission.scoring``) and their CLI commands.

Two small synthetic stores are converted once per module: 2022 with a plain and a competition
mouse (withheld test responses), 2023 with two plain mice and a competition mouse. Expected
scores are recomputed here from the store (normalised with :class:`~sensorium_data.Normalizer`)
by direct calls of :mod:`sensorium_data.metrics`, on the padded trials with ``skip=50``.
"""

from __future__ import annotations

import ast
import functools
import html
import html.parser
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sensorium_data as sd
from sensorium_data import metrics
from sensorium_data import submission as sub
from sensorium_data.cli import main
from sensorium_data.submission.scoring import (
    ScoreReport,
    ScoringError,
    leaderboard,
    score_submission,
)

LIVE_CSV = "submission_file_live_test.csv"
MAIN = ("live_test_main", "final_test_main")
BONUS = ("live_test_bonus", "final_test_bonus")
WEIRD = '<b>team & "co" <3'


@dataclass(frozen=True)
class Mouse:
    """What the tests need of one mouse: normalised responses, true rates, trial metadata."""

    key: str
    source: str
    tiers: np.ndarray
    responses: np.ndarray  # normalised, file order; 2023 padded (trial, neuron, frame)
    rates: np.ndarray  # the generator's noise-free rates, file order
    valid: np.ndarray | None
    truth: Any  # the ground-truth npz contents

    def rows(self, tier: str) -> np.ndarray:
        return np.flatnonzero(self.tiers == tier)


def load_mice(store: Path, kind: str) -> dict[str, Mouse]:
    """``{"plain": ..., "competition": ...}`` (2023 also ``"plain2"``)."""
    out: dict[str, Mouse] = {}
    for key, attrs in sd.list_mice(store).items():
        ds = sd.open_mouse(store, key, chunks=None)
        norm = sd.Normalizer.from_statistics(sd.open_statistics(store, key), kind=kind)
        with np.load(store.parent / "trees" / f"{attrs['source_name']}.ground_truth.npz") as f:
            truth = dict(f)
        mouse = Mouse(
            key=key,
            source=attrs["source_name"],
            tiers=np.array(ds["tiers"].values.tolist()),
            responses=norm("responses", ds["responses"].values),
            rates=truth["rates"],
            valid=ds["valid_frames"].values if kind == "dynamic" else None,
            truth=truth,
        )
        name = "competition" if truth["competition"] else "plain2" if "plain" in out else "plain"
        out[name] = mouse
    return out


def noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def write_2022(store: Path, m: Mouse, out: Path, kind: str, seed: int = 0) -> Path:
    """A submission of the test tier: ``perfect``, ``rates`` or ``noise`` predictions."""
    rows = m.rows("test")
    values = {"perfect": m.responses, "rates": m.rates}.get(kind)
    pred = noise((rows.size, m.responses.shape[1]), seed) if values is None else values[rows]
    sub.write_submission_2022({m.key: {"test": pred}}, store, out)
    return out


def predictions_2023(m: Mouse, kind: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Padded per-trial predictions of every test tier (the writer cuts the scored frames)."""
    values = {"perfect": m.responses, "rates": m.rates}.get(kind)
    values = noise(m.responses.shape, seed) if values is None else values.astype(np.float32)
    return {tier: values[m.rows(tier)] for tier in MAIN + BONUS}


def write_2023(store: Path, mice: dict[str, Mouse], out: Path, kind: str, **options: Any) -> Path:
    """Every mouse (the competition mouse with noise), every test tier."""
    preds = {
        m.key: predictions_2023(m, kind if name != "competition" else "noise")
        for name, m in mice.items()
    }
    sub.write_submission_2023(preds, store, out, **{"make_zips": False, **options})
    return out


class Setup:
    """A converted synthetic store, its mice, and submissions written and scored once each."""

    def __init__(self, root: Path, kind: str, **options: Any) -> None:
        trees = sd.synthesize(root / "trees", kind=kind, **options)
        sd.convert(trees, root / "store.zarr", progress=False, scheduler="synchronous")
        self.root, self.kind, self.store = root, kind, root / "store.zarr"
        self.mice = load_mice(self.store, kind)
        self._reports: dict[str, ScoreReport] = {}

    def submission(self, kind: str) -> Path:
        """``perfect``, ``rates`` or ``noise`` predictions, written on first use."""
        out = self.root / "submissions" / kind
        if not out.exists():
            if self.kind == "static":
                write_2022(self.store, self.mice["plain"], out, kind)
            else:
                write_2023(self.store, self.mice, out, kind)
        return out

    def report(self, kind: str) -> ScoreReport:
        if kind not in self._reports:
            self._reports[kind] = score_submission(self.submission(kind), self.store)
        return self._reports[kind]


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("static")
    options = {"n_trials": 120, "n_neurons": 8, "image_size": (8, 8), "seed": 1}
    return Setup(root, "static", n_mice=2, **options)


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("dynamic")
    options = {"n_trials": 48, "n_neurons": 6, "n_frames": 80, "image_size": (4, 4), "seed": 2}
    return Setup(root, "dynamic", n_mice=3, **options)


# ----------------------------------------------------------------------------- 2022


class TestStatic:
    def test_perfect_predictions_score_one(self, static: Setup) -> None:
        m = static.mice["plain"]
        # a neuron silent in every test trial would score 0, as the official metric gives it
        assert (m.responses[m.rows("test")].std(0) > 0).all()
        report = static.report("perfect")
        assert report.year == 2022
        for metric in ("single_trial_correlation", "correlation_to_average"):
            assert report.value(metric, "test", m.key) == pytest.approx(1, abs=1e-6)

    def test_rates_beat_noise(self, static: Setup) -> None:
        key = static.mice["plain"].key
        rates, chance = static.report("rates"), static.report("noise")
        for metric in ("single_trial_correlation", "correlation_to_average", "feve"):
            assert rates.value(metric, "test", key) > chance.value(metric, "test", key) + 0.1

    def test_scores_equal_direct_metric_calls(self, static: Setup) -> None:
        m = static.mice["plain"]
        rows = m.rows("test")
        resp, pred = m.responses[rows], noise((rows.size, m.responses.shape[1]), 0)
        ids = m.truth["stimulus_id"][rows]
        report = static.report("noise")
        expected = {
            "single_trial_correlation": metrics.single_trial_correlation(resp, pred),
            "correlation_to_average": metrics.correlation_to_average(resp, pred, ids),
            "feve": metrics.feve(resp, pred, ids),
        }
        for metric, value in expected.items():
            assert report.value(metric, "test", m.key) == pytest.approx(value, rel=1e-9)
        # SENSORIUM is ranked by correlation to average, SENSORIUM+ by single-trial correlation
        tracks = {t.track: (t.metric, t.value, t.mouse) for t in report.tracks}
        assert tracks == {
            "SENSORIUM": ("correlation_to_average", expected["correlation_to_average"], m.key),
            "SENSORIUM+": ("single_trial_correlation", expected["single_trial_correlation"], m.key),
        }
        as_dict = json.loads(json.dumps(report.to_dict(), allow_nan=False))
        assert as_dict["track_metrics"] == {
            "SENSORIUM": "correlation_to_average",
            "SENSORIUM+": "single_trial_correlation",
        }
        assert len(as_dict["scores"]) == 3 and as_dict["skipped"] == []
        text = str(report)
        assert "SENSORIUM 2022" in text and "correlation to average" in text and "FEVE" in text
        assert f"{expected['feve']:.4f}" in text

    def test_any_row_and_neuron_order(self, static: Setup, tmp_path: Path) -> None:
        original = static.report("noise")
        df = pd.read_csv(static.submission("noise") / LIVE_CSV, dtype=str, keep_default_na=False)
        perm = np.random.default_rng(5).permutation(len(ast.literal_eval(df["neuron_ids"][0])))
        for column in ("prediction", "neuron_ids"):
            df[column] = [str([ast.literal_eval(x)[k] for k in perm]) for x in df[column]]
        df.sample(frac=1, random_state=1).to_csv(tmp_path / LIVE_CSV, index=False)
        shuffled = score_submission(tmp_path, static.store)
        assert shuffled.scores == original.scores and shuffled.tracks == original.tracks

    def test_withheld_responses_are_not_scored(self, static: Setup, tmp_path: Path) -> None:
        m = static.mice["competition"]
        preds = {tier: noise((m.rows(tier).size, 8), 1) for tier in ("test", "final_test")}
        sub.write_submission_2022({m.key: preds}, static.store, tmp_path)
        with pytest.raises(ScoringError, match=f"mouse {m.key} tier 'test': responses withheld"):
            score_submission(tmp_path, static.store)

    def test_invalid_submission_lists_problems(self, static: Setup, tmp_path: Path) -> None:
        df = pd.read_csv(static.submission("noise") / LIVE_CSV, dtype=str, keep_default_na=False)
        df.loc[1, "prediction"] = df.loc[1, "prediction"].replace("[", "[nan, ", 1)
        df.drop(index=0).to_csv(tmp_path / LIVE_CSV, index=False)
        with pytest.raises(sub.SubmissionError) as info:
            score_submission(tmp_path, static.store)
        assert {p.code for p in info.value.problems} == {"trial_missing", "shape", "nan"}
        message = str(info.value)
        assert f"{tmp_path} is not a valid submission: 3 problem(s)" in message
        assert str(tmp_path / LIVE_CSV) in message and "[trial_missing]" in message


# ----------------------------------------------------------------------------- 2023


def scored_stops(m: Mouse, convention: str) -> np.ndarray:
    """One past each trial's last scored frame: the competition lost the last valid frame of
    every NaN-padded trial (shorter than the padded length), the kit at HEAD keeps it."""
    valid, padded = m.valid, m.responses.shape[-1]
    assert valid is not None
    return np.where(valid < padded, valid - 1, valid) if convention == "competition" else valid


def expected_2023(
    mice: dict[str, Mouse], kind: str, convention: str = "competition"
) -> dict[Any, Any]:
    """Independent recomputation over the plain mice, on padded trials with ``skip=50``."""
    plain = {n: m for n, m in mice.items() if n != "competition"}
    preds = {n: predictions_2023(m, kind) for n, m in plain.items()}
    stops = {n: scored_stops(m, convention) for n, m in plain.items()}

    def entry(n: str, tier: str, keep: Any = slice(None)) -> tuple[Any, Any, Any]:
        rows = plain[n].rows(tier)[keep]
        return plain[n].responses[rows], preds[n][tier][keep], stops[n][rows]

    def single(n: str, tier: str) -> float:
        resp, pred, valid = entry(n, tier)
        return metrics.dynamic_single_trial_correlation(resp, pred, valid_frames=valid)

    def average(n: str, tier: str) -> float:
        resp, pred, valid = entry(n, tier)
        clips = plain[n].truth["stimulus_id"][plain[n].rows(tier)]
        return metrics.dynamic_correlation_to_average(resp, pred, clips, valid_frames=valid)

    out: dict[Any, Any] = {}
    for tier in MAIN + BONUS:
        out[tier] = metrics.main_track_score({n: entry(n, tier) for n in plain})
        out[tier, "per_mouse"] = {m.key: single(n, tier) for n, m in plain.items()}
        out[tier, "average"] = np.mean([average(n, tier) for n in plain])
    for tier in BONUS:
        types = {n: m.truth["stimulus_type"][m.rows(tier)] for n, m in plain.items()}
        kinds = sorted(set(np.concatenate(list(types.values()))))
        by_type = {k: {n: entry(n, tier, types[n] == k) for n in plain} for k in kinds}
        out[tier, "bonus"] = metrics.bonus_track_score(by_type)
    return out


class TestDynamic:
    def test_perfect_predictions_score_one(self, dynamic: Setup) -> None:
        report = dynamic.report("perfect")
        assert report.year == 2023
        for tier in MAIN:
            assert report.value("single_trial_correlation", tier) == pytest.approx(1, abs=1e-6)
            assert report.value("correlation_to_average", tier) == pytest.approx(1, abs=1e-6)
            for name in ("plain", "plain2"):
                value = report.value("single_trial_correlation", tier, dynamic.mice[name].key)
                assert value == pytest.approx(1, abs=1e-6)
        for tier in BONUS:
            assert report.value("bonus_track_score", tier) == pytest.approx(1, abs=1e-6)

    def test_rates_beat_noise(self, dynamic: Setup) -> None:
        rates, chance = dynamic.report("rates"), dynamic.report("noise")
        for tier, metric in [(t, "single_trial_correlation") for t in MAIN] + [
            (t, "bonus_track_score") for t in BONUS
        ]:
            assert rates.value(metric, tier) > chance.value(metric, tier) + 0.1

    def test_scores_equal_direct_metric_calls(self, dynamic: Setup) -> None:
        types = {m.key: m.truth["stimulus_type"] for m in dynamic.mice.values()}
        report = score_submission(dynamic.submission("noise"), dynamic.store, stimulus_types=types)
        expected = expected_2023(dynamic.mice, "noise")
        approx = functools.partial(pytest.approx, rel=1e-6)
        for tier in MAIN + BONUS:
            assert report.value("single_trial_correlation", tier) == approx(expected[tier])
            for key, value in expected[tier, "per_mouse"].items():
                assert report.value("single_trial_correlation", tier, key) == approx(value)
        for tier in MAIN:
            assert report.value("correlation_to_average", tier) == approx(expected[tier, "average"])
        for tier in BONUS:
            assert report.value("bonus_track_score", tier) == approx(expected[tier, "bonus"])
            assert report.value("single_trial_correlation", tier, stimulus_type="pink_noise") != 0
        tracks = {(t.track, t.tier): (t.metric, t.value, t.mouse) for t in report.tracks}
        assert list(tracks) == [("main", t) for t in MAIN] + [("bonus", t) for t in BONUS]
        assert tracks["main", "live_test_main"] == (
            "single_trial_correlation",
            expected["live_test_main"],
            None,
        )
        assert tracks["bonus", "final_test_bonus"][:2] == (
            "bonus_track_score",
            report.value("bonus_track_score", "final_test_bonus"),
        )
        # the competition mouse's responses are withheld: listed, not scored
        competition = dynamic.mice["competition"].key
        assert len(report.skipped) == 4 and all(competition in s for s in report.skipped)
        assert all(s.mouse != competition for s in report.scores)
        # without stimulus types every bonus trial is one type, "ood"
        plain = dynamic.report("noise")
        ood = plain.value("single_trial_correlation", "live_test_bonus", stimulus_type="ood")
        assert plain.value("bonus_track_score", "live_test_bonus") == ood
        assert ood == approx(expected["live_test_bonus"])
        assert "stimulus type" in str(plain) and "all mice (mean)" in str(plain)

    def test_scored_frames_are_detected_and_reported(self, dynamic: Setup, tmp_path: Path) -> None:
        # the default writer holds the competition's frames; the scorer detects and says so
        report = dynamic.report("noise")
        assert (report.scored_frames, report.scored_frames_detected) == ("competition", True)
        assert "scored frames: competition" in str(report)
        assert "detected from the submission" in str(str(report))
        assert report.to_dict()["scored_frames"] == "competition"
        # a kit-head submission (every valid frame) is scored on its own frames
        kit = write_2023(
            dynamic.store, dynamic.mice, tmp_path / "kit", "noise", scored_frames="kit-head"
        )
        report = score_submission(kit, dynamic.store)
        assert (report.scored_frames, report.scored_frames_detected) == ("kit-head", True)
        expected = expected_2023(dynamic.mice, "noise", "kit-head")
        competition = expected_2023(dynamic.mice, "noise")
        for tier in MAIN + BONUS:
            value = report.value("single_trial_correlation", tier)
            assert value == pytest.approx(expected[tier], rel=1e-6)
        # the conventions differ on NaN-padded trials only (this tier has some; most synthetic
        # trials fill the padded length, so on those the two agree)
        value = report.value("single_trial_correlation", "live_test_bonus")
        assert value != pytest.approx(competition["live_test_bonus"], rel=1e-6)
        # held to the other convention, every padded trial's row is refused, with the reason
        with pytest.raises(sub.SubmissionError) as info:
            score_submission(kit, dynamic.store, scored_frames="competition")
        assert "the length of scored_frames='kit-head'" in str(info.value)
        asked = score_submission(kit, dynamic.store, scored_frames="kit-head")
        assert (asked.scored_frames, asked.scored_frames_detected) == ("kit-head", False)
        assert "as asked" in str(asked)

    def test_ground_truth_files_carry_their_convention(
        self, dynamic: Setup, tmp_path: Path
    ) -> None:
        plain = dynamic.mice["plain"]
        for convention in ("competition", "kit-head"):
            out = tmp_path / convention
            sub.write_ground_truth(
                dynamic.store,
                out,
                mice=[plain.key],
                tiers=["live_test_bonus"],
                scored_frames=convention,
            )
            part = sub.read_submission(out)[plain.source]["live_test_bonus"]
            stops = scored_stops(plain, convention)[part.trial_indices]
            assert [v.shape[1] for v in part.values] == (stops - 50).tolist()
            assert (plain.valid[part.trial_indices] < plain.responses.shape[-1]).any()
            # validation finds the convention from the rows: both files are valid
            assert sub.check_submission(out, dynamic.store, mice=[plain.key]) == convention

    def test_any_row_and_neuron_order(self, dynamic: Setup, tmp_path: Path) -> None:
        rng = np.random.default_rng(3)
        perm = rng.permutation(6)
        for src in dynamic.submission("noise").iterdir():
            table = pq.read_table(src)
            rows = table.take(rng.permutation(table.num_rows)).to_pylist()
            for row in rows:
                for column in ("prediction", "neuron_ids"):
                    row[column] = [row[column][k] for k in perm]
            out = pa.Table.from_pylist(rows, schema=table.schema)
            pq.write_table(out, tmp_path / src.name, compression="brotli")
        with pytest.raises(sub.SubmissionError, match="neuron_order"):
            score_submission(tmp_path, dynamic.store)
        shuffled = score_submission(tmp_path, dynamic.store, strict_neuron_order=False)
        original = dynamic.report("noise")
        assert shuffled.scores == original.scores and shuffled.tracks == original.tracks

    def test_the_writers_own_folder_scores(self, dynamic: Setup, tmp_path: Path) -> None:
        """Parquet files and the upload zips side by side, as write_submission_2023 leaves them,
        are one submission (issue 12, item 3)."""
        out = write_2023(dynamic.store, dynamic.mice, tmp_path / "both", "noise", make_zips=True)
        assert {p.suffix for p in out.iterdir()} == {".brotli", ".zip"}
        both = score_submission(out, dynamic.store)
        original = dynamic.report("noise")
        assert both.scores == original.scores and both.tracks == original.tracks

    def test_a_zip_that_differs_from_its_folder_is_a_second_file(
        self, dynamic: Setup, tmp_path: Path
    ) -> None:
        out = write_2023(dynamic.store, dynamic.mice, tmp_path / "both", "noise", make_zips=True)
        loose = out / "predictions_live_main.parquet.brotli"
        other = write_2023(dynamic.store, dynamic.mice, tmp_path / "other", "rates")
        loose.write_bytes((other / loose.name).read_bytes())
        with pytest.raises(sub.SubmissionError, match="a second file for tier 'live_test_main'"):
            score_submission(out, dynamic.store)


# ----------------------------------------------------------------------------- leaderboard


# ----------------------------------------------------------------------------- the kit's files


def write_like_the_kit(official: Path, out: Path) -> list[Path]:
    """The same predictions as the 2023 kit's ``generate_submission`` writes them: pandas rows of
    Python lists (``list<list<double>>``), its file names (``sensorium/utility/submission.py``)."""
    out.mkdir(parents=True)
    written = []
    for kit_name, name in sub.KIT_FILE_NAMES.items():
        if not (official / name).exists():
            continue
        table = pq.read_table(official / name).to_pandas()
        df = pd.DataFrame(
            {
                "mouse": table["mouse"].tolist(),
                "trial_indices": table["trial_indices"].tolist(),
                "prediction": [
                    np.stack(p).astype(np.float32).tolist() for p in table["prediction"]
                ],
                "neuron_ids": [np.asarray(n, dtype=np.uint32) for n in table["neuron_ids"]],
            }
        )
        df.to_parquet(out / kit_name, compression="brotli", engine="pyarrow", index=False)
        written.append(out / kit_name)
    return written


class TestKitFiles:
    def test_the_kits_files_score_as_the_official_ones(
        self, dynamic: Setup, tmp_path: Path
    ) -> None:
        official = dynamic.submission("noise")
        kit = tmp_path / "kit"
        written = write_like_the_kit(official, kit)
        assert len(written) == 4
        schema = pq.read_schema(written[0])
        assert schema.field("prediction").type == pa.list_(pa.list_(pa.float64()))
        assert sub.validate_submission(kit, dynamic.store) == []
        report, expected = score_submission(kit, dynamic.store), dynamic.report("noise")
        assert [(s.tier, s.metric, s.mouse, s.stimulus_type) for s in report.scores] == [
            (s.tier, s.metric, s.mouse, s.stimulus_type) for s in expected.scores
        ]
        for got, want in zip(report.scores, expected.scores, strict=True):
            assert got.value == pytest.approx(want.value, rel=1e-12)
        # the report says what each file must be called before uploading
        assert sorted(official for _, official in report.renames) == sorted(
            p.name for p in official.glob("*.parquet.brotli")
        )
        text = str(report)
        assert "rename before uploading: " in text
        assert (
            "predictions_file_live_test_main_main_track.parquet.brotli is the 2023 kit's "
            "name for predictions_live_main.parquet.brotli" in text
        )
        assert dynamic.report("noise").renames == ()

    def test_fix_renames_and_zips(self, dynamic: Setup, tmp_path: Path) -> None:
        kit = tmp_path / "kit"
        written = write_like_the_kit(dynamic.submission("noise"), kit)
        before = {p.name: p.read_bytes() for p in written}
        assert sub.fix_submission(kit, dry_run=True)
        assert sorted(p.name for p in kit.iterdir()) == sorted(before)  # dry run: untouched
        renames = sub.fix_submission(kit)
        assert {old.name: new.name for old, new in renames} == {
            k: v for k, v in sub.KIT_FILE_NAMES.items() if k in before
        }
        for old, new in renames:
            assert new.read_bytes() == before[old.name] and not old.exists()
        names = sorted(p.name for p in kit.iterdir())
        assert "predictions_main.zip" in names
        assert "predictions_live_test_bonus_ood.zip" in names
        assert sub.validate_submission(kit / "predictions_main.zip", dynamic.store) == []
        assert sub.kit_file_renames(kit) == []
        with pytest.raises(sub.SubmissionError, match="no file with the 2023 kit's names"):
            sub.fix_submission(kit)

    def test_fix_never_overwrites(self, dynamic: Setup, tmp_path: Path) -> None:
        kit = tmp_path / "kit"
        write_like_the_kit(dynamic.submission("noise"), kit)
        (kit / "predictions_live_main.parquet.brotli").write_bytes(b"mine")
        listing = sorted(p.name for p in kit.iterdir())
        with pytest.raises(sub.SubmissionExistsError, match="predictions_live_main.parquet"):
            sub.fix_submission(kit)
        assert sorted(p.name for p in kit.iterdir()) == listing
        assert (kit / "predictions_live_main.parquet.brotli").read_bytes() == b"mine"

    def test_cli_fix(self, dynamic: Setup, tmp_path: Path) -> None:
        kit = tmp_path / "kit"
        write_like_the_kit(dynamic.submission("noise"), kit)
        done = subprocess.run(
            ["sensorium-data", "submission", "fix", str(kit)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (
            "renamed " in done.stdout and "-> predictions_live_main.parquet.brotli" in done.stdout
        )
        again = subprocess.run(
            ["sensorium-data", "submission", "fix", str(kit)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert again.returncode == 1
        assert again.stderr.count("\n") == 1 and "no file with the 2023 kit's names" in again.stderr


class _Checker(html.parser.HTMLParser):
    """Fails on a closing tag that does not close the innermost open element."""

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.add(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def static_board(static: Setup, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    entries = tmp_path_factory.mktemp("board")
    for name, kind in [
        ("perfect", "perfect"),
        ("also-perfect", "perfect"),
        ("rates", "rates"),
        (WEIRD, "noise"),
    ]:
        shutil.copytree(static.submission(kind), entries / name)
    shutil.copytree(static.submission("noise"), entries / "broken")
    (entries / "broken" / LIVE_CSV).write_text("trial_indices,image_ids\n1,2\n")
    (entries / "notes.txt").write_text("not an entry")
    (entries / "out").mkdir()  # the output folder is not an entry
    return entries, leaderboard(entries, static.store, out_dir=entries / "out")


class TestLeaderboard:
    def test_ranking(self, static: Setup, static_board: tuple[Path, Any]) -> None:
        _, board = static_board
        key = static.mice["plain"].key
        assert [(t.track, t.tier, t.mouse) for t in board.tables] == [
            ("SENSORIUM", "test", key),
            ("SENSORIUM+", "test", key),
        ]
        for table in board.tables:
            ranked = [(rank, name) for rank, name, *_ in table.rows]
            assert ranked == [(1, "also-perfect"), (1, "perfect"), (3, "rates"), (4, WEIRD)]
            assert table.rows[0][2] == table.rows[1][2] > table.rows[2][2] > table.rows[3][2]
            assert len(table.columns) == 5 and "FEVE" in table.columns
        assert board.tables[0].columns[:3] == ("rank", "submission", "correlation to average")
        assert board.tables[1].columns[:3] == ("rank", "submission", "single-trial correlation")
        assert [name for name, _ in board.invalid] == ["broken"]
        assert "[columns]" in board.invalid[0][1]

    def test_files(self, static_board: tuple[Path, Any]) -> None:
        entries, board = static_board
        assert board.files == (
            entries / "out" / "leaderboard.md",
            entries / "out" / "leaderboard.html",
        )
        markdown = board.files[0].read_text()
        assert markdown.count("| rank | submission |") == 2
        assert "ranked by correlation to average" in markdown and "Not scored: broken" in markdown
        assert WEIRD not in markdown and html.escape(WEIRD, quote=False) in markdown
        page = board.files[1].read_text()
        checker = _Checker()
        checker.feed(page)
        checker.close()
        assert checker.stack == []
        assert checker.tags >= {"html", "head", "style", "body", "table", "th", "td"}
        assert not checker.tags & {"script", "link", "img", "iframe"} and "http" not in page
        assert WEIRD not in page and html.escape(WEIRD) in page
        assert WEIRD in "".join(checker.text)

    def test_bad_folders(self, static: Setup, tmp_path: Path) -> None:
        with pytest.raises(NotADirectoryError):
            leaderboard(tmp_path / "missing", static.store)
        with pytest.raises(ScoringError, match="no submissions"):
            leaderboard(tmp_path, static.store)


# ----------------------------------------------------------------------------- CLI


class TestCli:
    def test_score(self, static: Setup, tmp_path: Path, capsys: Any) -> None:
        path, out = static.submission("rates"), tmp_path / "report.json"
        assert main(["score", str(path), "--truth", str(static.store), "--json", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "single-trial correlation" in printed and "SENSORIUM+" in printed
        report = json.loads(out.read_text())
        assert report == json.loads(json.dumps(static.report("rates").to_dict()))
        assert report["track_metrics"]["SENSORIUM"] == "correlation_to_average"

    def test_score_errors(self, static: Setup, tmp_path: Path, capsys: Any) -> None:
        df = pd.read_csv(static.submission("noise") / LIVE_CSV, dtype=str)
        df.drop(index=[0, 1]).to_csv(tmp_path / LIVE_CSV, index=False)
        assert main(["score", str(tmp_path), "--truth", str(static.store)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"sensorium-data score: error: {tmp_path} is not a valid submission")
        assert err.count("[trial_missing]") == 2 and str(tmp_path / LIVE_CSV) in err
        assert main(["score", str(tmp_path / "nothing"), "--truth", str(static.store)]) == 1
        assert "nothing: no such file or folder" in capsys.readouterr().err
        assert main(["score", str(tmp_path), "--truth", str(tmp_path)]) == 1
        assert "no Zarr v3 store" in capsys.readouterr().err

    def test_ground_truth(self, static: Setup, tmp_path: Path, capsys: Any) -> None:
        plain, competition = static.mice["plain"], static.mice["competition"]
        args = ["ground-truth", str(static.store), "-o", str(tmp_path), "--mice", plain.key]
        assert main(args) == 0
        assert capsys.readouterr().out.strip() == str(tmp_path / "ground_truth_file_test.csv")
        df = pd.read_csv(tmp_path / "ground_truth_file_test.csv")
        values = np.array([ast.literal_eval(x) for x in df["responses"]])
        np.testing.assert_array_equal(values, plain.responses[plain.rows("test")])
        assert main(args) == 1
        assert "already exist(s)" in (err := capsys.readouterr().err) and "--overwrite" in err
        args[-1] = competition.key
        assert main(args) == 1
        assert "withheld" in capsys.readouterr().err

    def test_leaderboard_2023(self, dynamic: Setup, tmp_path: Path, capsys: Any) -> None:
        entries = tmp_path / "entries"
        shutil.copytree(dynamic.submission("perfect"), entries / "perfect")
        write_2023(dynamic.store, dynamic.mice, tmp_path / "noise", "noise", make_zips=True)
        shutil.copy(tmp_path / "noise" / sub.MAIN_ZIP, entries / "noise.zip")
        args = ["leaderboard", str(entries), "--truth", str(dynamic.store), "-o", str(tmp_path)]
        assert main(args) == 0
        printed = capsys.readouterr().out
        assert "## main track, tier live_test_main: ranked by single-trial correlation" in printed
        assert "| 1 | perfect | 1.0000 |" in printed and "| 2 | noise.zip |" in printed
        assert "## bonus track, tier final_test_bonus: ranked by bonus score" in printed
        assert (tmp_path / "leaderboard.html").is_file()
        assert main(["leaderboard", str(tmp_path / "missing"), "--truth", str(dynamic.store)]) == 1
        assert "not a folder of submissions" in capsys.readouterr().err
