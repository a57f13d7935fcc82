"""Conversions of different mice into one store at the same time, in real processes.

Each child opens its tree, then, round after round, waits for the same start signal as the
other and converts its mouse into that round's new store: both find the store missing, both
create its root, both consolidate its metadata at about the same time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from trees import write_tree

import sensorium_data as sd
from sensorium_data.store.verify import verify

_CHILD = """
import sys, time
from pathlib import Path
import sensorium_data as sd

src, work, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
tree = sd.open_tree(src)
for i in range(rounds):
    (work / f"ready{i}.{tree.data_key}").touch()
    while not (work / f"go{i}").exists():
        time.sleep(0.0005)
    try:
        sd.convert([tree], work / f"s{i}.zarr", progress=False, scheduler="synchronous")
    except Exception as exc:
        print(f"round {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
"""


@pytest.mark.slow
def test_two_mice_converted_into_one_new_store_at_the_same_time(tmp_path: Path) -> None:
    rounds = 5
    a = write_tree(tmp_path / "src", "static", n_trials=12, n_neurons=3)
    b = write_tree(
        tmp_path / "src",
        "static",
        n_trials=12,
        n_neurons=3,
        seed=1,
        name=("static33333-3-3-GrayImageNet-0123456789abcdef0123456789abcdef"),
    )
    work = tmp_path / "work"
    work.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(src), str(work), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in (a, b)
    ]
    for i in range(rounds):
        while len(list(work.glob(f"ready{i}.*"))) < 2:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.001)
        (work / f"go{i}").touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert errors == ["", ""]  # was, in 1 of 5: "A group exists in store ... at path ''"
    for i in range(rounds):
        store = work / f"s{i}.zarr"
        assert sorted(sd.list_mice(store)) == ["11111-1-1", "33333-3-3"]
        assert verify(store, [a, b]) == [], i
        assert list(store.rglob("*.partial")) == []
