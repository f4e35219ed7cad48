"""The training loader's batches: length-grouped with little padding, streamed through the epochs.

`LengthBucketSampler` (`SFTArgs.group_by_length`) sorts by length inside megabatches of up to 50 batches, with a
random length jitter, so batches hold samples of similar length while neighbours in length still change batches
from epoch to epoch. transformers' `LengthGroupedSampler` sorts only inside megabatches of at most a quarter of the
dataset, which on a few hundred OCR pages leaves nearly the padding of random batches. Padding positions cost the
GPU as much as real ones (the measurements: docs/GPU.md).

`EpochStreamBatchSampler` runs those batches through the epochs without end, for one DataLoader iterator over all
epochs; under DDP it yields each rank's share as accelerate's own `BatchSamplerShard` cuts it. `ContinuousEpochs`
cuts that one iterator back into the epochs the Trainer asks for (lib/train/internals.py builds the loader).

Not for: padding-free packing (Gemma 3's image masks need real batches).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from accelerate.data_loader import BatchSamplerShard

__all__ = ["LengthBucketSampler", "EpochStreamBatchSampler", "ContinuousEpochs"]


class LengthBucketSampler(torch.utils.data.Sampler):
    """Indices for a DataLoader with `batch_size`: every index once per epoch, in batches of similar length.

    Each epoch: a random permutation is cut into megabatches of `megabatch_batches * batch_size` samples; each is
    sorted by `length * U(1 - jitter, 1 + jitter)` (descending) and cut into batches; the batches are shuffled, except
    that the one holding the longest sample comes first (an out-of-memory error shows at step 1, not hours later)
    and a short last batch stays last (the DataLoader cuts batches from consecutive indices; if the longest sample
    is in that short batch, it stays there)."""

    def __init__(self, batch_size: int, lengths: Sequence[int], *, seed: int = 0, jitter: float = 0.05,
                 megabatch_batches: int = 50):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        bad = [i for i, n in enumerate(lengths) if not isinstance(n, int) or n < 0]
        if bad:
            raise ValueError(f"lengths must be non-negative ints; row {bad[0]} has {lengths[bad[0]]!r}")
        self.batch_size = int(batch_size)
        self.lengths = [int(n) for n in lengths]
        self.seed = int(seed)
        self.epoch: int | None = None  # set_epoch (accelerate calls it at every epoch start); else counted here
        self._next_epoch = 0
        self.jitter = float(jitter)
        self.megabatch = max(1, int(megabatch_batches)) * self.batch_size

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        """Epoch `epoch`'s order is a function of (seed, epoch) alone, so a resumed run meets the batches the
        interrupted one would have."""
        self.epoch = int(epoch)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """Epoch `epoch`'s batches; without it, the epoch given to `set_epoch`, or (never set) the next one on every
        call."""
        n = len(self.lengths)
        if epoch is None and self.epoch is not None:
            epoch = self.epoch
        elif epoch is None:
            epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        if n == 0:
            return []
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g).tolist()
        noise = (1.0 + self.jitter * (2.0 * torch.rand(n, generator=g, dtype=torch.float64) - 1.0)).tolist()
        batches: list[list[int]] = []
        for s in range(0, n, self.megabatch):
            mega = sorted(perm[s:s + self.megabatch], key=lambda i: -self.lengths[i] * noise[i])
            batches += [mega[k:k + self.batch_size] for k in range(0, len(mega), self.batch_size)]
        last = batches.pop() if len(batches[-1]) < self.batch_size else None
        order = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in order]
        longest = max(range(n), key=lambda i: self.lengths[i])
        first = next((k for k, b in enumerate(batches) if longest in b), None)  # None: it is in the short last one
        if first is not None:
            batches.insert(0, batches.pop(first))
        if last is not None:
            batches.append(last)
        return batches

    def __iter__(self) -> Iterator[int]:
        for b in self.batches():
            yield from b


class _EpochBatches(list):
    """One epoch's batches as the batch sampler accelerate's `BatchSamplerShard` expects (batch_size, drop_last)."""

    def __init__(self, batches, batch_size: int, drop_last: bool):
        super().__init__(batches)
        self.batch_size = batch_size
        self.drop_last = drop_last


class EpochStreamBatchSampler:
    """A DataLoader `batch_sampler` that never ends: `bucket`'s batches of epoch `start_epoch`, then of the next
    epoch, and so on (a short batch dropped with `drop_last`, as the DataLoader would). `len()` is one epoch.

    One DataLoader iterator over it runs through every epoch, so the worker processes make the next epoch's first
    batches while the current epoch's last ones train, instead of idling until the Trainer asks for a new iterator
    (docs/GPU.md). `ContinuousEpochs` cuts the stream back into epochs. Deliberately no `set_epoch`/`sampler` attribute: accelerate's `DataLoaderShard`
    calls `set_epoch` on those at every new iterator, and here the stream itself says which epoch comes next.

    With `num_processes` > 1 it yields rank `process_index`'s share of every epoch, exactly the batches accelerate's
    `BatchSamplerShard` gives that rank from the epoch's batches (even_batches: the last ones filled up from the
    epoch's first samples), so each rank's epochs end where the stream's do; accelerate's own shard wrapper must then
    pass batches through (lib/train/internals.py sets it to one process)."""

    def __init__(self, bucket: LengthBucketSampler, *, drop_last: bool = False, start_epoch: int = 0,
                 num_processes: int = 1, process_index: int = 0, even_batches: bool = True):
        if not 0 <= process_index < num_processes:
            raise ValueError(f"process_index {process_index} is not in [0, num_processes={num_processes})")
        self.bucket = bucket
        self.batch_size = bucket.batch_size
        self.drop_last = bool(drop_last)
        self.start_epoch = int(start_epoch)
        self.num_processes = int(num_processes)
        self.process_index = int(process_index)
        self.even_batches = bool(even_batches)

    def _global_count(self) -> int:
        n, b = len(self.bucket.lengths), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _shard(self, batches: list) -> list:
        return list(BatchSamplerShard(_EpochBatches(batches, self.batch_size, self.drop_last), self.num_processes,
                                      self.process_index, even_batches=self.even_batches))

    def __len__(self) -> int:
        if self.num_processes == 1:
            return self._global_count()
        return len(BatchSamplerShard(_EpochBatches([None] * self._global_count(), self.batch_size, self.drop_last),
                                     self.num_processes, self.process_index, even_batches=self.even_batches))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of epoch `epoch`."""
        batches = [b for b in self.bucket.batches(epoch) if not (self.drop_last and len(b) < self.batch_size)]
        return batches if self.num_processes == 1 else self._shard(batches)

    def __iter__(self) -> Iterator[list[int]]:
        if len(self) == 0:
            return
        epoch = self.start_epoch
        while True:
            yield from self.epoch_batches(epoch)
            epoch += 1


class ContinuousEpochs:
    """The prepared training DataLoader over an `EpochStreamBatchSampler`, cut back into epochs for the Trainer:
    `len()` is one epoch, `set_epoch(e)` names the epoch the next `iter()` gives, and each `iter()` yields that
    epoch's batches from one long-lived iterator - so the data loader's workers never stop at an epoch boundary
    (the plain loader resets its workers at every `iter()`, and the GPU waits for the new epoch's first batch). If
    the Trainer asks for an epoch other than the one the stream stands at the start of (first use, an epoch left
    early), the stream restarts there; the batches are those of `LengthBucketSampler.batches(epoch)` either way.
    Everything else (dataset, batch_size, ...) is the prepared loader's."""

    def __init__(self, loader, stream):
        self.loader = loader
        self.stream = stream
        self._epoch: int | None = None  # from set_epoch
        self._it = None
        self._pos: tuple[int, int] | None = None  # (epoch, batches of it already given) where the stream stands

    def __len__(self) -> int:
        return len(self.stream)

    def __getattr__(self, name):
        if name in ("loader", "stream"):  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __iter__(self):
        epoch = self._epoch if self._epoch is not None else (self._pos[0] if self._pos else 0)
        if self._it is None or self._pos != (epoch, 0):
            self.close()
            self.stream.start_epoch = epoch
            self._it = iter(self.loader)
            self._pos = (epoch, 0)
        self._epoch = None
        return self._take(epoch, len(self))

    def _take(self, epoch: int, n: int):
        for k in range(n):
            batch = next(self._it)
            self._pos = (epoch, k + 1) if k + 1 < n else (epoch + 1, 0)
            yield batch

    def close(self) -> None:
        """End the long-lived iterator (the loader leaves accelerate's list of active loaders, as at a normal end)."""
        if self._it is not None:
            stop = getattr(self._it, "close", None)  # accelerate's loaders iterate in a generator
            if callable(stop):
                stop()
            self._it = None
            end = getattr(self.loader, "end", None)
            if callable(end):
                end()
