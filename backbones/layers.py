"""Small layers both backbone families use (kept here so the backbones need torch + mmengine
only, no toolkit)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (drops the whole residual branch)."""
    if p == 0. or not training:
        return x
    keep = 1. - p
    mask = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Per-sample stochastic depth with drop probability ``p``."""

    def __init__(self, p: float = 0.) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f'p={self.p}'


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


class FrozenStagesMixin:
    """``train()`` of an OpenMMLab backbone with ``frozen_stages`` and ``norm_eval``: switching
    to train mode re-freezes the frozen stages (``self._freeze_stages()``) and, with
    ``norm_eval``, keeps every BatchNorm in eval mode (its running statistics fixed)."""

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
