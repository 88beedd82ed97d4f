"""MobileMamba's classifier (global average pool, BatchNorm1d, Linear) as an mmpretrain head.

Kept apart from ``backbones/mobilemamba.py`` because it subclasses mmpretrain's ``ClsHead``: the
backbone package imports no toolkit, and configs load this module through
``custom_imports=dict(imports=['backbones', 'backbones.mobilemamba_head'])``.
Registered in mmengine's root ``MODELS``, which mmpretrain's registry falls back to.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from mmpretrain.models.heads import ClsHead

from .mobilemamba import fuse_bn_linear

__all__ = ['BNLinearClsHead']


@MODELS.register_module()
class BNLinearClsHead(ClsHead):
    """``Linear(BatchNorm1d(pool(x)))`` with the official ``BN_Linear`` names ``bn`` and ``l``
    (so converted checkpoints load as ``head.bn.*`` / ``head.l.*``).

    Takes the last backbone (or neck) output; a 4-D map is average-pooled here, so the head works
    with or without a ``GlobalAveragePooling`` neck. :meth:`fuse` folds the BN into the Linear.
    """

    def __init__(self, num_classes: int, in_channels: int, init_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'num_classes={num_classes!r} must be a positive int')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.bn = nn.BatchNorm1d(in_channels)
        self.l = nn.Linear(in_channels, num_classes)
        nn.init.trunc_normal_(self.l.weight, std=0.02)
        nn.init.zeros_(self.l.bias)

    def pre_logits(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        x = feats[-1] if isinstance(feats, (tuple, list)) else feats
        return x.mean((2, 3)) if x.dim() == 4 else x

    def forward(self, feats: Union[torch.Tensor, Tuple[torch.Tensor, ...]]) -> torch.Tensor:
        return self.l(self.bn(self.pre_logits(feats)))

    @torch.no_grad()
    def fuse(self) -> 'BNLinearClsHead':
        """Fold the (eval-mode) BatchNorm1d into the Linear, in place."""
        if isinstance(self.bn, nn.BatchNorm1d):
            self.l = fuse_bn_linear(self.bn, self.l)
            self.bn = nn.Identity()
        return self

    switch_to_deploy = fuse
