"""Figures of tables: benchmark rows as labelled bars.

A benchmark (``python -m benchmarks.dataloader``, ``benchmarks.convert``) produces a list of rows,
one dict per configuration; :func:`benchmark_bars` draws one horizontal bar per row, coloured by
a group (the year, the kind of data), each bar annotated with its value and its ratio to a
reference row of its group (the official loader, the bare ``np.load`` pass).
:func:`score_histogram` compares per-neuron scores of several submissions or models.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from ._base import new_figure

__all__ = ["benchmark_bars", "score_histogram"]

Key = Hashable | Callable[[Mapping[str, Any]], Any]


def _as_rows(rows: Any) -> list[Mapping[str, Any]]:
    """``rows`` as a list of mappings (a pandas DataFrame gives its records)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict("records")
    if isinstance(rows, Mapping | str) or not isinstance(rows, Iterable):
        raise TypeError(f"rows: expected a list of dicts or a DataFrame, got {type(rows).__name__}")
    rows = list(rows)
    if not rows:
        raise ValueError("rows: no rows to draw")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"rows[{i}]: expected a dict, got {type(row).__name__}")
    return rows


def _getter(key: Key, name: str) -> Callable[[int, Mapping[str, Any]], Any]:
    """A function ``(i, row) -> value`` for a key or a callable, with errors naming ``name``."""
    if callable(key):
        return lambda i, row: key(row)

    def get(i: int, row: Mapping[str, Any]) -> Any:
        if key not in row:
            known = ", ".join(map(str, row)) or "none"
            raise ValueError(f"{name}={key!r}: rows[{i}] has no such key (keys: {known})")
        return row[key]

    return get


def _number(i: int, v: Any, value: Key, log: bool) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"value={value!r}: rows[{i}] holds {v!r}, not a number") from None
    if x != x or (log and x <= 0):
        need = "positive (the x axis is logarithmic; log=False for a linear one)" if log else "set"
        raise ValueError(f"value={value!r}: rows[{i}] holds {v!r}; values must be {need}")
    return x


def _ratio_text(ratio: float) -> str:
    if ratio >= 10:
        return f"{ratio:.0f}x"
    if ratio >= 1:
        return f"{ratio:.1f}x"
    return f"{ratio:.2g}x"


def _value_text(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def benchmark_bars(
    rows: Any,
    *,
    value: Hashable,
    label: Key,
    group: Key | None = None,
    reference: Callable[[Mapping[str, Any]], bool] | None = None,
    title: str | None = None,
    log: bool = True,
    unit: str | None = None,
    width: float = 7.5,
) -> Any:
    """One horizontal bar per benchmark row, its length ``row[value]``, grouped and annotated.

    Parameters
    ----------
    rows
        The benchmark table: a list of dicts (one per configuration) or a pandas DataFrame.
    value
        The key of the number each bar shows (e.g. ``"samples_per_s"``).
    label
        The key of each bar's label, or a callable making the label from the row.
    group
        The key (or a callable) of each row's group, e.g. the year: bars of one group are drawn
        together in one colour, groups in the order they first appear, with a legend.
    reference
        A callable ``row -> bool`` that picks the reference row of each group (e.g. the official
        loader); every bar is then annotated with its ratio to that row's value ("21x") and a
        dotted line marks the reference value across its group.
    title
        The figure's title.
    log
        A logarithmic x axis (values must be positive).
    unit
        The x axis label, e.g. ``"samples/s (epoch 2)"``; default the name of ``value``.
    width
        Figure width in inches; the height grows with the number of bars.

    Returns
    -------
    matplotlib.figure.Figure
        Bars from the top in the order of the rows (grouped), each labelled and annotated with
        its value (and ratio).
    """
    rows = _as_rows(rows)
    get_value = _getter(value, "value")
    get_label = _getter(label, "label")
    get_group = _getter(group, "group") if group is not None else (lambda i, row: None)
    if reference is not None and not callable(reference):
        raise TypeError(f"reference: expected a function row -> bool, got {reference!r}")

    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(get_group(i, row), []).append(i)
    values = [_number(i, get_value(i, row), value, log) for i, row in enumerate(rows)]
    labels = [str(get_label(i, row)) for i, row in enumerate(rows)]

    refs: dict[Any, float] = {}
    if reference is not None:
        for g, members in groups.items():
            hits = [i for i in members if reference(rows[i])]
            if not hits:
                where = "the rows" if g is None else f"group {g!r}"
                raise ValueError(f"reference: no row of {where} is a reference row")
            refs[g] = values[hits[0]]

    n = len(rows) + 0.6 * (len(groups) - 1)
    fig, axes = new_figure(width=width, height=1.4 + 0.32 * n)
    ax = axes[0, 0]
    colours = [f"C{k % 10}" for k in range(len(groups))]
    top, y_ticks, y_labels = 0.0, [], []
    for colour, (g, members) in zip(colours, groups.items(), strict=True):
        ys = [top - k for k in range(len(members))]
        xs = [values[i] for i in members]
        ax.barh(ys, xs, height=0.75, color=colour, label=None if g is None else str(g))
        for y, i in zip(ys, members, strict=True):
            text = _value_text(values[i])
            if g in refs:
                text += f"  ({_ratio_text(values[i] / refs[g])})"
            ax.annotate(
                text,
                (values[i], y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
            )
        if g in refs:
            ax.vlines(
                refs[g], ys[-1] - 0.45, ys[0] + 0.45, colors="0.3", linestyles=":", zorder=1.5
            )
        y_ticks += ys
        y_labels += [labels[i] for i in members]
        top = ys[-1] - 1.6
    ax.set_yticks(y_ticks, y_labels)
    ax.set_ylim(top + 1.6 - 0.7, 0.7)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 2, max(values) * 6)
    else:
        ax.set_xlim(0, max(values) * 1.3)
    ax.set_xlabel(unit if unit is not None else str(value))
    ax.grid(axis="x", which="major", alpha=0.3)
    if any(g is not None for g in groups):
        ax.legend(title=None, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def score_histogram(
    scores: Mapping[str, Any],
    *,
    metric: str,
    bins: int = 20,
    title: str | None = None,
) -> Any:
    """Histograms of per-neuron scores, one outline per submission (or model), means marked.

    Parameters
    ----------
    scores
        ``{name: per-neuron values}`` (e.g. ``metrics.single_trial_correlation(...,
        per_neuron=True)`` of each submission); NaN values (unselected neurons) are left out.
    metric
        What the values are, for the x axis label (e.g. ``"single-trial correlation"``).
    bins
        Number of bins, shared by all histograms.
    title
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        One step histogram per entry (neurons per bin), a dashed line at each entry's mean, and
        a legend giving the names, means and neuron counts.
    """
    import numpy as np

    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores: expected a non-empty dict {name: per-neuron values}")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins: expected an integer >= 1, got {bins!r}")
    values = {}
    for name, v in scores.items():
        try:
            x = np.asarray(v, dtype=float).ravel()
        except (TypeError, ValueError):
            raise ValueError(
                f"scores[{name!r}]: expected numbers, got {type(v).__name__}"
            ) from None
        x = x[np.isfinite(x)]
        if not x.size:
            raise ValueError(f"scores[{name!r}]: no finite value to draw")
        values[str(name)] = x
    edges = np.histogram_bin_edges(np.concatenate(list(values.values())), bins=bins)
    fig, axes = new_figure(width=6.4, height=3.6)
    ax = axes[0, 0]
    for k, (name, x) in enumerate(values.items()):
        colour = f"C{k % 10}"
        label = f"{name} (mean {x.mean():.3f}, {x.size} neurons)"
        ax.hist(x, bins=edges, histtype="step", linewidth=1.8, color=colour, label=label)
        ax.axvline(x.mean(), color=colour, linestyle="--", linewidth=1)
    ax.set_xlabel(f"{metric} (per neuron)")
    ax.set_ylabel("neurons")
    ax.legend(fontsize="small")
    ax.set_title(title or f"{metric} per neuron")
    return fig
