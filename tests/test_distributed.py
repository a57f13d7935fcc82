"""Data-parallel training with real processes: ``torchrun`` with the gloo backend on the CPU,
with the device-resident loaders (here on the CPU device) and with the streaming ones.

What a single process would do is the reference: the validation score of the gathered
predictions equals the single-process score of the same weights; each rank reads a disjoint
share of every epoch; rank 0 alone writes; a run whose rank was killed resumes, here on another
number of processes. (NCCL, the backend on GPUs, runs the same code; it cannot run here.)
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.checkpoints import load_checkpoint
from sensorium_models.distributed import Process, local_batch
from sensorium_models.errors import TrainingError
from sensorium_models.train_config import TrainConfig
from sensorium_models.training import mouse_infos, train_loaders_of

pytestmark = pytest.mark.slow

TINY = json.dumps({"hidden_channels": 4})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return sd.example_store(
        tmp_path_factory.mktemp("ddp"),
        kind="static",
        n_mice=2,
        n_trials=300,
        n_neurons=10,
        competition=False,
    )


def torchrun(
    nproc: int, *args: str, wait: bool = True
) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "sensorium_models.cli",
        "train",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if wait:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def train_args(store: pathlib.Path, out: pathlib.Path, epochs: int, *extra: str) -> list[str]:
    return [
        "--store",
        str(store),
        "--model",
        "sensorium-sota",
        "--overrides",
        TINY,
        "--epochs",
        str(epochs),
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--seed",
        "3",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def history(out: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_two_ranks_train_and_score_as_one(store: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    done = torchrun(2, *train_args(store, out, 2, "--data", "device"))  # device-resident
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("sensorium-sota: 2 epochs") == 1  # rank 0 reports
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.jsonl"]
    log = history(out)
    assert [h["processes"] for h in log] == [2, 2]
    # the score of the gathered predictions is the single-process score of the same weights
    state = load_checkpoint(out)
    model = sm.load_model(out)
    report = sm.evaluate(model, store, ["validation"], per_neuron=True)
    per_neuron = report["tiers"]["validation"]["per_neuron"]
    pooled = np.concatenate(
        [np.nan_to_num(np.asarray(per_neuron[m]["single_trial_correlation"])) for m in model.mice]
    )
    assert state["best_score"] == pytest.approx(float(pooled.mean()), abs=1e-6)
    assert log[state["best_epoch"] - 1]["score"] == state["best_score"]


def test_each_rank_reads_its_own_share(store: pathlib.Path) -> None:
    model = sm.build_model("sensorium-sota", mouse_infos(store), overrides={"hidden_channels": 4})
    cfg = TrainConfig(batch_size=32, device="cpu").resolved("static")
    seen: dict[str, list[np.ndarray]] = {}
    for rank in range(2):
        process = Process(rank=rank, world_size=2)
        loaders = train_loaders_of(
            model, store, cfg, process, mice=list(model.mice), seed=3, rank=rank, world_size=2
        )
        for mouse, loader in loaders.items():
            trials = [batch["trial"].numpy() for batch in loader]
            assert all(len(t) == 16 for t in trials)  # half the global batch each
            seen.setdefault(mouse, []).append(np.concatenate(trials))
    for mouse, (first, second) in seen.items():
        assert len(first) == len(second)
        both = np.concatenate([first, second])
        assert len(np.unique(both)) == len(both)  # no trial twice in an epoch
        n_train = int((sd.open_mouse(store, mouse).tiers.values == "train").sum())
        assert n_train - 32 < len(both) <= n_train  # all but less than one global batch
    with pytest.raises(TrainingError, match="batch_size: 32 trials do not split over 3"):
        local_batch(32, Process(rank=0, world_size=3))


def test_resume_after_a_killed_rank_on_another_number_of_ranks(
    store: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "run"
    mouse = next(iter(sd.list_mice(store)))
    job = torchrun(
        2, *train_args(store, out, 40, "--mice", mouse, "--data", "streaming"), wait=False
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "log.jsonl").is_file() or len(history(out)) < 1:
            assert job.poll() is None, job.stdout.read() if job.stdout else ""
            assert time.monotonic() < deadline, "no epoch finished in 120 s"
            time.sleep(0.2)
        workers = psutil.Process(job.pid).children(recursive=True)
        rank1 = [w for w in workers if w.environ().get("RANK") == "1"]
        assert rank1, "no rank-1 worker found"
        rank1[0].send_signal(signal.SIGKILL)
        assert job.wait(timeout=120) != 0  # torchrun stops the job when a rank dies
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        if job.stdout is not None:
            job.stdout.close()
    before = load_checkpoint(out)
    assert 1 <= before["epoch"] < 40 and not before["finished"]
    # one process now, and two more epochs than were done: it goes on from the checkpoint
    more = before["epoch"] + 2
    args = train_args(store, out, more, "--mice", mouse, "--data", "streaming")
    done = subprocess.run(
        [sys.executable, "-m", "sensorium_models.cli", "train", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resumed after {before['epoch']}" in done.stdout
    log = history(out)
    assert [h["epoch"] for h in log] == list(range(1, more + 1))
    assert [h["processes"] for h in log] == [2] * before["epoch"] + [1, 1]


def test_the_ranks_average_gradient_is_the_single_process_one() -> None:
    """The loss of each of 2 ranks on half the global batch, its gradient averaged over the ranks
    (what DistributedDataParallel does), gives the single-process gradient of the whole batch
    (model in eval mode: no batch statistics, no sampled readout positions)."""
    import torch

    from sensorium_models.configs import MouseInfo
    from sensorium_models.training import step_loss

    torch.manual_seed(0)
    net = sm.build_model(
        "sensorium-sota",
        {"m": MouseInfo(n_neurons=6, coordinates=None, kind="static")},
        overrides={"hidden_channels": 4},
    ).eval()
    images, responses = torch.randn(8, 1, 36, 64), torch.rand(8, 6) * 3

    def grads(part: slice, world: int, factor: bool = True) -> list[torch.Tensor]:
        net.zero_grad()
        rates = net(images[part], mouse="m")
        loss, data, penalty = step_loss(net, "m", rates, responses[part], 500, world_size=world)
        (loss if factor else data + penalty).backward()
        return [p.grad.clone() for p in net.parameters() if p.grad is not None]

    def averaged(factor: bool) -> list[torch.Tensor]:
        a, b = grads(slice(0, 4), 2, factor), grads(slice(4, 8), 2, factor)
        return [(x + y) / 2 for x, y in zip(a, b, strict=True)]

    whole = grads(slice(0, 8), 1)
    for full, mean in zip(whole, averaged(True), strict=True):
        torch.testing.assert_close(mean, full, rtol=1e-4, atol=1e-5)
    # without the factor world_size, the data term's gradient would be halved
    assert not all(
        torch.allclose(m, f, rtol=1e-3) for m, f in zip(averaged(False), whole, strict=True)
    )
