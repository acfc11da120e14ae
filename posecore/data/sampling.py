"""Which samples each rank sees, and in what order: epoch orders and padded shards."""
from __future__ import annotations

import numpy as np


def grouped_order(groups: list[list[int]], seed: int, epoch: int, world: int = 1, rank: int = 0,
                  group_by_image: bool = True) -> list[int]:
    """This rank's sample order for one epoch, a function of (seed, epoch) only.

    groups: instance indices per image (PoseDataset.image_groups()). With group_by_image the
    images are shuffled and each image's people stay adjacent, so one JPEG decode serves them
    all (COCO train has ~2.6 people per image); otherwise the people themselves are shuffled.
    The order is padded by wrapping around, as DistributedSampler does, so every rank gets the
    same count, and each rank takes a contiguous slice (keeping the groups together).
    """
    rng = np.random.default_rng((int(seed), int(epoch)))
    if group_by_image:
        order = [index for g in rng.permutation(len(groups)) for index in groups[g]]
    else:
        order = [int(i) for i in rng.permutation([index for group in groups for index in group])]
    return padded_shard(order, world, rank)


def padded_shard(order: list[int], world: int, rank: int) -> list[int]:
    """Rank `rank`'s contiguous slice of `order`, padded by wrapping around as DistributedSampler
    pads, so every rank gets ceil(len / world) items; padding duplicates are for the caller to drop."""
    per_rank = -(-len(order) // world)
    return [order[i % len(order)] for i in range(rank * per_rank, (rank + 1) * per_rank)]
