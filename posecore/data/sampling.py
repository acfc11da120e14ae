"""Which samples each rank sees, and in what order: epoch orders, padded shards and the
micro-batches of an optimizer step."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class ImageGroups:
    """Sample indices grouped by image as two flat arrays: group g is members[offsets[g]:offsets[g + 1]]
    (members int64 [N], offsets int64 [G + 1]); no per-group Python objects, so DataLoader
    workers that inherit it copy nothing. Indexing and iteration give the groups as arrays."""

    def __init__(self, members: np.ndarray, offsets: np.ndarray) -> None:
        self.members, self.offsets = np.asarray(members, np.int64), np.asarray(offsets, np.int64)

    @classmethod
    def from_lists(cls, groups: Sequence[Sequence[int]]) -> ImageGroups:
        offsets = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum([len(group) for group in groups], out=offsets[1:])
        return cls(np.fromiter((index for group in groups for index in group), np.int64, int(offsets[-1])), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, group: int) -> np.ndarray:
        return self.members[self.offsets[group] : self.offsets[group + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[g] for g in range(len(self)))


def epoch_order(
    groups: ImageGroups | Sequence[Sequence[int]], seed: int, epoch: int, group_by_image: bool = True
) -> list[int]:
    """Every sample of one epoch in the order of (seed, epoch), before it is split over ranks.

    groups: instance indices per image (PoseDataset.image_groups(), or lists). With group_by_image
    the images are shuffled and each image's people stay adjacent, so one JPEG decode serves them
    all (COCO train has ~2.6 people per image); otherwise the people themselves are shuffled.
    """
    if not isinstance(groups, ImageGroups):
        groups = ImageGroups.from_lists(groups)
    rng = np.random.default_rng((int(seed), int(epoch)))
    if not group_by_image:
        return rng.permutation(groups.members).tolist()
    chosen = rng.permutation(len(groups))
    starts, sizes = groups.offsets[chosen], np.diff(groups.offsets)[chosen]
    # position j of shuffled group k reads members[starts[k] + j]
    within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return groups.members[np.repeat(starts, sizes) + within].tolist()


def grouped_order(
    groups: ImageGroups | Sequence[Sequence[int]],
    seed: int,
    epoch: int,
    world: int = 1,
    rank: int = 0,
    group_by_image: bool = True,
) -> list[int]:
    """This rank's sample order for one epoch, a function of (seed, epoch) only: its contiguous
    slice of epoch_order (keeping the groups together), padded by wrapping around as
    DistributedSampler pads, so every rank gets the same count."""
    return padded_shard(epoch_order(groups, seed, epoch, group_by_image), world, rank)


def step_order(
    groups: ImageGroups | Sequence[Sequence[int]],
    seed: int,
    epoch: int,
    batch_size: int,
    world: int = 1,
    rank: int = 0,
    accumulate: int = 1,
    group_by_image: bool = True,
) -> tuple[list[int], int]:
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
    steps = steps_per_epoch(len(order), batch_size, world, accumulate)
    samples = [
        index
        for step in range(steps)
        for shard in shards
        for index in shard[step * batch_size : (step + 1) * batch_size]
    ]
    return samples, steps


def steps_per_epoch(samples: int, batch_size: int, world: int = 1, accumulate: int = 1) -> int:
    """Whole optimizer steps in an epoch of `samples`: each of world x accumulate shards (padded to
    ceil(samples / (world x accumulate))) gives one micro-batch of batch_size per step."""
    return -(-int(samples) // (world * accumulate)) // batch_size


def padded_shard(order: list[int], world: int, rank: int) -> list[int]:
    """Rank `rank`'s contiguous slice of `order`, padded by wrapping around as DistributedSampler
    pads, so every rank gets ceil(len / world) items; padding duplicates are for the caller to drop."""
    per_rank = -(-len(order) // world)
    return [order[i % len(order)] for i in range(rank * per_rank, (rank + 1) * per_rank)]
