"""Submission and ground-truth files (``sensorium_data.submission``).

Small synthetic stores (two mice each; the second is a competition mouse with withheld test
responses and, in 2022, hashed ``trial_idx`` and a ``final_test`` tier) are converted once per
module. Writers are checked by reading back with the toolkit and with plain pandas, as the
official evaluators do; the validator is checked on files broken one rule at a time.
"""

from __future__ import annotations

import ast
import functools
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sensorium_data as sd
from sensorium_data import submission as sub

SKIP = sub.DEFAULT_SKIP
LIVE_CSV = "submission_file_live_test.csv"
FINAL_CSV = "submission_file_final_test.csv"
LIVE_MAIN = "predictions_live_main.parquet.brotli"
FINAL_MAIN = "predictions_final_main.parquet.brotli"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def static_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static")
    trees = sd.synthesize(
        root / "trees", kind="static", n_mice=2, n_trials=60, n_neurons=5, image_size=(8, 8)
    )
    sd.convert(trees, root / "store.zarr", progress=False, scheduler="synchronous")
    return root / "store.zarr"


@functools.cache
def mice(store: Path) -> list[str]:
    """``[plain mouse, competition mouse]``, from synthesize's ground-truth files."""
    trees = store.parent / "trees"

    def competition(key: str) -> bool:
        name = sd.list_mice(store)[key]["source_name"]
        with np.load(trees / f"{name}.ground_truth.npz") as truth:
            return bool(truth["competition"])

    return sorted(sd.list_mice(store), key=competition)


@pytest.fixture(scope="module")
def dynamic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dynamic")
    trees = sd.synthesize(
        root / "trees",
        kind="dynamic",
        n_mice=2,
        n_trials=60,
        n_neurons=4,
        n_frames=80,
        image_size=(4, 4),
        seed=2,
    )
    sd.convert(trees, root / "store.zarr", progress=False, scheduler="synchronous")
    return root / "store.zarr"


@functools.cache
def meta(store: Path, mouse: str) -> dict[str, Any]:
    """Trial coordinates, ``unit_ids`` and ``source`` of a mouse (cached: do not modify)."""
    ds = sd.open_mouse(store, mouse, chunks=None)
    out = {name: ds.coords[name].values for name in ds.coords if ds.coords[name].dims == ("trial",)}
    for name, values in out.items():
        if values.dtype.kind not in "iufb":
            out[name] = np.array(values.tolist(), dtype=str)
    out["unit_ids"] = ds.coords["unit_ids"].values
    out["source"] = ds.attrs["sensorium"]["source_name"]
    return out


def static_predictions(store: Path, mouse: str, seed: int = 0) -> dict[str, np.ndarray]:
    m, rng = meta(store, mouse), np.random.default_rng(seed)
    n = m["unit_ids"].size
    return {
        tier: rng.normal(size=(int((m["tiers"] == tier).sum()), n)).astype(np.float32)
        for tier in ("test", "final_test")
        if (m["tiers"] == tier).any()
    }


def dynamic_predictions(
    store: Path, mouse: str, tiers: tuple[str, ...], seed: int = 0, frames: str = "scored"
) -> dict[str, list[np.ndarray]]:
    m, rng = meta(store, mouse), np.random.default_rng(seed)
    n, t_max = m["unit_ids"].size, 80
    out = {}
    for tier in tiers:
        rows = []
        for i in np.flatnonzero(m["tiers"] == tier):
            valid = int(m["valid_frames"][i])
            stop = scored_stop(valid, t_max)
            length = {"scored": stop - SKIP, "valid": valid, "padded": t_max}[frames]
            rows.append(rng.normal(size=(n, length)).astype(np.float32))
        out[tier] = rows
    return out


def scored_stop(valid: int, t_max: int = 80, convention: str = "competition") -> int:
    """One past the last scored frame: the competition's scorer lost the last valid frame of
    every NaN-padded trial (shorter than ``t_max``); the kit at HEAD keeps it."""
    return valid - 1 if convention == "competition" and valid < t_max else valid


def scored(rows: list[np.ndarray], store: Path, mouse: str, tier: str) -> list[np.ndarray]:
    """The scored frames of full-length (valid or padded) per-trial predictions."""
    m = meta(store, mouse)
    valid = m["valid_frames"][m["tiers"] == tier]
    return [r[:, SKIP : scored_stop(int(v))] for r, v in zip(rows, valid, strict=True)]


MAIN = ("live_test_main", "final_test_main")
BONUS = ("live_test_bonus", "final_test_bonus")


@pytest.fixture(scope="module")
def static_files(static_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The competition mouse's two CSVs, flat in a folder."""
    out = tmp_path_factory.mktemp("sub2022")
    competition = mice(static_store)[1]
    preds = {competition: static_predictions(static_store, competition)}
    sub.write_submission_2022(preds, static_store, out)
    return out


@pytest.fixture(scope="module")
def dynamic_files(dynamic_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sub2023")
    preds = {
        m: dynamic_predictions(dynamic_store, m, MAIN + BONUS, seed=k)
        for k, m in enumerate(mice(dynamic_store))
    }
    sub.write_submission_2023(preds, dynamic_store, out)
    return out


def copy_to(tmp_path: Path, *files: Path) -> Path:
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def codes(problems: list[sub.Problem]) -> set[str]:
    return {p.code for p in problems}


def only(problems: list[sub.Problem], code: str) -> list[sub.Problem]:
    found = [p for p in problems if p.code == code]
    assert found, f"no {code!r} problem in {[str(p) for p in problems]}"
    return found


# ----------------------------------------------------------------------------- 2022


class TestWrite2022:
    def test_round_trip(self, static_store: Path, static_files: Path) -> None:
        competition = mice(static_store)[1]
        m = meta(static_store, competition)
        expected = static_predictions(static_store, competition)
        assert sorted(os.listdir(static_files)) == [FINAL_CSV, LIVE_CSV]
        parts = sub.read_submission(static_files, mouse=competition)[competition]
        assert set(parts) == {"test", "final_test"}
        for tier, part in parts.items():
            trials = np.flatnonzero(m["tiers"] == tier)
            assert part.file.endswith(sub.file_name(tier))
            assert part.trial_indices.tolist() == m["trial_idx"][trials].astype(str).tolist()
            assert part.image_ids.tolist() == m["frame_image_id"][trials].tolist()
            np.testing.assert_array_equal(part.neuron_ids, m["unit_ids"])
            np.testing.assert_array_equal(part.stack(), expected[tier].astype(np.float64))
        assert sub.validate_submission(static_files, static_store) == []

    def test_plain_pandas_reads_it(self, static_store: Path, static_files: Path) -> None:
        competition = mice(static_store)[1]
        m = meta(static_store, competition)
        df = pd.read_csv(static_files / LIVE_CSV)
        assert list(df.columns) == ["trial_indices", "image_ids", "prediction", "neuron_ids"]
        predictions = np.array([ast.literal_eval(x) for x in df["prediction"]])
        np.testing.assert_array_equal(
            predictions, static_predictions(static_store, competition)["test"]
        )
        assert ast.literal_eval(df["neuron_ids"][0]) == m["unit_ids"].tolist()
        assert df["neuron_ids"].nunique() == 1
        assert df["image_ids"].tolist() == m["frame_image_id"][m["tiers"] == "test"].tolist()

    def test_integer_trial_ids_and_mapping_input(self, static_store: Path, tmp_path: Path) -> None:
        mouse = mice(static_store)[0]
        m = meta(static_store, mouse)
        preds = static_predictions(static_store, mouse)["test"]
        trials = np.flatnonzero(m["tiers"] == "test")
        sub.write_submission_2022({mouse: {"test": preds}}, static_store, tmp_path / "a")
        mapping = {int(i): p for i, p in reversed(list(zip(trials, preds, strict=True)))}
        sub.write_submission_2022({m["source"]: {"test": mapping}}, static_store, tmp_path / "b")
        a, b = (tmp_path / x / LIVE_CSV for x in "ab")
        assert a.read_bytes() == b.read_bytes()
        part = sub.read_submission(a)[None]["test"]
        assert part.trial_indices.dtype == np.int64
        assert part.trial_indices.tolist() == m["trial_idx"][trials].tolist()

    def test_several_mice_get_subfolders(self, static_store: Path, tmp_path: Path) -> None:
        preds = {k: static_predictions(static_store, k) for k in mice(static_store)}
        written = sub.write_submission_2022(preds, static_store, tmp_path)
        sources = sorted(meta(static_store, k)["source"] for k in mice(static_store))
        assert sorted(os.listdir(tmp_path)) == sources
        assert {p.parent.name for p in written} == set(sources)
        competition = meta(static_store, mice(static_store)[1])["source"]
        assert sorted(os.listdir(tmp_path / competition)) == [FINAL_CSV, LIVE_CSV]
        assert set(sub.read_submission(tmp_path)) == set(sources)
        assert sub.validate_submission(tmp_path, static_store) == []

    def test_rows_and_neurons_in_another_order(
        self, static_store: Path, static_files: Path, tmp_path: Path
    ) -> None:
        df = pd.read_csv(static_files / LIVE_CSV, dtype=str)
        order = np.random.default_rng(1).permutation(5)
        df["prediction"] = [
            str(np.array(ast.literal_eval(x))[order].tolist()) for x in df["prediction"]
        ]
        df["neuron_ids"] = [
            str(np.array(ast.literal_eval(x))[order].tolist()) for x in df["neuron_ids"]
        ]
        df.iloc[::-1].to_csv(tmp_path / LIVE_CSV, index=False)
        shutil.copy(static_files / FINAL_CSV, tmp_path / FINAL_CSV)
        assert sub.validate_submission(tmp_path, static_store) == []

    def test_writer_lists_every_problem(self, static_store: Path, tmp_path: Path) -> None:
        plain, competition = mice(static_store)
        good = static_predictions(static_store, competition)
        nan = good["final_test"].copy()
        nan[2, 1] = np.nan
        bad = {
            competition: {"test": good["test"][:-1], "final_test": nan},
            plain: {"test": static_predictions(static_store, plain)["test"][:, :4]},
        }
        with pytest.raises(sub.SubmissionError) as info:
            sub.write_submission_2022(bad, static_store, tmp_path)
        text = str(info.value)
        n_plain = len(bad[plain]["test"])
        assert f"{2 + n_plain} problem(s)" in text  # the count, the NaN, each short trial
        assert "found 8" in text and "NaN or infinite" in text and "found (4,)" in text
        assert not tmp_path.exists() or os.listdir(tmp_path) == []
        with pytest.raises(sub.SubmissionError, match="no submission file for tier"):
            sub.write_submission_2022({plain: {"validation": good["test"]}}, static_store, tmp_path)


# ----------------------------------------------------------------------------- 2023


class TestWrite2023:
    def test_files_and_zips(self, dynamic_files: Path) -> None:
        assert sorted(os.listdir(dynamic_files)) == sorted(
            [
                FINAL_MAIN,
                LIVE_MAIN,
                "predictions_final_test_bonus_ood.parquet.brotli",
                "predictions_final_test_bonus_ood.zip",
                "predictions_live_test_bonus_ood.parquet.brotli",
                "predictions_live_test_bonus_ood.zip",
                "predictions_main.zip",
            ]
        )
        with zipfile.ZipFile(dynamic_files / "predictions_main.zip") as zf:
            assert sorted(zf.namelist()) == [FINAL_MAIN, LIVE_MAIN]
            assert zf.read(LIVE_MAIN) == (dynamic_files / LIVE_MAIN).read_bytes()
        with zipfile.ZipFile(dynamic_files / "predictions_live_test_bonus_ood.zip") as zf:
            assert zf.namelist() == ["predictions_live_test_bonus_ood.parquet.brotli"]

    def test_round_trip(self, dynamic_store: Path, dynamic_files: Path) -> None:
        read = sub.read_submission(dynamic_files / "predictions_main.zip")
        for k, mouse in enumerate(mice(dynamic_store)):
            m = meta(dynamic_store, mouse)
            expected = dynamic_predictions(dynamic_store, mouse, MAIN + BONUS, seed=k)
            assert set(read[m["source"]]) == set(MAIN)
            for tier in MAIN:
                part = read[m["source"]][tier]
                assert part.trial_indices.tolist() == np.flatnonzero(m["tiers"] == tier).tolist()
                np.testing.assert_array_equal(part.neuron_ids, m["unit_ids"])
                assert len(part.values) == len(expected[tier])
                for got, want in zip(part.values, expected[tier], strict=True):
                    assert got.dtype == np.float32
                    np.testing.assert_array_equal(got, want)
        assert sub.validate_submission(dynamic_files / "predictions_main.zip", dynamic_store) == []
        assert sub.validate_submission(dynamic_files, dynamic_store) == []

    def test_plain_pandas_reads_it(self, dynamic_store: Path, dynamic_files: Path) -> None:
        df = pd.read_parquet(dynamic_files / LIVE_MAIN)
        assert list(df.columns) == ["mouse", "trial_indices", "prediction", "neuron_ids"]
        assert df["trial_indices"].dtype == np.int64
        sources = {meta(dynamic_store, k)["source"]: k for k in mice(dynamic_store)}
        assert set(df["mouse"]) == set(sources)
        row = df.iloc[0]
        m = meta(dynamic_store, sources[row["mouse"]])
        prediction = np.asarray(row["prediction"].tolist())
        valid = int(m["valid_frames"][row["trial_indices"]])
        assert prediction.shape == (m["unit_ids"].size, scored_stop(valid) - SKIP)
        assert row["neuron_ids"].dtype == np.uint32
        np.testing.assert_array_equal(row["neuron_ids"], m["unit_ids"])
        schema = pq.read_schema(dynamic_files / LIVE_MAIN)
        assert schema.field("prediction").type == pa.list_(pa.list_(pa.float32()))
        assert (
            pq.ParquetFile(dynamic_files / LIVE_MAIN).metadata.row_group(0).column(0).compression
            == "BROTLI"
        )

    @pytest.mark.parametrize("frames", ["valid", "padded"])
    def test_longer_trials_are_cut_to_scored_frames(
        self, dynamic_store: Path, tmp_path: Path, frames: str
    ) -> None:
        mouse = mice(dynamic_store)[0]
        full = dynamic_predictions(dynamic_store, mouse, ("live_test_main",), frames=frames)
        m = meta(dynamic_store, mouse)
        for row, valid in zip(
            full["live_test_main"], m["valid_frames"][m["tiers"] == "live_test_main"], strict=True
        ):
            row[:, valid:] = np.nan  # padding, as in the store: cut away, so accepted
        sub.write_submission_2023({mouse: full}, dynamic_store, tmp_path, make_zips=False)
        part = next(iter(sub.read_submission(tmp_path / LIVE_MAIN).values()))["live_test_main"]
        for got, want in zip(
            part.values,
            scored(full["live_test_main"], dynamic_store, mouse, "live_test_main"),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)

    def test_wrong_frame_count_is_refused(self, dynamic_store: Path, tmp_path: Path) -> None:
        mouse = mice(dynamic_store)[0]
        preds = dynamic_predictions(dynamic_store, mouse, ("live_test_main",))
        preds["live_test_main"][1] = preds["live_test_main"][1][:, 1:]
        with pytest.raises(sub.SubmissionError, match=r"trial \d+: expected \d+ scored frames"):
            sub.write_submission_2023({mouse: preds}, dynamic_store, tmp_path)
        assert not tmp_path.exists() or os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- validation, 2022


def broken_csv(static_files: Path, tmp_path: Path, edit: Any, name: str = LIVE_CSV) -> Path:
    df = pd.read_csv(static_files / LIVE_CSV, dtype=str, keep_default_na=False)
    df = edit(df)
    df.to_csv(tmp_path / name, index=False)
    return tmp_path / name


class TestValidate2022:
    def test_extra_duplicate_and_missing_trials(
        self, static_store: Path, static_files: Path, tmp_path: Path
    ) -> None:
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            extra = df.iloc[[0]].assign(trial_indices="not-a-trial")
            return pd.concat([df.iloc[1:], df.iloc[[2]], extra], ignore_index=True)

        path = broken_csv(static_files, tmp_path, edit)
        first = pd.read_csv(static_files / LIVE_CSV, dtype=str)["trial_indices"]
        problems = sub.validate_submission(path, static_store)
        assert codes(problems) == {"trial_extra", "trial_duplicate", "trial_missing"}
        (extra,) = only(problems, "trial_extra")
        assert extra.trial == "not-a-trial" and extra.row == len(first)
        assert "not a trial of tier 'test'" in str(extra)
        (dup,) = only(problems, "trial_duplicate")
        assert dup.trial == first[2] and "first in row 1" in dup.message
        (missing,) = only(problems, "trial_missing")
        assert missing.trial == first[0] and "no row for this trial" in missing.message

    def test_wrong_neuron_ids(self, static_store: Path, static_files: Path, tmp_path: Path) -> None:
        ids = ast.literal_eval(pd.read_csv(static_files / LIVE_CSV)["neuron_ids"][0])
        wrong = [*ids[:-2], ids[0], 10**6]

        def edit(df: pd.DataFrame) -> pd.DataFrame:
            df["neuron_ids"] = str(wrong)
            df.loc[3, "neuron_ids"] = str(ids[::-1][:4])
            return df

        competition = mice(static_store)[1]
        problems = sub.validate_submission(
            broken_csv(static_files, tmp_path, edit), static_store, mouse=competition
        )
        assert codes(problems) == {
            "neuron_ids_rows",
            "neuron_duplicate",
            "neuron_missing",
            "neuron_extra",
        }
        assert str(ids[0]) in only(problems, "neuron_duplicate")[0].message
        assert f"{ids[-2]}, {ids[-1]}" in only(problems, "neuron_missing")[0].message
        assert "1000000" in only(problems, "neuron_extra")[0].message
        assert only(problems, "neuron_ids_rows")[0].row == 3

    def test_shape_nan_inf_and_image_ids(
        self, static_store: Path, static_files: Path, tmp_path: Path
    ) -> None:
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            df.loc[0, "prediction"] = "[1.0, 2.0]"
            df.loc[1, "prediction"] = "[nan, 1.0, 2.0, nan, 3.0]"
            df.loc[2, "prediction"] = "[inf, 1.0, 2.0, 3.0, -inf]"
            df.loc[3, "image_ids"] = "42"
            df.loc[4, "prediction"] = "1.0, 2.0"
            return df

        problems = sub.validate_submission(broken_csv(static_files, tmp_path, edit), static_store)
        assert codes(problems) == {"shape", "nan", "inf", "image_id", "parse"}
        shape = only(problems, "shape")[0]
        assert shape.row == 0 and "shape (2,), expected (5,)" in shape.message
        assert "2 NAN value(s)" in only(problems, "nan")[0].message
        assert only(problems, "inf")[0].row == 2 and "2 INF" in only(problems, "inf")[0].message
        assert "image_ids 42, expected" in only(problems, "image_id")[0].message
        assert only(problems, "parse")[0].row == 4
        assert len(problems) == 5  # the unparseable row is not reported twice

    def test_wrong_file_name_and_columns(
        self, static_store: Path, static_files: Path, tmp_path: Path
    ) -> None:
        renamed = copy_to(tmp_path, static_files / LIVE_CSV) / LIVE_CSV
        renamed = renamed.rename(tmp_path / "submission_live_test.csv")
        (problem,) = sub.validate_submission(renamed, static_store)
        assert problem.code == "file_name" and "submission_file_live_test.csv" in problem.message
        path = broken_csv(
            static_files, tmp_path, lambda df: df.rename(columns={"prediction": "predictions"})
        )
        (problem,) = sub.validate_submission(path, static_store)
        assert problem.code == "columns"
        assert "missing ['prediction']" in problem.message
        assert "unexpected ['predictions']" in problem.message
        with pytest.raises(sub.SubmissionFormatError, match="missing"):
            sub.read_submission(path)

    def test_missing_file_in_folder(
        self, static_store: Path, static_files: Path, tmp_path: Path
    ) -> None:
        folder = copy_to(tmp_path, static_files / LIVE_CSV)
        (problem,) = sub.validate_submission(folder, static_store)
        assert problem.code == "file_missing" and problem.file.endswith(FINAL_CSV)

    def test_unknown_mouse(self, static_store: Path, static_files: Path, tmp_path: Path) -> None:
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            df["neuron_ids"] = "[1, 2, 3, 4, 5]"
            return df

        problems = sub.validate_submission(broken_csv(static_files, tmp_path, edit), static_store)
        (problem,) = problems
        assert problem.code == "mouse_unknown" and "pass mouse=" in problem.message

    def test_check_submission_lists_all(
        self, static_store: Path, static_files: Path, tmp_path: Path
    ) -> None:
        sub.check_submission(static_files, static_store)

        def edit(df: pd.DataFrame) -> pd.DataFrame:
            df.loc[0, "prediction"] = "[nan, 1.0, 2.0, 3.0, 4.0]"
            return df.iloc[:-1]

        path = broken_csv(static_files, tmp_path, edit)
        with pytest.raises(sub.SubmissionError) as info:
            sub.check_submission(path, static_store)
        assert codes(info.value.problems) == {"nan", "trial_missing"}
        assert "2 problem(s)" in str(info.value)
        assert "row 0 (trial" in str(info.value) and "[trial_missing]" in str(info.value)


# ----------------------------------------------------------------------------- validation, 2023


def broken_parquet(dynamic_files: Path, tmp_path: Path, edit: Any, name: str = LIVE_MAIN) -> Path:
    df = pd.read_parquet(dynamic_files / name)
    df = edit(df)
    df.to_parquet(tmp_path / name, compression="brotli", index=False)
    return tmp_path / name


class TestValidate2023:
    def test_missing_and_extra_mouse(
        self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path
    ) -> None:
        first = pd.read_parquet(dynamic_files / LIVE_MAIN)["mouse"][0]

        def edit(df: pd.DataFrame) -> pd.DataFrame:
            return df.assign(mouse=df["mouse"].where(df["mouse"] != first, "dynamic1-1-1-Video-x"))

        problems = sub.validate_submission(
            broken_parquet(dynamic_files, tmp_path, edit), dynamic_store
        )
        assert codes(problems) == {"mouse_missing", "mouse_extra"}
        assert only(problems, "mouse_missing")[0].mouse == first
        assert only(problems, "mouse_extra")[0].mouse == "dynamic1-1-1-Video-x"

    def test_trials(self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path) -> None:
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            df.loc[1, "trial_indices"] = df.loc[0, "trial_indices"]
            df.loc[2, "trial_indices"] = 10_000
            return df

        problems = sub.validate_submission(
            broken_parquet(dynamic_files, tmp_path, edit), dynamic_store
        )
        assert codes(problems) == {"trial_duplicate", "trial_extra", "trial_missing"}
        assert only(problems, "trial_extra")[0].trial == 10_000
        assert len(only(problems, "trial_missing")) == 2

    def test_rows_in_any_order(
        self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path
    ) -> None:
        path = broken_parquet(dynamic_files, tmp_path, lambda df: df.sample(frac=1, random_state=3))
        assert sub.validate_submission(path, dynamic_store) == []

    def test_ragged_row(self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path) -> None:
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            rows = [list(p) for p in df["prediction"]]
            rows[4][0] = rows[4][0][:-1]
            return df.assign(prediction=rows)

        path = broken_parquet(dynamic_files, tmp_path, edit)
        (problem,) = sub.validate_submission(path, dynamic_store)
        assert problem.code == "shape" and problem.row == 4
        assert "neuron lists of different lengths" in problem.message
        with pytest.raises(sub.SubmissionFormatError, match="different lengths"):
            sub.read_submission(path)

    def test_neuron_order(self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path) -> None:
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            df["neuron_ids"] = [ids[::-1] for ids in df["neuron_ids"]]
            df["prediction"] = [p[::-1] for p in df["prediction"]]
            return df

        path = broken_parquet(dynamic_files, tmp_path, edit)
        problems = sub.validate_submission(path, dynamic_store)
        assert codes(problems) == {"neuron_order"}
        assert len(problems) == 2  # one per mouse
        assert "not in unit_ids order" in problems[0].message
        assert sub.validate_submission(path, dynamic_store, strict_neuron_order=False) == []

    def test_wrong_neuron_ids_shape_nan_inf(
        self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path
    ) -> None:
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            prediction = [np.stack(p.tolist()) for p in df["prediction"]]
            prediction[0] = prediction[0][:, 1:]
            prediction[1][0, 0] = np.nan
            prediction[2][1, 2] = np.inf
            df["prediction"] = [list(p) for p in prediction]
            ids = df.loc[3, "neuron_ids"].copy()
            ids[0] = 99_999
            df.at[3, "neuron_ids"] = ids
            return df

        problems = sub.validate_submission(
            broken_parquet(dynamic_files, tmp_path, edit), dynamic_store
        )
        assert codes(problems) == {"shape", "nan", "inf", "neuron_ids_rows"}
        shape = only(problems, "shape")[0]
        assert shape.row == 0 and "expected (4," in shape.message
        assert only(problems, "nan")[0].row == 1 and only(problems, "inf")[0].row == 2
        assert "99999" in only(problems, "neuron_ids_rows")[0].message

    def test_wrong_columns_and_types(
        self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path
    ) -> None:
        path = broken_parquet(dynamic_files, tmp_path, lambda df: df.drop(columns=["mouse"]))
        (problem,) = sub.validate_submission(path, dynamic_store)
        assert problem.code == "columns" and "missing ['mouse']" in problem.message
        path = broken_parquet(
            dynamic_files, tmp_path, lambda df: df.assign(trial_indices=df["trial_indices"] * 1.0)
        )
        (problem,) = sub.validate_submission(path, dynamic_store)
        assert (
            problem.code == "column_type"
            and "'trial_indices' must be an integer" in problem.message
        )

    def test_zip_layout(self, dynamic_store: Path, dynamic_files: Path, tmp_path: Path) -> None:
        nested = tmp_path / "nested.zip"
        with zipfile.ZipFile(nested, "w") as zf:
            zf.write(dynamic_files / LIVE_MAIN, f"sub/{LIVE_MAIN}")
            zf.write(dynamic_files / FINAL_MAIN, f"sub/{FINAL_MAIN}")
        problems = sub.validate_submission(nested, dynamic_store)
        assert codes(problems) == {"zip_member"}
        assert "not in a folder" in problems[0].message
        half = tmp_path / "half.zip"
        with zipfile.ZipFile(half, "w") as zf:
            zf.write(dynamic_files / LIVE_MAIN, LIVE_MAIN)
            zf.writestr("notes.txt", "hello")
        problems = sub.validate_submission(half, dynamic_store)
        assert codes(problems) == {"file_missing", "file_name"}
        assert FINAL_MAIN in only(problems, "file_missing")[0].message

    def test_scored_frames_follow_skip(self, dynamic_store: Path, dynamic_files: Path) -> None:
        problems = sub.validate_submission(
            dynamic_files / LIVE_MAIN, dynamic_store, skip=SKIP + 1, scored_frames="competition"
        )
        assert codes(problems) == {"shape"}
        assert len(problems) == len(pd.read_parquet(dynamic_files / LIVE_MAIN))


# ----------------------------------------------------------------------------- atomic writes


class TestAtomicWrites:
    def test_no_temporary_files_and_no_overwrite(
        self, static_store: Path, static_files: Path, tmp_path: Path
    ) -> None:
        competition = mice(static_store)[1]
        preds = {competition: static_predictions(static_store, competition, seed=5)}
        before = (static_files / LIVE_CSV).read_bytes()
        with pytest.raises(sub.SubmissionExistsError, match="overwrite=True"):
            sub.write_submission_2022(preds, static_store, static_files)
        assert (static_files / LIVE_CSV).read_bytes() == before
        target = copy_to(tmp_path, static_files / LIVE_CSV, static_files / FINAL_CSV)
        sub.write_submission_2022(preds, static_store, target, overwrite=True)
        assert sorted(os.listdir(target)) == [FINAL_CSV, LIVE_CSV]
        assert (target / LIVE_CSV).read_bytes() != before

    def test_failure_mid_write_leaves_nothing(
        self, static_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        competition = mice(static_store)[1]
        preds = {competition: static_predictions(static_store, competition)}
        calls = []
        original = sub._list_text

        def failing(values: np.ndarray) -> str:
            calls.append(1)
            if len(calls) > 12:
                raise OSError("disk full")
            return original(values)

        monkeypatch.setattr(sub, "_list_text", failing)
        with pytest.raises(OSError, match="disk full"):
            sub.write_submission_2022(preds, static_store, tmp_path)
        assert os.listdir(tmp_path) == []

    def test_failure_while_zipping_leaves_nothing(
        self, dynamic_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        mouse = mice(dynamic_store)[0]
        preds = {mouse: dynamic_predictions(dynamic_store, mouse, MAIN)}

        def failing(path: Any, members: Any) -> None:
            Path(path).write_bytes(b"PK partial")
            raise OSError("interrupted")

        monkeypatch.setattr(sub, "_zip_files", failing)
        with pytest.raises(OSError, match="interrupted"):
            sub.write_submission_2023(preds, dynamic_store, tmp_path)
        assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- ground truth


class TestGroundTruth:
    def test_static(self, static_store: Path, tmp_path: Path) -> None:
        plain = mice(static_store)[0]
        written = sub.write_ground_truth(static_store, tmp_path)
        # the competition mouse's test responses are withheld (zero): only the other mouse
        assert [p.name for p in written] == ["ground_truth_file_test.csv"]
        m = meta(static_store, plain)
        trials = np.flatnonzero(m["tiers"] == "test")
        raw = sd.open_mouse(static_store, plain, chunks=None)["responses"].values[trials]
        normalizer = sd.Normalizer.from_statistics(
            sd.open_statistics(static_store, plain), kind="static"
        )
        df = pd.read_csv(written[0])
        assert list(df.columns) == ["trial_indices", "image_ids", "responses", "neuron_ids"]
        responses = np.array([ast.literal_eval(x) for x in df["responses"]])
        np.testing.assert_array_equal(responses, normalizer("responses", raw))
        assert not np.allclose(responses, raw)
        assert df["trial_indices"].tolist() == m["trial_idx"][trials].tolist()
        assert sub.validate_submission(written[0], static_store) == []

    def test_dynamic(self, dynamic_store: Path, tmp_path: Path) -> None:
        plain = mice(dynamic_store)[0]
        m = meta(dynamic_store, plain)
        written = sub.write_ground_truth(dynamic_store, tmp_path, mice=mice(dynamic_store))
        assert sorted(p.name for p in written) == sorted(
            f"solutions_{s}.parquet.brotli"
            for s in ("live_main", "final_main", "live_test_bonus_ood", "final_test_bonus_ood")
        )
        ds = sd.open_mouse(dynamic_store, plain, chunks=None)
        normalizer = sd.Normalizer.from_statistics(
            sd.open_statistics(dynamic_store, plain), kind="dynamic"
        )
        part = sub.read_submission(tmp_path / "solutions_live_main.parquet.brotli")
        assert set(part) == {m["source"]}  # the competition mouse's live responses are withheld
        part = part[m["source"]]["live_test_main"]
        assert part.column == "responses"
        for i, values in zip(part.trial_indices, part.values, strict=True):
            full = normalizer("responses", ds["responses"].values[[i]])[0]
            stop = scored_stop(int(m["valid_frames"][i]))
            np.testing.assert_array_equal(values, full[:, SKIP:stop])
        problems = sub.validate_submission(
            tmp_path / "solutions_live_main.parquet.brotli", dynamic_store, mice=[plain]
        )
        assert problems == []

    def test_official_column_name(self, dynamic_store: Path, tmp_path: Path) -> None:
        plain = mice(dynamic_store)[0]
        sub.write_ground_truth(
            dynamic_store, tmp_path, mice=[plain], tiers=["live_test_main"], column="prediction"
        )
        df = pd.read_parquet(tmp_path / "solutions_live_main.parquet.brotli")
        assert list(df.columns) == ["mouse", "trial_indices", "prediction", "neuron_ids"]
        assert sub.validate_submission(tmp_path, dynamic_store, mice=[plain]) == []

    def test_withheld_only(self, static_store: Path, tmp_path: Path) -> None:
        competition = mice(static_store)[1]
        with pytest.raises(sub.SubmissionError, match="withheld"):
            sub.write_ground_truth(static_store, tmp_path, mice=[competition])


# ----------------------------------------------------------------------------- list literals


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20))
def test_list_literal_round_trip(values: list[float]) -> None:
    array = np.array(values, dtype=np.float64)
    parsed = sub._parse_list(sub._list_text(array), np.float64)
    assert parsed is not None
    np.testing.assert_array_equal(parsed, array)
    numbers = ~np.isnan(array)  # repr drops the sign of NaN
    np.testing.assert_array_equal(np.signbit(parsed[numbers]), np.signbit(array[numbers]))
    finite = array[np.isfinite(array)]
    assert ast.literal_eval(sub._list_text(finite)) == finite.tolist()
