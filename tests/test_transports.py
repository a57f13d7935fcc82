"""One store read from memory://, HTTP (Range) and S3 (moto) equals the local read; sources and
stores on remote transports convert like local ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from servers import upload_dir
from trees import write_tree, zip_tree

import sensorium_data as sd
from sensorium_data.store.verify import verify


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("transports")
    trees = [write_tree(tmp / "trees", "static"), write_tree(tmp / "trees", "dynamic", seed=3)]
    store = tmp / "store.zarr"
    sd.convert(trees, store, progress=False)
    return store, trees


def assert_equal_to_local(url: str, local: Path, **kw: object) -> None:
    for mouse in ("11111-1-1", "22222-2-2"):
        expected = sd.open_mouse(local, mouse).load()
        got = sd.open_mouse(url, mouse, **kw)
        xr.testing.assert_identical(got.load(), expected)
    tree = sd.open_store(url, **kw)
    assert set(tree.children) == {"11111-1-1", "22222-2-2"}
    stats = sd.open_statistics(url, "22222-2-2", **kw)
    xr.testing.assert_identical(
        stats["videos"]["all"], sd.open_statistics(local, "22222-2-2")["videos"]["all"]
    )


def test_memory_store(local_store: tuple[Path, list[Path]]) -> None:
    store, trees = local_store
    url = "memory://transports/store.zarr"
    sd.convert(trees, url, progress=False)
    assert_equal_to_local(url, store)
    assert verify(url, trees) == []


@pytest.mark.slow
def test_http_store(local_store: tuple[Path, list[Path]], http_server) -> None:
    store, _ = local_store
    srv = http_server(store.parent)
    url = srv.url_for("store.zarr")
    assert_equal_to_local(url, store)
    assert any(r.range for r in srv.requests)  # shards are read by byte ranges


def test_http_open_reads_consolidated_metadata_and_no_data(
    local_store: tuple[Path, list[Path]], http_server
) -> None:
    store, _ = local_store
    srv = http_server(store.parent)
    sd.open_mouse(srv.url_for("store.zarr"), "22222-2-2")
    paths = [r.path for r in srv.requests]
    assert [p for p in paths if p.endswith("zarr.json")] == ["/store.zarr/zarr.json"] * 2
    data_vars = ("videos", "responses", "behavior", "pupil_center")  # lazy: none of them read
    assert not [p for p in paths if any(f"/22222-2-2/{v}/" in p for v in data_vars)]


@pytest.mark.slow
def test_s3_store_and_simplecache(
    local_store: tuple[Path, list[Path]], s3_server, s3_bucket, tmp_path
) -> None:
    store, _ = local_store
    url = f"s3://{s3_bucket}/store.zarr"
    upload_dir(store, url, s3_server.storage_options)
    assert_equal_to_local(url, store, storage_options=s3_server.storage_options)
    cached = f"simplecache::{url}"
    opts = {"s3": s3_server.storage_options, "simplecache": {"cache_storage": str(tmp_path / "c")}}
    assert_equal_to_local(cached, store, storage_options=opts)
    assert any((tmp_path / "c").iterdir())


@pytest.mark.slow
def test_convert_straight_into_s3(
    local_store: tuple[Path, list[Path]], s3_server, s3_bucket
) -> None:
    store, trees = local_store
    url = f"s3://{s3_bucket}/direct.zarr"
    sd.convert(trees, url, storage_options=s3_server.storage_options, progress=False)
    assert_equal_to_local(url, store, storage_options=s3_server.storage_options)


@pytest.mark.slow
@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_sources_over_http(
    local_store: tuple[Path, list[Path]], http_server, tmp_path: Path, as_zip: bool
) -> None:
    store, trees = local_store
    root = trees[1]
    src = zip_tree(root) if as_zip else root
    srv = http_server(src.parent)
    url = srv.url_for(src.name)
    out = tmp_path / "from_http.zarr"
    sd.convert([url], out, progress=False)
    xr.testing.assert_identical(
        sd.open_mouse(out).drop_attrs().load(),
        sd.open_mouse(store, "22222-2-2").drop_attrs().load(),
    )
    assert verify(out, [url]) == []


@pytest.mark.slow
@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_sources_on_s3(
    local_store: tuple[Path, list[Path]], s3_server, s3_bucket, tmp_path: Path, as_zip: bool
) -> None:
    store, trees = local_store
    root = trees[0]
    if as_zip:
        z = zip_tree(root)
        s3_server.filesystem().put(str(z), f"{s3_bucket}/{z.name}")
        url = f"s3://{s3_bucket}/{z.name}"
    else:
        url = f"s3://{s3_bucket}/{root.name}"
        upload_dir(root, url, s3_server.storage_options)
    out = tmp_path / "from_s3.zarr"
    sd.convert([url], out, source_options=s3_server.storage_options, progress=False)
    xr.testing.assert_identical(
        sd.open_mouse(out).drop_attrs().load(),
        sd.open_mouse(store, "11111-1-1").drop_attrs().load(),
    )
