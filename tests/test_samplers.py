"""Block shuffling: deterministic, mixed, chunk-local, split without overlap, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from sensorium_data.loading.samplers import BlockShuffleSampler


def make(n: int = 103, block: int = 8, **kw) -> BlockShuffleSampler:
    kw.setdefault("batch_size", 10)
    kw.setdefault("shuffle", True)
    return BlockShuffleSampler(np.arange(n) // block, **kw)


def flat(sampler: BlockShuffleSampler) -> list[int]:
    return [i for batch in sampler for i in batch]


def test_evaluation_order_is_ascending() -> None:
    s = make(shuffle=False)
    flat = [i for b in s for i in b]
    assert flat == list(range(103)) and len(s) == 11


def test_an_epoch_is_a_permutation_and_seeded() -> None:
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    ea, eb, ec = [flat(x) for x in (a, b, c)]
    assert sorted(ea) == list(range(103))
    assert ea == eb and ea != ec
    assert flat(a) != ea  # the next pass is the next epoch
    a.set_epoch(0)
    assert flat(a) == ea


def test_batches_touch_few_blocks() -> None:
    s = make(n=4096, block=16, batch_size=64, buffer_blocks=8)
    blocks = [len(np.unique(np.asarray(b) // 16)) for b in s]
    assert max(blocks) <= 8  # a random batch of 64 would touch ~60 of 256 blocks
    s_global = make(n=4096, block=16, batch_size=64, buffer_blocks=10**6)
    assert np.mean([len(np.unique(np.asarray(b) // 16)) for b in s_global]) > 40


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_get_disjoint_equal_shares(world_size: int, drop_last: bool) -> None:
    shares = [
        list(make(rank=r, world_size=world_size, drop_last=drop_last, seed=5))
        for r in range(world_size)
    ]
    counts = {len(s) for s in shares}
    assert len(counts) == 1 and counts.pop() == len(
        make(world_size=world_size, drop_last=drop_last)
    )
    seen = [i for s in shares for b in s for i in b]
    if drop_last:
        assert len(seen) == len(set(seen))
        assert all(len(b) == 10 for s in shares for b in s)
    else:
        assert set(seen) == set(range(103))  # every trial, surplus batches repeated


def test_resume_mid_epoch() -> None:
    s = make(seed=3)
    it = iter(s)
    first = [next(it) for _ in range(4)]
    state = s.state_dict()
    fresh = make(seed=0)
    fresh.load_state_dict(state)
    rest = list(fresh)
    again = make(seed=3)
    assert first + rest == list(again)
    assert state == {"epoch": 0, "seed": 3, "batches_done": 4}
    assert s.state_dict(batches_done=2)["batches_done"] == 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make(batch_size=0)
    with pytest.raises(ValueError, match="rank must be in 0..world_size-1"):
        make(rank=2, world_size=2)
