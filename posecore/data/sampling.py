"""Which samples each rank sees, and in what order: epoch orders, padded shards and the
micro-batches of an optimizer step."""
from __future__ import annotations

import numpy as np


def epoch_order(groups: list[list[int]], seed: int, epoch: int, group_by_image: bool = True) -> list[int]:
    """Every sample of one epoch in the order of (seed, epoch), before it is split over ranks.

    groups: instance indices per image (PoseDataset.image_groups()). With group_by_image the
    images are shuffled and each image's people stay adjacent, so one JPEG decode serves them
    all (COCO train has ~2.6 people per image); otherwise the people themselves are shuffled.
    """
    rng = np.random.default_rng((int(seed), int(epoch)))
    if group_by_image:
        return [int(index) for g in rng.permutation(len(groups)) for index in groups[g]]
    return [int(i) for i in rng.permutation([index for group in groups for index in group])]


def grouped_order(groups: list[list[int]], seed: int, epoch: int, world: int = 1, rank: int = 0,
                  group_by_image: bool = True) -> list[int]:
    """This rank's sample order for one epoch, a function of (seed, epoch) only: its contiguous
    slice of epoch_order (keeping the groups together), padded by wrapping around as
    DistributedSampler pads, so every rank gets the same count."""
    return padded_shard(epoch_order(groups, seed, epoch, group_by_image), world, rank)


def step_order(groups: list[list[int]], seed: int, epoch: int, batch_size: int, world: int = 1,
               rank: int = 0, accumulate: int = 1, group_by_image: bool = True) -> tuple[list[int], int]:
    """(samples, steps): this rank's samples of one epoch in the order its micro-batches run, and
    the number of whole optimizer steps (a last incomplete batch is dropped).

    The epoch is split as over world x accumulate devices: micro-batch `a` of this rank's step
    `s` is step s's batch of rank `rank * accumulate + a` in that larger world (grouped_order),
    so 1 process accumulating 2 micro-batches sees exactly the batches of 2 processes, and
    augmentation (a function of seed, epoch and sample index) draws alike.
    """
    order = epoch_order(groups, seed, epoch, group_by_image)
    virtual = world * accumulate
    shards = [padded_shard(order, virtual, rank * accumulate + micro) for micro in range(accumulate)]
    steps = len(shards[0]) // batch_size
    samples = [index for step in range(steps) for shard in shards
               for index in shard[step * batch_size:(step + 1) * batch_size]]
    return samples, steps


def padded_shard(order: list[int], world: int, rank: int) -> list[int]:
    """Rank `rank`'s contiguous slice of `order`, padded by wrapping around as DistributedSampler
    pads, so every rank gets ceil(len / world) items; padding duplicates are for the caller to drop."""
    per_rank = -(-len(order) // world)
    return [order[i % len(order)] for i in range(rank * per_rank, (rank + 1) * per_rank)]
