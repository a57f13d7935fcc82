"""The test servers behave like the real thing: Range, HEAD, listings, latency, faults, S3."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import fsspec
import numpy as np
import pytest
import requests
import s3fs
import zarr
import zarr.codecs
import zarr.storage

try:
    from servers import MotoS3Server, RangeHTTPServer, upload_dir
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.servers import MotoS3Server, RangeHTTPServer, upload_dir

SIZE = 1000


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``blob.bin`` (1000 random bytes) plus a nested tree ``a/{x.txt, b/{y.txt, c/z.bin}}``."""
    rng = np.random.default_rng(0)
    (tmp_path / "blob.bin").write_bytes(rng.integers(0, 256, SIZE, dtype=np.uint8).tobytes())
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "x.txt").write_text("x")
    (tmp_path / "a" / "b" / "y.txt").write_text("yy")
    (tmp_path / "a" / "b" / "c" / "z.bin").write_bytes(b"zzz")
    return tmp_path


@pytest.fixture
def blob(tree: Path) -> bytes:
    return (tree / "blob.bin").read_bytes()


class TestRangeSemantics:
    def test_plain_get_is_200_with_length_and_accept_ranges(self, tree, blob, http_server):
        srv = http_server(tree)
        r = requests.get(srv.url_for("blob.bin"), timeout=5)
        assert r.status_code == 200
        assert r.content == blob
        assert r.headers["Content-Length"] == str(SIZE)
        assert r.headers["Accept-Ranges"] == "bytes"

    @pytest.mark.parametrize(
        ("header", "first", "last"),
        [
            ("bytes=10-19", 10, 19),
            ("bytes=0-0", 0, 0),
            ("bytes=990-", 990, SIZE - 1),
            ("bytes=-7", SIZE - 7, SIZE - 1),
            ("bytes=-5000", 0, SIZE - 1),  # suffix longer than the file: whole file
            ("bytes=900-5000", 900, SIZE - 1),  # last byte past the end: clamped
        ],
    )
    def test_range_is_206_with_the_file_slice(self, tree, blob, http_server, header, first, last):
        srv = http_server(tree)
        r = requests.get(srv.url_for("blob.bin"), headers={"Range": header}, timeout=5)
        assert r.status_code == 206
        assert r.content == blob[first : last + 1]
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
        assert r.headers["Content-Length"] == str(last - first + 1)

    def test_range_with_raw_urllib(self, tree, blob, http_server):
        srv = http_server(tree)
        req = urllib.request.Request(srv.url_for("blob.bin"), headers={"Range": "bytes=-16"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 206
            assert resp.read() == blob[-16:]

    @pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
    def test_unsatisfiable_range_is_416(self, tree, http_server, header):
        srv = http_server(tree)
        r = requests.get(srv.url_for("blob.bin"), headers={"Range": header}, timeout=5)
        assert r.status_code == 416
        assert r.headers["Content-Range"] == f"bytes */{SIZE}"

    def test_unsatisfiable_range_with_raw_urllib(self, tree, http_server):
        srv = http_server(tree)
        req = urllib.request.Request(srv.url_for("blob.bin"), headers={"Range": "bytes=2000-"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 416
        info.value.close()

    def test_malformed_range_is_ignored(self, tree, blob, http_server):
        srv = http_server(tree)
        r = requests.get(srv.url_for("blob.bin"), headers={"Range": "bytes=5-2"}, timeout=5)
        assert r.status_code == 200
        assert r.content == blob

    def test_head_has_length_and_accept_ranges_and_no_body(self, tree, http_server):
        srv = http_server(tree)
        r = requests.head(srv.url_for("blob.bin"), timeout=5)
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(SIZE)
        assert r.headers["Accept-Ranges"] == "bytes"
        assert r.content == b""

    def test_missing_file_is_404(self, tree, http_server):
        srv = http_server(tree)
        assert requests.get(srv.url_for("nope.bin"), timeout=5).status_code == 404
        assert requests.head(srv.url_for("a/nope"), timeout=5).status_code == 404

    def test_without_listing_directories_are_403_and_files_served(self, tree, http_server):
        srv = http_server(tree, listing=False, forbidden={"/a/b/y.txt"})
        assert requests.get(srv.url_for("a") + "/", timeout=5).status_code == 403
        assert requests.get(srv.url_for("a"), timeout=5).status_code == 403
        assert requests.get(srv.url_for("a/x.txt"), timeout=5).text == "x"
        assert requests.get(srv.url_for("a/b/y.txt"), timeout=5).status_code == 403
        with pytest.raises(Exception, match="403"):
            fsspec.filesystem("http", skip_instance_cache=True).ls(srv.url_for("a") + "/")

    def test_directory_listing_links_children(self, tree, http_server):
        srv = http_server(tree)
        r = requests.get(srv.url_for("a") + "/", timeout=5)
        assert r.status_code == 200
        assert 'href="x.txt"' in r.text
        assert 'href="b/"' in r.text


class TestFsspecHttp:
    def test_cat_file_with_start_and_end(self, tree, blob, http_server):
        srv = http_server(tree)
        fs = fsspec.filesystem("http", skip_instance_cache=True)
        url = srv.url_for("blob.bin")
        assert fs.cat_file(url, start=100, end=164) == blob[100:164]
        assert fs.cat_file(url, start=-10) == blob[-10:]
        assert fs.cat_file(url) == blob
        assert fs.info(url)["size"] == SIZE

    def test_ls_a_directory(self, tree, http_server):
        srv = http_server(tree)
        fs = fsspec.filesystem("http", skip_instance_cache=True)
        base = srv.url_for("a")
        assert fs.ls(base + "/", detail=False) == [f"{base}/b/", f"{base}/x.txt"]

    def test_find_a_tree_recursively(self, tree, http_server):
        srv = http_server(tree)
        fs = fsspec.filesystem("http", skip_instance_cache=True)
        found = fs.find(srv.url + "/")
        rel = sorted(u.removeprefix(srv.url + "/") for u in found)
        assert rel == ["a/b/c/z.bin", "a/b/y.txt", "a/x.txt", "blob.bin"]


class TestLatencyAndCounters:
    def test_latency_is_added_to_every_request(self, tree, http_server):
        srv = http_server(tree, latency=0.1)
        with requests.Session() as session:
            t0 = time.perf_counter()
            for _ in range(3):
                assert session.get(srv.url_for("a/x.txt"), timeout=5).status_code == 200
            elapsed = time.perf_counter() - t0
        assert elapsed >= 0.3

    def test_counts_requests_per_path(self, tree, http_server):
        srv = http_server(tree)
        with requests.Session() as session:
            session.get(srv.url_for("a/x.txt"), timeout=5)
            session.get(srv.url_for("a/x.txt"), headers={"Range": "bytes=0-0"}, timeout=5)
            session.head(srv.url_for("blob.bin"), timeout=5)
        assert srv.request_count == 3
        assert srv.path_counts == {"/a/x.txt": 2, "/blob.bin": 1}
        assert [(r.method, r.range) for r in srv.requests] == [
            ("GET", None),
            ("GET", "bytes=0-0"),
            ("HEAD", None),
        ]
        srv.reset_counters()
        assert srv.request_count == 0
        assert srv.fault_counts == {"503": 0, "reset": 0}


class TestFaultInjection:
    def test_every_nth_request_is_503(self, tree, blob, http_server):
        srv = http_server(tree, fail_every=3)
        statuses = []
        with requests.Session() as session:
            for _ in range(9):
                r = session.get(srv.url_for("blob.bin"), timeout=5)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    assert r.content == blob
        assert statuses == [200, 200, 503] * 3
        assert srv.fault_counts == {"503": 3, "reset": 0}
        assert srv.request_count == 9

    @pytest.mark.parametrize("mode", ["close", "truncate"])
    def test_every_nth_request_is_reset(self, tree, blob, http_server, mode):
        srv = http_server(tree, reset_every=2, reset_mode=mode)
        outcomes = []
        for _ in range(6):
            try:
                r = requests.get(srv.url_for("blob.bin"), timeout=5)
            except requests.RequestException:
                outcomes.append("reset")
            else:
                assert r.content == blob
                outcomes.append(r.status_code)
        assert outcomes == [200, "reset"] * 3
        assert srv.fault_counts == {"503": 0, "reset": 3}
        assert [r.fault for r in srv.requests] == [None, "reset"] * 3

    def test_fsspec_sees_the_faults(self, tree, blob, http_server):
        srv = http_server(tree, fail_every=2)
        fs = fsspec.filesystem("http", skip_instance_cache=True)
        url = srv.url_for("blob.bin")
        assert fs.cat_file(url, start=0, end=10) == blob[:10]
        with pytest.raises(Exception, match="503"):
            fs.cat_file(url, start=0, end=10)
        assert srv.fault_counts["503"] == 1


class TestS3:
    def test_write_and_read_back_with_s3fs(self, s3_server: MotoS3Server, s3_bucket: str):
        fs = s3fs.S3FileSystem(**s3_server.storage_options)
        fs.pipe_file(f"{s3_bucket}/dir/obj.bin", b"hello moto")
        assert fs.cat_file(f"{s3_bucket}/dir/obj.bin") == b"hello moto"
        assert fs.cat_file(f"{s3_bucket}/dir/obj.bin", start=6) == b"moto"
        assert fs.ls(f"{s3_bucket}/dir", detail=False) == [f"{s3_bucket}/dir/obj.bin"]
        with fsspec.open(f"s3://{s3_bucket}/dir/obj.bin", **s3_server.storage_options) as f:
            assert f.read() == b"hello moto"

    @pytest.mark.parametrize("round_", [0, 1])
    def test_each_test_gets_a_fresh_empty_bucket(
        self, s3_server: MotoS3Server, s3_bucket: str, round_: int
    ):
        fs = s3fs.S3FileSystem(**s3_server.storage_options)
        assert fs.ls(s3_bucket) == []
        for earlier in _seen_buckets:
            assert earlier != s3_bucket
            assert not fs.exists(earlier)  # removed at the earlier test's teardown
        fs.pipe_file(f"{s3_bucket}/probe.txt", f"round {round_}".encode())
        assert fs.cat_file(f"{s3_bucket}/probe.txt") == f"round {round_}".encode()
        _seen_buckets.append(s3_bucket)

    def test_upload_dir_copies_a_tree(self, tree, s3_server: MotoS3Server, s3_bucket: str):
        opts = s3_server.storage_options
        fs = s3fs.S3FileSystem(**opts)
        assert fs.ls(s3_bucket) == []  # listing now cached in this instance
        keys = upload_dir(tree, f"s3://{s3_bucket}/pre/fix", opts)
        rel = sorted(k.removeprefix(f"{s3_bucket}/pre/fix/") for k in keys)
        assert rel == ["a/b/c/z.bin", "a/b/y.txt", "a/x.txt", "blob.bin"]
        assert sorted(fs.find(f"{s3_bucket}/pre/fix")) == sorted(keys)  # cache was invalidated
        assert fs.cat_file(f"{s3_bucket}/pre/fix/blob.bin") == (tree / "blob.bin").read_bytes()


_seen_buckets: list[str] = []


@pytest.fixture
def sharded_zarr(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A (100, 50) float32 array, chunks (10, 50) in shards (50, 50), blosc-lz4, at tmp/arr."""
    data = np.random.default_rng(1).standard_normal((100, 50)).astype("float32")
    root = tmp_path / "zroot"
    arr = zarr.create_array(
        store=zarr.storage.LocalStore(root / "arr"),
        shape=data.shape,
        chunks=(10, 50),
        shards=(50, 50),
        dtype="float32",
        compressors=zarr.codecs.BloscCodec(cname="lz4"),
    )
    arr[:] = data
    return root, data


class TestZarrOverServers:
    def test_sharded_array_over_http(self, sharded_zarr, http_server):
        root, data = sharded_zarr
        srv = http_server(root)
        store = zarr.storage.FsspecStore.from_url(srv.url_for("arr"), read_only=True)
        arr = zarr.open_array(store)
        assert arr.shards == (50, 50)
        np.testing.assert_array_equal(arr[:], data)
        np.testing.assert_array_equal(arr[13:27], data[13:27])  # inner chunks via Range
        ranged = [r for r in srv.requests if r.path.startswith("/arr/c/") and r.range]
        assert any(r.range.startswith("bytes=-") for r in ranged)  # shard index (suffix)
        assert srv.fault_counts == {"503": 0, "reset": 0}

    def test_sharded_array_over_s3(self, sharded_zarr, s3_server: MotoS3Server, s3_bucket):
        root, data = sharded_zarr
        url = f"s3://{s3_bucket}/stores/arr"
        upload_dir(root / "arr", url, s3_server.storage_options)
        store = zarr.storage.FsspecStore.from_url(
            url, read_only=True, storage_options=s3_server.storage_options
        )
        arr = zarr.open_array(store)
        np.testing.assert_array_equal(arr[:], data)
        np.testing.assert_array_equal(arr[42:58, 3], data[42:58, 3])


def test_server_stops_cleanly_and_refuses_after(tree):
    with RangeHTTPServer(tree) as srv:
        url = srv.url_for("a/x.txt")
        with requests.Session() as session:  # keep-alive connection left open at stop
            assert session.get(url, timeout=5).text == "x"
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    with pytest.raises(RuntimeError, match="not running"):
        _ = srv.url
