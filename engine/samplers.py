"""``StepAlignedSampler``: the official loaders' epoch of whole optimizer steps;
``EpochFractionSampler``: an epoch of a random fraction of the data (a scaled schedule).

mmengine's ``DefaultSampler`` whose every rank keeps whole optimizer steps only
(``images_per_step`` = per-GPU batch x accumulation), the way the official loaders drop the last
incomplete batch (timm's loader and MobileMamba's both use ``drop_last``). With accumulation an
epoch then holds a whole number of optimizer steps, as it would on enough GPUs to need none, so
the step count per epoch and the lr schedule (``engine.lr_schedulers``) are the official ones.
"""
from __future__ import annotations

import math
from typing import Optional

from mmengine.dataset import DefaultSampler
from mmengine.registry import DATA_SAMPLERS

__all__ = ['StepAlignedSampler', 'EpochFractionSampler', 'aligned_samples']


def aligned_samples(dataset_len: int, world_size: int, images_per_step: Optional[int]) -> int:
    """The samples one rank of ``StepAlignedSampler`` (``round_up=True``) yields per epoch."""
    per_rank = math.ceil(dataset_len / world_size)
    if images_per_step and per_rank >= images_per_step:
        per_rank -= per_rank % images_per_step
    return per_rank


@DATA_SAMPLERS.register_module()
class StepAlignedSampler(DefaultSampler):
    """``DefaultSampler`` whose ranks keep whole optimizer steps only (see the module docstring).

    Args:
        images_per_step: per-GPU batch x gradient accumulation; None keeps every sample (then the
            DataLoader's own ``drop_last`` drops an incomplete batch). A rank with less than one
            step of images (a cost pilot on a few generated images) keeps them all.
    """

    def __init__(self, *args, images_per_step: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if images_per_step is not None and (not isinstance(images_per_step, int)
                                            or images_per_step < 1):
            raise ValueError(f'images_per_step must be a whole number >= 1, got '
                             f'{images_per_step!r}')
        self.images_per_step = images_per_step
        if images_per_step and self.num_samples >= images_per_step:
            self.num_samples -= self.num_samples % images_per_step

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[:self.num_samples])


@DATA_SAMPLERS.register_module()
class EpochFractionSampler(DefaultSampler):
    """``DefaultSampler`` whose epoch is the first ``fraction`` of each rank's share of that
    epoch's shuffled order: a new random part of the data every epoch, so an epoch-based schedule
    (mmdet's 1x: 12 epochs, lr steps at 8 and 11) keeps its epochs, milestones and per-epoch
    validation while training ``fraction`` of its iterations (``--schedule-scale``).
    """

    def __init__(self, *args, fraction: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
                or not 0 < fraction <= 1:
            raise ValueError(f'fraction must be a number in (0, 1], got {fraction!r}')
        if not self.shuffle and fraction < 1:
            raise ValueError('EpochFractionSampler with fraction < 1 needs shuffle=True: '
                             'otherwise every epoch would draw the same images')
        self.fraction = fraction
        self.num_samples = max(1, math.ceil(self.num_samples * fraction))

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[:self.num_samples])
