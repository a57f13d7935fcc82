"""Stores on servers and buckets that do not list, and remote failures that name the URL.

Every store-reading command runs against a web server without directory listing (403, as nginx
with ``autoindex off``) and an S3 bucket whose reader may get objects but not list them (moto
with IAM enforced). A chunk the converter wrote but the server does not return (404 or 403), a
body cut short, an unknown protocol and missing S3 credentials each give one error naming the
URL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import torch
import xarray as xr
import zarr
from servers import close_cached_filesystems, upload_dir
from trees import write_tree

import sensorium_data as sd
from sensorium_data.cli import main
from sensorium_data.errors import MissingChunkError, RemoteReadError, StoreNotFoundError
from sensorium_data.store.access import quiet
from sensorium_data.store.schema import ATTRS_KEY, EVERY_CHUNK_WRITTEN

STATIC, DYNAMIC = "11111-1-1", "22222-2-2"
SHARD = f"{STATIC}/responses/c/0/0"  # the first shard of the 2022 mouse's responses


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("remote_reads")
    trees = [write_tree(tmp / "trees", "static"), write_tree(tmp / "trees", "dynamic", seed=3)]
    sd.convert(trees, tmp / "s.zarr", progress=False)
    return tmp / "s.zarr", trees


def copy_store(store: Path, dest: Path, name: str = "s.zarr") -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(store, dest / name))


def first_batch(url: Any, mouse: str = STATIC, **kw: Any) -> dict[str, torch.Tensor]:
    loaders = sd.make_loaders(  # no prefetch: no read left running after a failed batch
        url,
        mice=[mouse],
        tiers=["validation"],
        batch_size=4,
        resident_bytes=0,
        prefetch=0,
        in_memory=False,
        **kw,
    )
    return next(iter(loaders["validation"][mouse]))


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def check_every_command(url: str, store: Path, trees: list[Path], tmp: Path, capsys, opts) -> None:
    """info, verify, export, score and the Python API on ``url`` give what they give on ``store``."""
    storage = ["--storage-options", json.dumps(opts)] if opts else []
    code, out, err = run_cli(["info", url, *storage], capsys)
    assert (code, err) == (0, "")
    assert "unknown (the server does not list) in the store" in out
    assert (
        f"mouse {STATIC} (static, complete)" in out and "(train 13, validation 12, test 12)" in out
    )
    code, out, err = run_cli(["verify", url, str(trees[0]), "--no-progress", *storage], capsys)
    assert (code, err) == (0, "") and "equals its 1 source tree(s)" in out
    code, out, err = run_cli(
        ["export", url, STATIC, str(tmp / "exp"), "--no-progress", *storage], capsys
    )
    assert code == 0, err
    exported = tmp / "exp" / trees[0].name
    assert np.array_equal(
        np.load(exported / "data" / "responses" / "4.npy"),
        np.load(trees[0] / "data" / "responses" / "4.npy"),
    )
    assert sd.list_mice(url, opts).keys() == {STATIC, DYNAMIC}
    xr.testing.assert_identical(
        sd.open_mouse(url, STATIC, opts).load(), sd.open_mouse(store, STATIC).load()
    )
    assert set(sd.open_store(url, opts).children) == {STATIC, DYNAMIC}
    xr.testing.assert_identical(
        sd.open_statistics(url, DYNAMIC, opts)["videos"]["all"],
        sd.open_statistics(store, DYNAMIC)["videos"]["all"],
    )
    for mouse, kw in ((STATIC, {}), (DYNAMIC, {"frames": 8})):
        got, want = (
            first_batch(url, mouse, storage_options=opts, **kw),
            first_batch(store, mouse, **kw),
        )
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want if isinstance(want[k], torch.Tensor))
    ds = sd.open_mouse(store, STATIC)
    test = ds.responses.values[ds.tiers.values == "test"]
    sd.write_submission_2022({STATIC: {"test": test}}, url, tmp / "sub", storage_options=opts)
    code, out, err = run_cli(["score", str(tmp / "sub"), "--truth", url, *storage], capsys)
    assert (code, err) == (0, ""), err
    _, local, _ = run_cli(["score", str(tmp / "sub"), "--truth", str(store)], capsys)
    assert out.splitlines()[1:] == local.splitlines()[1:]  # the scores; line 0 names the truth
    assert "single-trial correlation" in out


@pytest.mark.slow
class TestServersThatDoNotList:
    def test_every_command_reads_a_web_server_without_listing(
        self, converted, http_server, tmp_path: Path, capsys
    ) -> None:
        store, trees = converted
        srv = http_server(store.parent, listing=False)
        assert requests.get(srv.url_for("s.zarr") + "/", timeout=5).status_code == 403
        check_every_command(srv.url_for("s.zarr"), store, trees, tmp_path, capsys, None)
        close_cached_filesystems()

    def test_every_command_reads_a_bucket_without_list_permission(
        self, converted, get_only_reader, tmp_path: Path, capsys
    ) -> None:
        store, trees = converted
        url, opts = get_only_reader(store)
        check_every_command(url, store, trees, tmp_path, capsys, opts)
        close_cached_filesystems()


@pytest.fixture
def get_only_reader(s3_server, s3_bucket) -> Iterator[Any]:
    """``upload(store) -> (url, storage options)``: the store in a bucket, and the options of an
    IAM user who may get its objects but not list the bucket, with moto enforcing IAM until the
    test ends (S3 then answers a missing key with 403 AccessDenied, as AWS does)."""
    import boto3

    enforced: list[bool] = []

    def upload(store: Path) -> tuple[str, dict[str, Any]]:
        url = f"s3://{s3_bucket}/s.zarr"
        upload_dir(store, url, s3_server.storage_options)
        iam = boto3.client("iam", endpoint_url=s3_server.endpoint_url, region_name="us-east-1")
        user = f"reader-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{s3_bucket}/*",
                }
            ],
        }
        iam.put_user_policy(UserName=user, PolicyName="get", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        reset_auth(s3_server, "0")
        enforced.append(True)
        opts = {
            "key": key["AccessKeyId"],
            "secret": key["SecretAccessKey"],
            "endpoint_url": s3_server.endpoint_url,
        }
        import s3fs

        denied = s3fs.S3FileSystem(**opts, skip_instance_cache=True)
        with pytest.raises(PermissionError):
            denied.ls(s3_bucket)  # the reader really cannot list
        return url, opts

    try:
        yield upload
    finally:
        if enforced:
            reset_auth(s3_server, "inf")


def reset_auth(s3_server, count: str) -> None:
    """Enforce IAM on moto after ``count`` more requests (``"inf"``: never)."""
    r = requests.post(f"{s3_server.endpoint_url}/moto-api/reset-auth", data=count, timeout=5)
    assert r.status_code == 200, r.text


class TestMissingChunks:
    @pytest.mark.slow
    @pytest.mark.parametrize("where", ["http", "local"])
    def test_a_missing_shard_names_the_url_and_key(
        self, converted, http_server, tmp_path: Path, capsys, where: str
    ) -> None:
        store, trees = converted
        copy = copy_store(store, tmp_path)
        (copy / SHARD).unlink()
        url = http_server(tmp_path).url_for("s.zarr") if where == "http" else str(copy)
        expected = rf"^{url}/{SHARD}: chunk missing .*damaged or incompletely copied$"
        with pytest.raises(MissingChunkError, match=expected):
            sd.open_mouse(url, STATIC).responses.load()
        with pytest.raises(MissingChunkError, match=expected):
            first_batch(url)
        code, _, err = run_cli(["verify", url, str(trees[0]), "--no-progress"], capsys)
        assert code == 1 and err.count("\n") == 1 and f"{url}/{SHARD}: chunk missing" in err
        close_cached_filesystems()

    def test_the_converter_writes_chunks_equal_to_the_fill_value(self, tmp_path: Path) -> None:
        tree = write_tree(tmp_path / "trees", "static")
        np.save(tree / "meta" / "trials" / "scan_idx.npy", np.zeros(37, dtype=np.int64))
        sd.convert([tree], tmp_path / "z.zarr", progress=False)
        assert (tmp_path / "z.zarr" / STATIC / "trial_scan_idx" / "c" / "0").is_file()
        group = zarr.open_group(tmp_path / "z.zarr", mode="r")[STATIC]
        assert dict(group.attrs)[ATTRS_KEY][EVERY_CHUNK_WRITTEN] is True

    def test_stores_of_the_previous_version_still_read_missing_chunks_as_fill(
        self, converted, tmp_path: Path
    ) -> None:
        store, _ = converted
        copy = copy_store(store, tmp_path)
        group = zarr.open_group(copy / STATIC, mode="r+", use_consolidated=False)
        meta = dict(group.attrs)[ATTRS_KEY]
        del meta[EVERY_CHUNK_WRITTEN]  # as the converter wrote it before
        group.attrs[ATTRS_KEY] = meta
        with quiet():
            zarr.consolidate_metadata(copy)
        (copy / SHARD).unlink()
        ds = sd.open_mouse(copy, STATIC)  # one shard holds every trial: all of them fill value
        assert ds.responses.shape == (37, 5) and np.isnan(ds.responses.values).all()
        assert not np.isnan(ds.behavior.values).any()
        assert torch.isnan(first_batch(copy, normalize=False)["responses"]).all()


class TestFailedReadsNameTheUrl:
    @pytest.mark.slow
    def test_403_on_a_chunk(self, converted, http_server) -> None:
        store, _ = converted
        srv = http_server(store.parent, forbidden={f"/s.zarr/{SHARD}"})
        url = srv.url_for("s.zarr")
        message = rf"^{url}/{SHARD}: HTTP 403 Forbidden$"
        with pytest.raises(RemoteReadError, match=message):
            sd.open_mouse(url, STATIC).responses.load()
        with pytest.raises(RemoteReadError, match=message):
            first_batch(url)
        close_cached_filesystems()

    @pytest.mark.slow
    def test_a_missing_chunk_in_a_bucket_without_list_permission(
        self, converted, get_only_reader, tmp_path: Path
    ) -> None:
        store, _ = converted
        copy = copy_store(store, tmp_path)
        (copy / SHARD).unlink()
        url, opts = get_only_reader(copy)
        with pytest.raises(RemoteReadError, match=rf"^{url}/{SHARD}: PermissionError: "):
            sd.open_mouse(url, STATIC, opts).responses.load()
        close_cached_filesystems()

    @pytest.mark.slow
    def test_bodies_cut_short(self, converted, http_server, tmp_path: Path) -> None:
        store, _ = converted
        copy = copy_store(store, tmp_path)
        (copy / SHARD).write_bytes((copy / SHARD).read_bytes()[:-100])
        url = http_server(tmp_path).url_for("s.zarr")
        shard = rf"^{url}/{SHARD}: shard index failed its checksum .* cut short or damaged$"
        with pytest.raises(RemoteReadError, match=shard):
            sd.open_mouse(url, STATIC).responses.load()
        with pytest.raises(RemoteReadError, match=shard):
            first_batch(url)
        tiers = copy / STATIC / "tiers" / "c" / "0"
        tiers.write_bytes(tiers.read_bytes()[:-5])
        with pytest.raises(RemoteReadError, match=rf"^{url}/{STATIC}/tiers/c/0: chunk does not"):
            sd.open_mouse(url, STATIC).tiers.load()
        (copy / "zarr.json").write_bytes((copy / "zarr.json").read_bytes()[:-50])
        with pytest.raises(StoreNotFoundError, match=rf"^{url}: zarr.json does not parse"):
            sd.open_mouse(url, STATIC)
        close_cached_filesystems()

    def test_a_server_that_ignores_ranges(self, converted) -> None:
        """``python -m http.server`` answers a byte range with the whole file."""
        store, _ = converted
        cmd = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]
        server = subprocess.Popen(cmd, cwd=store.parent, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            serving = re.search(r"port (\d+)", server.stdout.readline())
            assert serving is not None
            url = f"http://127.0.0.1:{serving.group(1)}/s.zarr"
            ignored = (
                r": expected the last \d+ bytes \(the shard index\), got \d+; the server ignored"
            )
            with pytest.raises(RemoteReadError, match=rf"^{url}/{STATIC}/responses/c/0/0{ignored}"):
                sd.open_mouse(url, STATIC).responses[3:5].load()
            with pytest.raises(
                RemoteReadError, match=rf"^{url}/{STATIC}/\w+/c/0/0(/0/0)?{ignored}"
            ):
                first_batch(url)
        finally:
            server.terminate()
            server.wait()
            server.stdout.close()  # type: ignore[union-attr]
            close_cached_filesystems()


class TestOneLineErrors:
    def test_unknown_protocol_names_the_url(self, capsys) -> None:
        for args in (["info", "s4://b/s.zarr"], ["convert", "s4://b/t.zip", "-o", "x.zarr"]):
            code, _, err = run_cli(args, capsys)
            assert code == 1 and err.count("\n") == 1
            assert f"error: {args[1]}: unknown protocol 's4'" in err
        with pytest.raises(ValueError, match="^s4://b/s.zarr: unknown protocol 's4'"):
            sd.open_mouse("s4://b/s.zarr")

    def test_s3_without_credentials_names_the_url(
        self, converted, s3_server, s3_bucket, monkeypatch, tmp_path: Path, capsys
    ) -> None:
        store, trees = converted
        upload_dir(store, f"s3://{s3_bucket}/s.zarr", s3_server.storage_options)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        opts = json.dumps({"endpoint_url": s3_server.endpoint_url})
        url = f"s3://{s3_bucket}/s.zarr"
        code, _, err = run_cli(["info", url, "--storage-options", opts], capsys)
        assert code == 1 and err.count("\n") == 1
        assert f"error: {url}/zarr.json: no AWS credentials found" in err
        src = f"s3://{s3_bucket}/{trees[0].name}"
        convert = ["convert", src, "-o", str(tmp_path / "o.zarr"), "--source-options", opts]
        code, _, err = run_cli(convert, capsys)
        assert code == 1 and err.count("\n") == 1
        assert f"error: {src}: no AWS credentials found" in err
        close_cached_filesystems()

    def test_open_mouse_on_a_zarr_array_names_the_argument(self, tmp_path: Path) -> None:
        zarr.create_array(tmp_path / "arr", shape=(3,), dtype="f4")
        with pytest.raises(StoreNotFoundError, match=r"arr: a Zarr array, not a sensorium_data"):
            sd.open_mouse(tmp_path / "arr")
        with pytest.raises(StoreNotFoundError, match=r"pass the store's root folder as url$"):
            sd.make_loaders(tmp_path / "arr")
