"""Batch samplers that read chunk-aligned blocks: shuffled, seeded, split across workers and ranks.

A store is chunked by blocks of consecutive trials (``trials_per_chunk``). Reading a random batch
of trials touches one chunk per trial; :class:`BlockShuffleSampler` instead shuffles the order of
the blocks, then shuffles trials within a buffer of several blocks, so a batch touches few
chunks while the order stays well mixed. Every epoch is a fresh, deterministic permutation
(``seed``, ``epoch``); the sampler yields whole batches, so DataLoader workers never overlap, and
``rank``/``world_size`` split the batches between DDP processes with equal counts per rank.
``state_dict``/``load_state_dict`` resume in the middle of an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

__all__ = ["BlockShuffleSampler"]


class BlockShuffleSampler(Sampler[list[int]]):
    """Yields batches of dataset positions (``0..len(block_ids)-1``).

    Parameters
    ----------
    block_ids
        For each dataset position, the id of the stored block (chunk) it lies in; positions
        are assumed to be in ascending file order.
    batch_size
        Positions per batch.
    shuffle
        Shuffle (training) or ascending order (evaluation).
    buffer_blocks
        Blocks mixed together before batches are cut (shuffle only).
    seed
        Base seed; epoch ``e`` uses ``(seed, e)``.
    drop_last
        Drop the last incomplete batch.
    rank, world_size
        This process's share: batch ``k`` of the epoch goes to rank ``k % world_size``; the
        number of batches is made a multiple of ``world_size`` (by dropping the surplus when
        ``drop_last``, else by repeating batches from the start) so every rank gets as many.
    """

    def __init__(
        self,
        block_ids: Sequence[int] | np.ndarray,
        *,
        batch_size: int,
        shuffle: bool,
        buffer_blocks: int = 8,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"rank must be in 0..world_size-1, got rank={rank}, world_size={world_size}"
            )
        if buffer_blocks < 1:
            raise ValueError(f"buffer_blocks must be a positive integer, got {buffer_blocks!r}")
        self.block_ids = np.asarray(block_ids)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.buffer_blocks = buffer_blocks
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._skip = 0  # batches of the current epoch already delivered (for resuming)

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` for the next pass (each full pass also moves on)."""
        self.epoch = epoch
        self._skip = 0

    def order(self) -> np.ndarray:
        """Every position of this epoch, in the order batches are cut from."""
        n = len(self.block_ids)
        if not self.shuffle:
            return np.arange(n)
        rng = np.random.default_rng([self.seed, self.epoch])
        blocks, starts = np.unique(self.block_ids, return_index=True)
        bounds = np.append(starts, n)
        members = [np.arange(bounds[i], bounds[i + 1]) for i in range(len(blocks))]
        out = []
        perm = rng.permutation(len(members))
        for g in range(0, len(perm), self.buffer_blocks):
            buffer = np.concatenate([members[b] for b in perm[g : g + self.buffer_blocks]])
            out.append(rng.permutation(buffer))
        return np.concatenate(out) if out else np.arange(0)

    def _batches(self) -> list[np.ndarray]:
        order = self.order()
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        surplus = len(batches) % self.world_size
        if surplus:
            if self.drop_last:
                batches = batches[: len(batches) - surplus]
            else:
                batches += batches[: self.world_size - surplus]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        skip, self._skip = self._skip, 0
        for k in range(skip, len(batches)):
            self._delivered = k + 1
            yield batches[k].tolist()
        self.epoch += 1  # the next pass is the next epoch, unless set_epoch says otherwise
        self._delivered = 0

    def __len__(self) -> int:
        n = len(self.block_ids)
        full, rest = divmod(n, self.batch_size)
        count = full + (1 if rest and not self.drop_last else 0)
        if self.drop_last:
            count -= count % self.world_size
        else:
            count += (-count) % self.world_size
        return count // self.world_size

    def state_dict(self, batches_done: int | None = None) -> dict[str, Any]:
        """Where the epoch is: resume with :meth:`load_state_dict` on a fresh sampler.

        A DataLoader draws batches ahead of the training loop (``prefetch_factor`` per
        worker), so pass the number of batches the loop has consumed; by default it is the
        number this sampler has handed out.
        """
        done = getattr(self, "_delivered", 0) if batches_done is None else batches_done
        return {"epoch": self.epoch, "seed": self.seed, "batches_done": int(done)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self._skip = int(state["batches_done"])
