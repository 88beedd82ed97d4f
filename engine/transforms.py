"""timm's ``interpolation='random'`` for mmpretrain's training transforms.

Both official ImageNet trainers build their training transform with timm and
``interpolation='random'``: the random-resized crop resizes each image with bilinear or bicubic,
drawn per image, and RandAugment's geometric ops (shear, translate, rotate) draw their resampling
the same way at every call. mmpretrain's transforms take one fixed interpolation; these two
subclasses accept ``'random'`` as well and otherwise behave as their parents.

Imports mmpretrain, so configs load it via ``custom_imports`` ('engine.transforms').
"""
from __future__ import annotations

import numpy as np
from mmpretrain.datasets.transforms import RandAugment, RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

__all__ = ['RANDOM_INTERPOLATIONS', 'RandomInterpResizedCrop', 'RandomInterpRandAugment']

# timm's _RANDOM_INTERPOLATION: one of these, with equal chance, per image (crop) or per op call.
RANDOM_INTERPOLATIONS = ('bilinear', 'bicubic')


def _draw() -> str:
    return RANDOM_INTERPOLATIONS[np.random.randint(len(RANDOM_INTERPOLATIONS))]


@TRANSFORMS.register_module()
class RandomInterpResizedCrop(RandomResizedCrop):
    """``RandomResizedCrop`` that also takes ``interpolation='random'`` (bilinear or bicubic,
    drawn per image)."""

    def __init__(self, *args, interpolation: str = 'bilinear', **kwargs):
        self.random_interpolation = interpolation == 'random'
        super().__init__(*args, interpolation='bicubic' if self.random_interpolation
                         else interpolation, **kwargs)

    def transform(self, results: dict) -> dict:
        if self.random_interpolation:
            self.interpolation = _draw()
        return super().transform(results)


@TRANSFORMS.register_module()
class RandomInterpRandAugment(RandAugment):
    """``RandAugment`` whose ``hparams`` may say ``interpolation='random'``: every chosen op that
    resamples (it has an ``interpolation``) draws bilinear or bicubic at each call."""

    def __init__(self, *args, hparams: dict = dict(pad_val=128), **kwargs):
        hparams = dict(hparams)
        self.random_interpolation = hparams.get('interpolation') == 'random'
        if self.random_interpolation:
            hparams['interpolation'] = 'bicubic'  # a placeholder, drawn again at every call
        super().__init__(*args, hparams=hparams, **kwargs)

    def transform(self, results: dict):
        if not self.random_interpolation:
            return super().transform(results)
        for i in self.random_policy_indices():
            op = self.transforms[i]
            if hasattr(op, 'interpolation'):
                op.interpolation = _draw()
            results = op(results)
            if results is None:
                return None
        return results
