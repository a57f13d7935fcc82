"""Statistics of a whole store, computed with dask on any scheduler, memory bounded by chunks.

- :func:`recompute_statistics`: the official ``meta/statistics`` of one mouse (mean, std, min,
  max, median per element over the trials of a tier; 2022 images one scalar each from the
  histogram of their integer pixel values), recomputed from the data, to check a release or a
  conversion against its sources or to make statistics for a subset of trials;
- :func:`neuron_summary`: per neuron, the response statistics, and the oracle correlation and
  the explainable variance (the kits' fraction) of the tier with repeats;
- :func:`store_summary`: :func:`neuron_summary` of every mouse of a store.

``scheduler``: ``None`` (dask's default, threads), ``"threads"``, ``"processes"``,
``"synchronous"``, the address of a ``dask.distributed`` scheduler (``"tcp://host:8786"``) or a
``distributed.Client``. The data are read lazily from the store (local, HTTP, S3, ...) by the
workers; each task holds one chunk of trials, or for medians all trials of a block of elements
(sized by dask's ``array.chunk-size``), never the whole store. ``sensorium-data stats STORE``
prints and writes the summary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .metrics import SKIP, explainable_variance, oracle_correlation
from .metrics.dynamic import repeat_groups_from_videos
from .store.access import list_mice, open_mouse

__all__ = ["STATISTICS", "neuron_summary", "recompute_statistics", "store_summary"]

STATISTICS = ("mean", "std", "min", "max", "median")
_LOCAL = ("threads", "processes", "synchronous", "sync")


@contextlib.contextmanager
def scheduler_context(scheduler: Any) -> Iterator[None]:
    """Run the ``dask`` computations inside on ``scheduler`` (see the module notes)."""
    if scheduler is None:
        yield
    elif isinstance(scheduler, str) and scheduler in _LOCAL:
        with dask.config.set(scheduler=scheduler):
            yield
    elif isinstance(scheduler, str):
        if "://" not in scheduler and ":" not in scheduler:
            raise ValueError(
                f"scheduler must be threads, processes, synchronous, a dask.distributed address "
                f"like tcp://127.0.0.1:8786 or a Client; got {scheduler!r}"
            )
        from distributed import Client

        with Client(scheduler, set_as_default=False) as client, dask.config.set(scheduler=client):
            yield
    else:  # a distributed.Client
        with dask.config.set(scheduler=scheduler):
            yield


def _tier_trials(ds: xr.Dataset, tier: str | Sequence[str], where: str) -> np.ndarray:
    tiers = np.asarray(ds["tiers"].values).tolist()
    wanted = {tier} if isinstance(tier, str) else set(tier)
    trials = np.flatnonzero([t in wanted for t in tiers])
    if not len(trials):
        raise ValueError(
            f"tier: {where} has no trials of {sorted(wanted)}; its tiers: {sorted(set(tiers))}"
        )
    return trials


def _elementwise(values: da.Array) -> dict[str, da.Array]:
    """Lazy NaN-aware statistics over axis 0, float64, as the official ones are made."""
    x = values.astype(np.float64)
    whole = x.rechunk({0: -1, **{i: "auto" for i in range(1, x.ndim)}})  # medians: all trials
    return {
        "mean": da.nanmean(x, axis=0),
        "std": da.nanstd(x, axis=0),
        "min": da.nanmin(x, axis=0),
        "max": da.nanmax(x, axis=0),
        "median": da.nanmedian(whole, axis=0),
    }


def _pixels(values: da.Array) -> dict[str, Any]:
    """Scalar statistics of integer pixel values 0-255 from their histogram (exact)."""
    flat = values.ravel()
    return {
        "histogram": da.bincount(da.clip(da.round(flat), 0, 255).astype(np.int64), minlength=256),
        "integral": da.all(flat == da.round(flat)),
        "in_range": da.all((flat >= 0) & (flat <= 255)),
    }


def recompute_statistics(
    store: Any,
    mouse: str | None = None,
    *,
    tier: str | Sequence[str] = "train",
    keys: Sequence[str] | None = None,
    scheduler: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, xr.Dataset]:
    """The official statistics of one mouse recomputed from its data (of ``keys``, default
    every one the mouse has).

    Returns ``{key: Dataset(mean, std, min, max, median)}`` for ``responses``, ``behavior``,
    ``pupil_center`` and the stimulus, as :func:`~sensorium_data.open_statistics` gives the
    stored ones (``["all"]``): per element over the trials of ``tier`` (2023: per frame, NaN
    where no trial is valid), float32 of float64 arithmetic, the standard deviation with
    ``ddof=0``; 2022 images as scalars over every pixel (their median from the histogram of the
    integer pixel values; images that are not integers 0-255 raise ``ValueError``).
    """
    ds = open_mouse(store, mouse, storage_options)
    where = f"{store} mouse {mouse!r}"
    trials = _tier_trials(ds, tier, where)
    stimulus = "videos" if "videos" in ds.data_vars else "images"
    lazy: dict[str, Any] = {}
    for key in keys or ("responses", "behavior", "pupil_center", stimulus):
        if key not in ds.data_vars:
            continue
        values = ds[key].isel(trial=trials).data
        if not isinstance(values, da.Array):
            values = da.from_array(values)
        lazy[key] = _pixels(values) if key == "images" else _elementwise(values)
    with scheduler_context(scheduler):
        (done,) = dask.compute(lazy)
    out: dict[str, xr.Dataset] = {}
    for key, computed in done.items():
        stats = computed
        if key == "images":
            if not (computed["integral"] and computed["in_range"]):
                raise ValueError(
                    f"{where}: images are not integer pixel values 0-255, so their statistics "
                    "are not the official histogram ones"
                )
            stats = _histogram_statistics(computed["histogram"])
        dims = ds[key].dims[1:]
        out[key] = xr.Dataset(
            {
                name: (dims if np.ndim(stats[name]) else (), np.asarray(stats[name], np.float32))
                for name in STATISTICS
            }
        )
    return out


def _histogram_statistics(hist: np.ndarray) -> dict[str, np.ndarray]:
    from .synthetic.files import histogram_statistics

    return histogram_statistics(np.asarray(hist))


def neuron_summary(
    store: Any,
    mouse: str | None = None,
    *,
    tier: str | Sequence[str] = "train",
    repeats_tier: str | None = None,
    skip: int = SKIP,
    statistics: xr.Dataset | None = None,
    scheduler: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Per neuron of one mouse: the response statistics of ``tier`` (``response_mean``, ...;
    2023: averaged over frames), and of the repeats of ``repeats_tier`` (2022 ``test``,
    2023 ``oracle``; withheld, all-zero responses give NaN) the ``oracle_correlation`` and the
    ``explainable_variance`` (the kits' ``compute_explainable_var``: the fraction of the
    variance that the stimulus explains). Indexed by the store's neuron ids. ``statistics``:
    the responses' entry of :func:`recompute_statistics` when it was computed already."""
    ds = open_mouse(store, mouse, storage_options)
    dynamic = "videos" in ds.data_vars
    where = f"{store} mouse {mouse!r}"
    stats = statistics
    if stats is None:  # the responses' alone: images and videos are not needed here
        stats = recompute_statistics(
            store,
            mouse,
            tier=tier,
            keys=("responses",),
            scheduler=scheduler,
            storage_options=storage_options,
        )["responses"]
    if dynamic:
        stats = stats.mean("frame", skipna=True)
    repeats_tier = repeats_tier or ("oracle" if dynamic else "test")
    sub = ds.isel(trial=_tier_trials(ds, repeats_tier, where))
    if dynamic:
        ids: Any = repeat_groups_from_videos(sub["videos"])
    else:
        ids = sub["frame_image_id"].values
    responses = sub["responses"]
    with scheduler_context(scheduler):
        withheld = (
            not bool(da.any(responses.data != 0).compute())
            if isinstance(responses.data, da.Array)
            else not np.any(responses.values)
        )
        if withheld:
            oracle = explained = np.full(ds.sizes["neuron"], np.nan, np.float32)
        else:
            oracle = np.asarray(oracle_correlation(responses, ids, skip=skip))
            explained = np.asarray(explainable_variance(responses, ids, skip=skip))
    out = xr.Dataset(
        {
            **{f"response_{k}": ("neuron", np.asarray(stats[k].values)) for k in STATISTICS},
            "oracle_correlation": ("neuron", oracle.astype(np.float32)),
            "explainable_variance": ("neuron", explained.astype(np.float32)),
        },
        coords={"neuron": ds["neuron"].values},
    )
    for name in ("unit_ids", "cell_motor_coordinates"):
        if name in ds.coords:
            out = out.assign_coords({name: ds.coords[name].variable.load()})
    out.attrs.update(statistics_tier=str(tier), repeats_tier=repeats_tier)
    return out


def store_summary(
    store: Any,
    *,
    mice: Sequence[str] | None = None,
    tier: str | Sequence[str] = "train",
    scheduler: Any = None,
    storage_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, xr.Dataset]:
    """:func:`neuron_summary` of every mouse of a store (or ``mice``), ``{mouse: Dataset}``."""
    from tqdm.auto import tqdm

    names = list(mice or list_mice(store, storage_options))
    return {
        m: neuron_summary(store, m, tier=tier, scheduler=scheduler, storage_options=storage_options)
        for m in tqdm(names, desc="mice", disable=not progress)
    }
