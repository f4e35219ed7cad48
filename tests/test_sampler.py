"""lib/train/sampler.py: LengthBucketSampler - every index once per epoch, batch-aligned, less padding than
transformers' LengthGroupedSampler, batches that still change between epochs, bad lengths named."""

from __future__ import annotations

import random

import pytest
import torch

from lib.train.sampler import LengthBucketSampler


def _lengths(n=64, seed=0):
    rng = random.Random(seed)
    return [rng.randint(500, 1500) + 290 for _ in range(n)]


def _padding(order, lengths, bs, multiple=64):
    real = padded = 0
    for i in range(0, len(order), bs):
        b = [lengths[j] for j in order[i:i + bs]]
        real += sum(b)
        padded += -(-max(b) // multiple) * multiple * len(b)
    return 1 - real / padded


@pytest.mark.parametrize("n,bs", [(64, 5), (64, 4), (7, 3), (3, 5), (300, 6)])
def test_every_index_once_batch_aligned_longest_first(n, bs):
    lengths = _lengths(n)
    s = LengthBucketSampler(bs, lengths, seed=1)
    for _ in range(3):  # three epochs
        batches = s.batches()
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(len(b) == bs for b in batches[:-1]) and 0 < len(batches[-1]) <= bs
        longest = max(range(n), key=lengths.__getitem__)
        assert longest in batches[0] or (longest in batches[-1] and len(batches[-1]) < bs)
    assert len(list(iter(s))) == len(s) == n


def test_less_padding_than_transformers_grouping_and_batches_still_change():
    from transformers.trainer_pt_utils import LengthGroupedSampler

    ours = hf = 0.0
    compositions = []
    for seed in range(20):
        lengths = _lengths(64, seed)
        s = LengthBucketSampler(5, lengths, seed=seed)
        order = list(s)
        ours += _padding(order, lengths, 5) / 20
        hf += _padding(list(LengthGroupedSampler(5, lengths=lengths, generator=torch.Generator().manual_seed(seed))),
                       lengths, 5) / 20
        if seed == 0:
            compositions = [{frozenset(b) for b in s.batches()} for _ in range(4)]
    shuffled = sum(_padding(torch.randperm(64, generator=torch.Generator().manual_seed(s)).tolist(), _lengths(64, s), 5)
                   for s in range(20)) / 20
    assert ours < 0.65 * hf < 0.65 * shuffled  # measured: ~0.06 vs ~0.11 vs ~0.22
    # jitter: the same 64 lengths give different batches from one epoch to the next
    assert len({frozenset(c) for c in compositions}) == 4


def test_same_seed_same_order_and_bad_input_named():
    lengths = _lengths(30)
    a = list(LengthBucketSampler(4, lengths, seed=7))
    b = list(LengthBucketSampler(4, lengths, seed=7))
    assert a == b
    # set_epoch (accelerate calls it each epoch): an epoch's order depends on (seed, epoch) only - a resumed run
    # sees the batches the interrupted one would have
    s1, s2 = LengthBucketSampler(4, lengths, seed=7), LengthBucketSampler(4, lengths, seed=7)
    s1.set_epoch(3)
    for _ in range(2):
        list(s2)
    s2.set_epoch(3)
    assert list(s1) == list(s2) == list(s1)
    s2.set_epoch(4)
    assert list(s2) != list(s1)
    with pytest.raises(ValueError, match="row 2"):
        LengthBucketSampler(4, [10, 20, -1])
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler(0, [1])
    assert list(LengthBucketSampler(4, [])) == []


@pytest.mark.parametrize("drop_last", [False, True])
def test_epoch_stream_runs_through_epochs_in_their_own_order(drop_last):
    """EpochStreamBatchSampler: epoch e's batches (LengthBucketSampler.batches(e)) then e+1's, without end; a short
    batch dropped only with drop_last; len() is one epoch."""
    from itertools import islice

    from lib.train.sampler import EpochStreamBatchSampler

    bucket = LengthBucketSampler(4, _lengths(10), seed=2)
    stream = EpochStreamBatchSampler(bucket, drop_last=drop_last, start_epoch=3)
    assert len(stream) == (2 if drop_last else 3)
    got = list(islice(iter(stream), 3 * len(stream)))
    want = [b for e in (3, 4, 5) for b in bucket.batches(e) if not (drop_last and len(b) < 4)]
    assert got == want
    assert got[:len(stream)] != got[len(stream):2 * len(stream)]  # epochs differ
    assert all(len(b) == 4 for b in got) is drop_last
    assert not hasattr(stream, "set_epoch") and not hasattr(stream, "sampler")  # accelerate must not reset it
    assert list(EpochStreamBatchSampler(LengthBucketSampler(4, []))) == []


def test_continuous_epochs_cut_the_stream_and_restart_on_an_unexpected_epoch():
    """ContinuousEpochs gives each epoch's batches from one DataLoader iterator; an epoch left early or a jump
    (resume-like set_epoch) restarts the stream at the asked epoch with that epoch's batches."""
    from lib.train.sampler import EpochStreamBatchSampler
    from lib.train.sampler import ContinuousEpochs

    bucket = LengthBucketSampler(3, _lengths(8), seed=4)
    stream = EpochStreamBatchSampler(bucket)
    loader = torch.utils.data.DataLoader(list(range(8)), batch_sampler=stream, collate_fn=list)
    calls = []
    orig = torch.utils.data.DataLoader.__iter__

    class Counting(torch.utils.data.DataLoader):
        def __iter__(self):
            calls.append(1)
            return orig(self)

    loader.__class__ = Counting
    ce = ContinuousEpochs(loader, stream)
    assert len(ce) == 3 and ce.dataset == list(range(8))
    seen = []
    for e in range(3):
        ce.set_epoch(e)
        seen.append(list(ce))
    assert seen == [bucket.batches(e) for e in range(3)] and len(calls) == 1  # one iterator for three epochs
    assert list(ce) == bucket.batches(3) and len(calls) == 1  # no set_epoch: the next epoch
    ce.set_epoch(4)
    next(iter(ce))  # epoch 4 left after one batch
    ce.set_epoch(5)
    assert list(ce) == bucket.batches(5) and len(calls) == 2
    ce.set_epoch(9)
    assert list(ce) == bucket.batches(9) and len(calls) == 3
    ce.close()
    assert ce._it is None


@pytest.mark.parametrize("n,bs,world,drop_last", [(10, 3, 2, False), (10, 3, 2, True), (11, 2, 3, False),
                                                  (4, 3, 3, False), (12, 3, 2, False)])
def test_epoch_stream_gives_each_rank_what_accelerate_would(n, bs, world, drop_last):
    """Under DDP each rank's stream is, epoch by epoch, exactly the batches accelerate's BatchSamplerShard gives that
    rank from the plain loader (a BatchSampler over the LengthBucketSampler at that epoch): even_batches fills the
    last ones up. Every batch is whole, so accelerate's wrapper set to one process passes the stream through."""
    from itertools import islice

    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    from lib.train.sampler import EpochStreamBatchSampler

    bucket = LengthBucketSampler(bs, _lengths(n), seed=7)
    for rank in range(world):
        stream = EpochStreamBatchSampler(bucket, drop_last=drop_last, num_processes=world, process_index=rank)
        want = []
        for e in range(3):
            bucket.set_epoch(e)
            want += list(BatchSamplerShard(BatchSampler(bucket, bs, drop_last), world, rank))
        bucket.epoch = None
        per_epoch = len(want) // 3
        assert len(stream) == per_epoch > 0
        assert list(islice(iter(stream), 3 * per_epoch)) == want
        passthrough = BatchSamplerShard(stream, 1, 0)
        assert list(islice(iter(passthrough), 3 * per_epoch)) == want
        assert all(len(b) == bs for b in want)
    with pytest.raises(ValueError, match="process_index 2"):
        EpochStreamBatchSampler(bucket, num_processes=2, process_index=2)
