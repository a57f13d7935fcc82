"""make_loaders over real transports and processes: same batches everywhere, faults retried."""

from __future__ import annotations

import asyncio
import gc
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from servers import close_cached_filesystems, upload_dir
from trees import write_tree

import sensorium_data as sd
from sensorium_data.errors import RemoteReadError
from sensorium_data.loading.checks import LoaderArgumentError
from sensorium_data.loading.loaders import LongCycler, make_loaders
from sensorium_data.store.access import quiet


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("loaders")
    trees = [
        write_tree(tmp / "t", "static", n_trials=70, n_neurons=6),
        write_tree(tmp / "t", "dynamic", n_trials=30, n_neurons=4, n_frames=40, seed=2),
    ]
    out = tmp / "s.zarr"
    sd.convert(
        trees, out, chunking=sd.ChunkOptions(trials_per_chunk=4, trials_per_shard=8), progress=False
    )
    return out


def batches(url, mouse: str, tier: str, **kw) -> list[dict[str, torch.Tensor]]:
    """Every batch of a tier, streamed unless ``in_memory`` or ``device`` says otherwise."""
    kw.setdefault("batch_size", 8)
    if "device" not in kw:
        kw.setdefault("in_memory", False)
    loaders = make_loaders(url, mice=[mouse], tiers=[tier], **kw)
    return list(loaders[tier][mouse])


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            torch.testing.assert_close(x[k], y[k], equal_nan=True, rtol=0, atol=0)


STATIC, DYNAMIC = "11111-1-1", "22222-2-2"
DYN_KW = {"frames": 20}


def test_static_batches_have_official_shapes(store: Path) -> None:
    out = batches(store, STATIC, "validation", scale=0.5, include_behavior=True, include_pupil=True)
    first = out[0]
    assert first["images"].shape == (8, 1 + 3 + 2, 6, 10) and first["images"].dtype == torch.float32
    assert first["responses"].shape == (8, 6) and first["behavior"].shape == (8, 3)
    assert first["pupil_center"].shape == (8, 2)
    trials = torch.cat([b["trial"] for b in out]).tolist()
    tiers = np.load(next((store.parent / "t").glob("static*")) / "meta/trials/tiers.npy")
    assert trials == np.flatnonzero(tiers == "validation").tolist()  # ascending file order


def test_dynamic_batches_have_official_shapes(store: Path) -> None:
    out = batches(store, DYNAMIC, "train", frames=20, include_behavior=True, batch_size=4)
    b = out[0]
    assert b["videos"].shape == (4, 3, 20, 6, 10)
    assert b["responses"].shape == (4, 4, 20) and b["behavior"].shape == (4, 2, 20)
    assert ((b["frame_start"] >= 0) & (b["frame_start"] + 20 <= 40)).all()
    assert not torch.isnan(b["responses"]).any()  # windows stay inside the valid frames


def test_train_windows_are_reproducible_with_a_seeded_generator(store: Path) -> None:
    def run() -> list[dict]:
        g = torch.Generator().manual_seed(7)
        return batches(store, DYNAMIC, "train", frames=20, generator=g, num_workers=0)

    torch.manual_seed(7)
    a = run()
    torch.manual_seed(7)
    assert_same(a, run())


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("mouse, kw", [(STATIC, {}), (DYNAMIC, DYN_KW)], ids=["static", "dynamic"])
def test_memory_http_s3_equal_local(
    store, http_server, s3_server, s3_bucket, mouse, kw, num_workers
) -> None:
    tier = "validation"
    expected = batches(store, mouse, tier, **kw)
    srv = http_server(store.parent)
    url = f"s3://{s3_bucket}/s.zarr"
    upload_dir(store, url, s3_server.storage_options)
    for where, opts in ((srv.url_for("s.zarr"), None), (url, s3_server.storage_options)):
        got = batches(
            where,
            mouse,
            tier,
            storage_options=opts,
            num_workers=num_workers,
            multiprocessing_context="fork" if num_workers else None,
            **kw,
        )
        assert_same(got, expected)


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "forkserver", "spawn"])
def test_worker_start_methods(store: Path, context: str) -> None:
    expected = batches(store, STATIC, "test")
    got = batches(store, STATIC, "test", num_workers=2, multiprocessing_context=context)
    assert_same(got, expected)


@pytest.mark.slow
def test_in_memory_equals_streaming(store: Path) -> None:
    for mouse, kw in ((STATIC, {}), (DYNAMIC, DYN_KW)):
        assert_same(
            batches(store, mouse, "validation", in_memory=True, **kw),
            batches(store, mouse, "validation", **kw),
        )
        assert_same(
            batches(store, mouse, "validation", resident_bytes=0, **kw),
            batches(store, mouse, "validation", **kw),
        )
    # 2023 in memory: whole trials held normalised (float32), windows cut per batch
    (loader,) = make_loaders(
        store, mice=[DYNAMIC], tiers=["train"], batch_size=8, in_memory=True, **DYN_KW
    )["train"].values()
    opened = loader.dataset.opened
    assert opened.ready is not None and not opened.readers
    assert all(v.dtype == torch.float32 for v in opened.ready.values())
    torch.manual_seed(7)  # random window starts come from torch's generator
    got = list(loader)
    torch.manual_seed(7)
    assert_same(got, batches(store, DYNAMIC, "train", **DYN_KW))
    auto = make_loaders(
        store, mice=[STATIC], tiers=["train"], in_memory="auto", memory_budget=10**9
    )
    assert auto["train"][STATIC].dataset.in_memory
    default = make_loaders(store, mice=[STATIC], tiers=["train"])  # "auto" is the default
    assert default["train"][STATIC].dataset.in_memory
    assert not isinstance(default["train"][STATIC].batch_sampler, sd.loading.loaders.Lookahead)
    tight = make_loaders(store, mice=[STATIC], tiers=["train"], in_memory="auto", memory_budget=10)
    assert not tight["train"][STATIC].dataset.in_memory


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"scale": 0.5, "include_behavior": True},
        {"scale": 0.5, "include_behavior": True, "include_pupil": True, "n_neurons": 3},
        {"normalize": False, "include_behavior": True},
    ],
    ids=["plain", "behavior", "pupil-neurons", "raw"],
)
@pytest.mark.parametrize("tier", ["validation", "train"])
def test_model_ready_in_memory_batches_equal_streamed_ones(
    store: Path, options: dict, tier: str
) -> None:
    """2022 in memory: the dataset holds model-ready tensors, gathered per batch (behaviour
    channels written into the batch); every batch equals the streamed one bit for bit."""
    memory = make_loaders(
        store, mice=[STATIC], tiers=[tier], batch_size=8, in_memory=True, **options
    )
    loader = memory[tier][STATIC]
    got = list(loader)
    ready = loader.dataset.opened.ready
    assert ready is not None and not loader.dataset.opened.readers
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in ready.values())
    assert ready["images"].shape[1] == 1  # channels are added per batch, not stored
    streamed = batches(store, STATIC, tier, **options)
    assert_same(got, streamed)  # same seed: the train tier's shuffled order too


# aiohttp can leave a session behind when a connection is reset mid-body; it is collected here
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_faults_are_retried_and_never_reach_a_batch(store: Path, http_server) -> None:
    expected = batches(store, DYNAMIC, "validation", **DYN_KW)
    # about one request in five fails (503) or is cut off mid-body; each is retried up to 8 times
    srv = http_server(store.parent, fail_every=7, reset_every=11, reset_mode="truncate")
    got = batches(
        srv.url_for("s.zarr"), DYNAMIC, "validation", retries=8, resident_bytes=0, **DYN_KW
    )
    assert_same(got, expected)
    assert srv.fault_counts.get("503", 0) > 0 and srv.fault_counts.get("reset", 0) > 0
    close_cached_filesystems()
    gc.collect()


@pytest.mark.slow
def test_a_persistent_error_names_the_url_and_chunk(store: Path, http_server) -> None:
    srv = http_server(store.parent)
    loaders = make_loaders(
        srv.url_for("s.zarr"),
        mice=[STATIC],
        tiers=["test"],
        retries=1,
        batch_size=4,
        in_memory=False,
        resident_bytes=0,  # stream even behaviour and pupil centre
        prefetch=0,  # the next batch is read when asked for, after the server stopped
    )
    batches_ = iter(loaders["test"][STATIC])
    next(batches_)  # the store is open, its first chunks read
    srv.stop()
    with pytest.raises(
        RemoteReadError, match=r"s\.zarr: reading 11111-1-1/\w+/c/\d+/.* failed 2 times"
    ):
        next(batches_)
    wait_for_background_reads()  # zarr's sibling reads of that batch still retry, then fail


def wait_for_background_reads(timeout: float = 10.0) -> None:
    """Wait until zarr's event loop runs no read task (before the servers' sessions close)."""
    loop = zarr.core.sync._get_loop()

    async def busy() -> int:
        return len(asyncio.all_tasks()) - 1  # this coroutine's own task

    deadline = time.monotonic() + timeout
    while asyncio.run_coroutine_threadsafe(busy(), loop).result() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_ddp_ranks_are_disjoint_and_equal(store: Path) -> None:
    seen, counts = [], set()
    for rank in range(2):
        out = batches(store, STATIC, "train", rank=rank, world_size=2, drop_last=True, seed=3)
        counts.add(len(out))
        seen += torch.cat([b["trial"] for b in out]).tolist()
    assert len(counts) == 1 and len(seen) == len(set(seen))


def test_neuron_and_image_selection(store: Path) -> None:
    ds = sd.open_mouse(store, STATIC)
    ids = ds.neuron.values[[1, 4]]
    out = batches(store, STATIC, "validation", neuron_ids=ids.tolist())
    full = batches(store, STATIC, "validation")
    torch.testing.assert_close(out[0]["responses"], full[0]["responses"][:, [1, 4]])
    some = batches(store, STATIC, "train", n_neurons=3, neuron_seed=1)
    assert some[0]["responses"].shape[1] == 3
    two = batches(store, STATIC, "train", n_train_images=2, image_seed=0)
    trials = torch.cat([b["trial"] for b in two]).numpy()
    assert len(np.unique(ds.frame_image_id.values[trials])) == 2
    with pytest.raises(sd.SensoriumDataError, match="neuron_ids not in the store"):
        make_loaders(store, mice=[STATIC], neuron_ids=[-5])


def test_long_cycler_visits_every_mouse(store: Path) -> None:
    loaders = make_loaders(store, tiers=["train"], batch_size=8, frames=20)
    cycler = LongCycler(loaders["train"])
    mice = [m for m, _ in cycler]
    longest = max(len(loader) for loader in loaders["train"].values())
    assert len(mice) == len(cycler) == 2 * longest
    assert mice[:4] == [STATIC, DYNAMIC, STATIC, DYNAMIC]


def test_prefetching_gives_the_same_batches_and_cleans_up(store: Path) -> None:
    for mouse, kw in ((STATIC, {}), (DYNAMIC, DYN_KW)):
        torch.manual_seed(3)  # 2023 train windows come from torch's generator
        plain = batches(store, mouse, "train", prefetch=0, resident_bytes=0, **kw)
        torch.manual_seed(3)
        ahead = batches(store, mouse, "train", prefetch=3, resident_bytes=0, **kw)
        assert_same(ahead, plain)
    (loader,) = make_loaders(
        store, mice=[STATIC], tiers=["train"], batch_size=4, prefetch=2, in_memory=False
    )["train"].values()
    assert len(loader) == len(loader.batch_sampler.sampler)
    loader.batch_sampler.set_epoch(1)  # the wrapped sampler's methods are reachable
    it = iter(loader)
    next(it)
    assert len(loader.dataset._pending) == 2  # batches 2 and 3 are being read
    del it
    gc.collect()
    assert loader.dataset._pending == {}  # a loop left early drops what it read ahead
    with pytest.raises(ValueError, match="prefetch depth must be >= 1"):
        sd.loading.loaders.Lookahead(loader.batch_sampler.sampler, loader.dataset, depth=0)


@pytest.mark.slow
def test_a_failed_prefetch_raises_when_its_batch_is_asked_for(store: Path, http_server) -> None:
    srv = http_server(store.parent)
    (loader,) = make_loaders(
        srv.url_for("s.zarr"),
        mice=[STATIC],
        tiers=["test"],
        retries=1,
        batch_size=2,
        resident_bytes=0,
        prefetch=1,
        in_memory=False,
    )["test"].values()
    it = iter(loader)
    next(it)  # batch 2 is already read; batch 3's read starts when batch 2 is handed out
    next(it)
    srv.stop()
    with pytest.raises(RemoteReadError, match=r"s\.zarr"):
        for _ in it:
            pass
    wait_for_background_reads()


def test_arrays_of_another_layout_are_read_through_zarr(store: Path, tmp_path: Path) -> None:
    """A store whose arrays are not the converter's shards (e.g. rewritten by other tools)."""
    other = tmp_path / "other.zarr"
    shutil.copytree(store, other)
    for key in ("responses", "videos"):
        mouse = STATIC if key == "responses" else DYNAMIC
        old = zarr.open_array(str(other / mouse / key), mode="r")
        data, meta = old[...], old.metadata
        zarr.create_array(
            str(other / mouse / key),
            data=data,
            chunks=(3, *data.shape[1:]),  # no shards, zarr's default codecs
            dimension_names=meta.dimension_names,
            attributes=dict(old.attrs),
            overwrite=True,
        )
    with quiet():
        zarr.consolidate_metadata(str(other))
    for mouse, kw in ((STATIC, {}), (DYNAMIC, DYN_KW)):
        loaders = make_loaders(
            other, mice=[mouse], tiers=["validation"], resident_bytes=0, in_memory=False
        )
        (loader,) = loaders["validation"].values()
        key = "responses" if mouse == STATIC else "videos"
        assert loader.dataset.opened.readers[key] is None  # the zarr fallback
        assert_same(
            batches(other, mouse, "validation", resident_bytes=0, **kw),
            batches(store, mouse, "validation", resident_bytes=0, **kw),
        )


def test_a_zarr_store_object_can_be_given(store: Path) -> None:
    from zarr.storage import LocalStore

    wrapped = LocalStore(str(store), read_only=True)
    assert_same(
        batches(wrapped, STATIC, "validation", resident_bytes=0),
        batches(store, STATIC, "validation", resident_bytes=0),
    )
    with pytest.raises(TypeError, match="store must be a path or URL, got LocalStore"):
        sd.convert([], wrapped)


# ----------------------------------------------------------------------------- device-resident


def test_device_resident_batches_equal_host_ones(store: Path) -> None:
    """device="cpu" runs the device-resident code: arrays placed when the loaders are made,
    batches gathered there, equal to the host loaders' bit for bit, DDP splits included."""
    options = {"scale": 0.5, "include_behavior": True, "include_pupil": True}
    for tier in ("validation", "train"):
        for rank in (0, 1):
            split = {"rank": rank, "world_size": 2}
            dev = make_loaders(
                store, mice=[STATIC], tiers=[tier], batch_size=8, device="cpu", **split, **options
            )[tier][STATIC]
            assert dev.dataset._opened is not None  # placed at make time, not at the first batch
            assert dev.dataset.opened.ready["images"].device == torch.device("cpu")
            assert_same(list(dev), batches(store, STATIC, tier, **split, **options))
    # resuming from a sampler state gives the same remaining batches in both modes
    host = make_loaders(store, mice=[STATIC], tiers=["train"], batch_size=8)["train"][STATIC]
    dev = make_loaders(store, mice=[STATIC], tiers=["train"], batch_size=8, device="cpu")
    dev = dev["train"][STATIC]
    for loader in (host, dev):
        it = iter(loader)
        next(it)
        state = loader.batch_sampler.state_dict(batches_done=1)  # what the loop consumed
        del it
        loader.batch_sampler.load_state_dict(state)
    rest = list(dev)
    assert len(rest) == len(dev) - 1
    assert_same(rest, list(host))


@pytest.mark.parametrize(
    "options",
    [
        {"frames": 20, "include_behavior": True, "include_pupil": True},
        {"frames": 20, "scale": 0.5, "n_neurons": 3},
        {"frames": None, "include_behavior": True},  # whole trials, NaN past the short ones
    ],
    ids=["windows", "scaled", "whole"],
)
def test_device_resident_2023_windows_equal_host_ones(store: Path, options: dict) -> None:
    """2023 on the device: whole trials placed once, each batch's windows gathered there
    (random starts from torch's generator, as the host loaders draw them), for both ranks of
    a DDP split and after resuming."""
    for tier in ("train", "validation"):
        for rank in (0, 1):
            split = {"rank": rank, "world_size": 2}
            dev = make_loaders(
                store, mice=[DYNAMIC], tiers=[tier], batch_size=4, device="cpu", **split, **options
            )[tier][DYNAMIC]
            assert dev.dataset._opened is not None and dev.dataset.opened.ready is not None
            torch.manual_seed(3)
            got = list(dev)
            torch.manual_seed(3)
            assert_same(got, batches(store, DYNAMIC, tier, batch_size=4, **split, **options))
    host = make_loaders(store, mice=[DYNAMIC], tiers=["train"], batch_size=4, **options)
    dev = make_loaders(
        store, mice=[DYNAMIC], tiers=["train"], batch_size=4, device="cpu", **options
    )
    rests = []
    for loader in (host["train"][DYNAMIC], dev["train"][DYNAMIC]):
        it = iter(loader)
        next(it)
        state = loader.batch_sampler.state_dict(batches_done=1)
        del it
        loader.batch_sampler.load_state_dict(state)
        torch.manual_seed(5)
        rests.append(list(loader))
    assert len(rests[1]) == len(dev["train"][DYNAMIC]) - 1
    assert_same(rests[1], rests[0])


def test_device_mode_errors_name_what_is_wrong(store: Path) -> None:
    with pytest.raises(
        sd.SensoriumDataError,
        match=r"mouse 11111-1-1: its \d+ selected trials need [\d,]+ bytes on cpu, which has 10 bytes of memory_budget",
    ):
        make_loaders(store, mice=[STATIC], tiers=["train"], device="cpu", memory_budget=10)
    with pytest.raises(LoaderArgumentError, match="num_workers=2 with device"):
        make_loaders(store, mice=[STATIC], device="cpu", num_workers=2)
    with pytest.raises(
        sd.SensoriumDataError, match=r"mouse 22222-2-2: its \d+ selected trials need [\d,]+"
    ):
        make_loaders(store, mice=[DYNAMIC], device="cpu", frames=20, memory_budget=10)
    with pytest.raises(LoaderArgumentError, match="device: not a torch device: 'gpu0'"):
        make_loaders(store, mice=[STATIC], device="gpu0")


def test_an_uncompressed_store_streams_the_same_batches(tmp_path: Path) -> None:
    """clevel=0 stores are read row by row straight into the batch (a faster path for
    streaming); the batches equal those of the default, compressed store."""
    trees = [
        write_tree(tmp_path / "t", "static", n_trials=40, n_neurons=6),
        write_tree(tmp_path / "t", "dynamic", n_trials=20, n_neurons=4, n_frames=40, seed=2),
    ]
    chunking = {"trials_per_chunk": 4, "trials_per_shard": 8}
    for name, clevel in (("lz4.zarr", 5), ("raw.zarr", 0)):
        opts = sd.ChunkOptions(clevel=clevel, **chunking)
        sd.convert(trees, tmp_path / name, chunking=opts, progress=False)
    for mouse, kw in ((STATIC, {"scale": 0.5, "include_behavior": True}), (DYNAMIC, DYN_KW)):
        for tier in ("train", "validation"):
            torch.manual_seed(0)  # the same random windows
            raw = batches(tmp_path / "raw.zarr", mouse, tier, resident_bytes=0, **kw)
            torch.manual_seed(0)
            assert_same(raw, batches(tmp_path / "lz4.zarr", mouse, tier, resident_bytes=0, **kw))


def test_2023_windows_do_not_depend_on_the_mode(store: Path) -> None:
    """Random window starts come from torch's generator when a batch is planned, prefetch
    batches ahead in every mode: a model drawing random numbers between batches (dropout)
    gets the same windows streamed, in memory and on a device."""
    got = []
    for mode in ({"in_memory": False}, {"in_memory": True}, {"device": "cpu"}):
        (loader,) = make_loaders(
            store, mice=[DYNAMIC], tiers=["train"], batch_size=4, **DYN_KW, **mode
        )["train"].values()
        torch.manual_seed(11)
        batches_ = []
        for batch in loader:
            batches_.append(batch)
            torch.rand(3)  # what a training step draws
        got.append(batches_)
    assert_same(got[1], got[0])
    assert_same(got[2], got[0])
    # an empty batch in memory, with behaviour channels (CPU gather into the image channels)
    (loader,) = make_loaders(
        store, mice=[STATIC], tiers=["validation"], include_behavior=True, in_memory=True
    )["validation"].values()
    empty = loader.dataset.__getitems__([])
    assert empty["images"].shape[0] == 0 and empty["images"].shape[1] == 4


def test_the_memory_budget_counts_float32_values(tmp_path: Path) -> None:
    """In memory every value is float32: stored uint8 images take 4x their stored bytes, so
    "auto" streams a mouse whose stored bytes fit the budget but whose float32 values do not."""
    tree = write_tree(tmp_path / "t", "static", n_trials=40, n_neurons=6, image_dtype="uint8")
    store = tmp_path / "u8.zarr"
    sd.convert([tree], store, progress=False)
    group = zarr.open_group(str(store), mode="r")[STATIC]
    keys = ("images", "responses", "behavior", "pupil_center")
    stored = sum(int(np.prod(group[k].shape[1:])) * group[k].dtype.itemsize for k in keys)
    as_float = sum(int(np.prod(group[k].shape[1:])) * 4 for k in keys)
    assert group["images"].dtype == np.uint8 and stored < as_float
    n = int(np.sum(group["tiers"][...] == "train"))
    for budget, held in (((stored + as_float) // 2 * n, False), (as_float * n, True)):
        loaders = make_loaders(store, tiers=["train"], in_memory="auto", memory_budget=budget)
        assert loaders["train"][STATIC].dataset.in_memory is held


def test_a_dataset_on_a_device_is_held_in_memory(store: Path) -> None:
    """MouseDataset(device=...) made directly, without in_memory: the arrays are placed on the
    device anyway (streamed batches would be host tensors)."""
    (loader,) = make_loaders(store, mice=[STATIC], tiers=["validation"])["validation"].values()
    ds = loader.dataset
    direct = sd.MouseDataset(
        store, STATIC, trials=ds.trials, options=ds.options, in_memory=False, device="cpu"
    )
    assert direct.opened.ready is not None and not direct.opened.readers
    batch = direct.__getitems__([0, 1])
    assert batch["images"].device == torch.device("cpu") and batch["images"].shape[0] == 2
