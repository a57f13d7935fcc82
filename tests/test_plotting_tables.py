"""``benchmark_bars`` draws what a benchmark table holds; the benchmarks' figures are built from
rows made by the benchmarks' own row-building code (timed here on a tiny synthetic mouse)."""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.plotting import benchmark_bars, tables
from sensorium_data.plotting.tables import score_histogram

ROWS = [
    {"year": 2022, "pipeline": "official", "samples_per_s": 500.0},
    {"year": 2022, "pipeline": "toolkit", "samples_per_s": 10500.0},
    {"year": 2023, "pipeline": "official", "samples_per_s": 30.0},
    {"year": 2023, "pipeline": "toolkit", "samples_per_s": 255.0},
    {"year": 2022, "pipeline": "toolkit, 2 workers", "samples_per_s": 4600.0},
]


def _bars(fig: Any) -> list[Any]:
    ax = fig.axes[0]
    return [patch for container in ax.containers for patch in container]


def _annotations(fig: Any) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def _tick_labels(fig: Any) -> dict[float, str]:
    ax = fig.axes[0]
    return {
        round(float(y), 6): t.get_text()
        for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    }


def _drawn(fig: Any) -> list[tuple[str, float]]:
    """(label, width) of every bar, from the top."""
    labels = _tick_labels(fig)
    bars = sorted(_bars(fig), key=lambda b: -(b.get_y() + b.get_height() / 2))
    return [(labels[round(b.get_y() + b.get_height() / 2, 6)], b.get_width()) for b in bars]


class TestBenchmarkBars:
    def test_one_bar_per_row_its_width_the_value_grouped(self) -> None:
        fig = benchmark_bars(ROWS, value="samples_per_s", label="pipeline", group="year")
        assert _drawn(fig) == [
            ("official", 500.0),
            ("toolkit", 10500.0),
            ("toolkit, 2 workers", 4600.0),  # drawn with its group
            ("official", 30.0),
            ("toolkit", 255.0),
        ]
        ax = fig.axes[0]
        assert [c.get_label() for c in ax.containers] == ["2022", "2023"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2022", "2023"]
        colours = {tuple(b.get_facecolor()) for b in ax.containers[0]}
        assert len(colours) == 1 and colours != {tuple(ax.containers[1][0].get_facecolor())}
        assert ax.get_xscale() == "log"
        assert ax.get_xlabel() == "samples_per_s"

    def test_annotations_values_and_ratios_to_the_reference_of_each_group(self) -> None:
        fig = benchmark_bars(
            ROWS,
            value="samples_per_s",
            label="pipeline",
            group="year",
            reference=lambda r: r["pipeline"] == "official",
            unit="samples/s",
            title="Loaders",
        )
        assert _annotations(fig) == [
            "500  (1.0x)",
            "10,500  (21x)",
            "4,600  (9.2x)",
            "30  (1.0x)",
            "255  (8.5x)",
        ]
        ax = fig.axes[0]
        assert ax.get_xlabel() == "samples/s" and ax.get_title() == "Loaders"
        segments = [seg for coll in ax.collections for seg in coll.get_segments()]
        assert sorted(seg[0][0] for seg in segments) == [30.0, 500.0]  # reference lines

    def test_dataframe_callable_label_linear_axis_no_group(self) -> None:
        import pandas as pd

        frame = pd.DataFrame(ROWS[:2])
        fig = benchmark_bars(
            frame,
            value="samples_per_s",
            label=lambda r: f"{r['year']} {r['pipeline']}",
            reference=lambda r: r["pipeline"] == "official",
            log=False,
        )
        assert _drawn(fig) == [("2022 official", 500.0), ("2022 toolkit", 10500.0)]
        assert fig.axes[0].get_xscale() == "linear"
        assert fig.axes[0].get_legend() is None
        assert _annotations(fig) == ["500  (1.0x)", "10,500  (21x)"]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            (dict(value="seconds", label="pipeline"), r"value='seconds': rows\[0\] has no"),
            (dict(value="samples_per_s", label="name"), r"label='name': rows\[0\] has no"),
            (
                dict(value="samples_per_s", label="pipeline", group="kind"),
                r"group='kind': rows\[0\] has no",
            ),
            (
                dict(
                    value="samples_per_s",
                    label="pipeline",
                    group="year",
                    reference=lambda r: r["samples_per_s"] == 500.0,
                ),
                "reference: no row of group 2023",
            ),
            (
                dict(value="samples_per_s", label="pipeline", reference="official"),
                "reference: expected a function",
            ),
        ],
    )
    def test_clear_errors(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises((ValueError, TypeError), match=message):
            benchmark_bars(ROWS, **kwargs)

    def test_bad_rows_and_values(self) -> None:
        with pytest.raises(ValueError, match="rows: no rows"):
            benchmark_bars([], value="v", label="l")
        with pytest.raises(TypeError, match="rows: expected a list of dicts"):
            benchmark_bars({"v": 1}, value="v", label="l")
        with pytest.raises(TypeError, match=r"rows\[1\]: expected a dict"):
            benchmark_bars([{"v": 1, "l": "a"}, 3], value="v", label="l")
        with pytest.raises(ValueError, match=r"rows\[0\] holds 0.*logarithmic"):
            benchmark_bars([{"v": 0, "l": "a"}], value="v", label="l")
        with pytest.raises(ValueError, match=r"rows\[0\] holds 'fast', not a number"):
            benchmark_bars([{"v": "fast", "l": "a"}], value="v", label="l")


class TestScoreHistogram:
    def test_one_histogram_per_entry_counting_its_finite_values(self) -> None:
        good = np.array([0.5, 0.6, 0.55, 0.7, np.nan])  # NaN: an unselected neuron
        bad = np.array([0.0, 0.1, -0.1, 0.05])
        fig = score_histogram({"model": good, "shuffled": bad}, metric="FEVE", bins=5)
        ax = fig.axes[0]
        outlines = ax.patches
        assert len(outlines) == 2  # step histograms: one outline each
        assert ax.get_xlabel() == "FEVE (per neuron)" and ax.get_ylabel() == "neurons"
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["model (mean 0.588, 4 neurons)", "shuffled (mean 0.013, 4 neurons)"]
        means = sorted(line.get_xdata()[0] for line in ax.lines)
        assert means == pytest.approx([bad.mean(), np.nanmean(good)])
        heights = [outline.get_xy()[:, 1].max() for outline in outlines]
        # 5 shared bins of 0.16 over -0.1..0.7: 0.55, 0.6, 0.7 in the last; -0.1, 0, 0.05 in the first
        assert heights == [3, 3]
        assert ax.get_title() == "FEVE per neuron"

    def test_clear_errors(self) -> None:
        with pytest.raises(ValueError, match="scores: expected a non-empty dict"):
            score_histogram({}, metric="m")
        with pytest.raises(ValueError, match=r"scores\['a'\]: no finite value"):
            score_histogram({"a": [np.nan]}, metric="m")
        with pytest.raises(ValueError, match=r"scores\['a'\]: expected numbers"):
            score_histogram({"a": ["x"]}, metric="m")
        with pytest.raises(ValueError, match="bins: expected an integer"):
            score_histogram({"a": [1.0]}, metric="m", bins=0)


# ----------------------------------------------------------------------------- the benchmarks


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("bench")
    return sd.example_store(folder, n_mice=1, n_trials=80, n_neurons=16, image_size=(36, 64))


def _tree(store: pathlib.Path) -> pathlib.Path:
    (tree,) = [p for p in (store.parent / "trees").iterdir() if p.is_dir()]
    return tree


def test_convert_figure_from_rows_of_a_real_run(
    tiny_store: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    from benchmarks import convert as bench

    tree = _tree(tiny_store)
    files = bench.data_files(tree)
    source = bench.folder_bytes(tree)
    bare = bench.np_load_pass(files)
    store = tmp_path / "timed.zarr"
    seconds = bench.time_convert(tree, store, "threads", 1, sd.ChunkOptions())
    common = dict(kind="static", trials=80, bare_seconds=bare, source_bytes=source)
    rows = [
        bench.make_row(config=bench.BARE, seconds=bare, store_bytes=None, **common),
        bench.make_row(
            config="convert, threads, 1 worker",
            seconds=seconds,
            store_bytes=bench.folder_bytes(store),
            **common,
        ),
    ]
    png = bench.write_figure(rows, tmp_path / "convert.json")
    assert png == tmp_path / "convert.png" and png.stat().st_size > 0
    fig = bench.figure(rows)
    assert _drawn(fig) == [(r["config"], pytest.approx(r["mb_per_s"])) for r in rows]
    ratio = rows[1]["mb_per_s"] / rows[0]["mb_per_s"]
    assert _annotations(fig)[0].endswith("(1.0x)")
    assert _annotations(fig)[1].endswith(f"({tables._ratio_text(ratio)})")
    assert [c.get_label() for c in fig.axes[0].containers] == ["2022 (80 trials)"]
    assert "MB/s" in fig.axes[0].get_xlabel()


@pytest.mark.usefixtures("one_thread")
def test_dataloader_figure_from_rows_of_a_real_run(
    tiny_store: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    from benchmarks import dataloader as bench

    args = argparse.Namespace(frames=300, official_samples=8)
    tree = _tree(tiny_store)
    reference = bench.time_reference(tree, "static", args)
    before = {**bench.official_row(reference, kind="static"), "pipeline": bench.REFERENCE}
    after = {**bench.official_row(dict(reference), kind="static"), "pipeline": bench.REFERENCE}
    limit = {**bench.time_limit(tiny_store, "static", args), "kind": "static"}
    limit.update(pipeline=bench.LIMIT, source="RAM", mode="gather", workers=0)
    timing = bench.time_toolkit(str(tiny_store), "static", "streaming", 0, args)
    memory = bench.time_toolkit(str(tiny_store), "static", "in memory", 0, args)
    toolkit = [
        bench.toolkit_row(
            timing, kind="static", source="local", mode="streaming", workers=0, sample_bytes=1
        ),
        bench.toolkit_row(
            memory, kind="static", source="local", mode="in memory", workers=0, sample_bytes=1
        ),
    ]
    rows = bench.with_ratios(before, after, limit, toolkit)
    png = bench.write_figure(rows, tmp_path / "dataloader.json")
    assert png.name == "dataloader.png" and png.stat().st_size > 0
    fig = bench.figure(rows)
    assert _drawn(fig) == [
        (bench.REFERENCE, pytest.approx(reference["samples_per_s"])),
        (bench.LIMIT, pytest.approx(limit["samples_per_s"])),
        ("toolkit, streaming, 0 workers", pytest.approx(timing["samples_per_s"])),
        ("toolkit, in memory, 0 workers", pytest.approx(memory["samples_per_s"])),
    ]
    x = timing["samples_per_s"] / reference["samples_per_s"]
    assert _annotations(fig)[0].endswith("(1.0x)")
    assert np.isclose(rows[2]["x_official"], x)
    assert np.isclose(rows[2]["of_limit"], timing["samples_per_s"] / limit["samples_per_s"])
    assert "epoch1" in timing and "read_bytes_per_sample" in timing
    assert "| 2022 | toolkit | local | in memory | 0 |" in bench.markdown(rows)
    assert [c.get_label() for c in fig.axes[0].containers] == ["2022 (static)"]
