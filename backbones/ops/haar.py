"""Single-level 2-D Haar (db1) wavelet transform as fixed depthwise convolutions.

Analysis is a stride-2 depthwise conv with four 2x2 filters per channel, synthesis the matching
stride-2 transposed conv. The orthonormal 2-D Haar filters are exactly +-1/2, so the
forward/inverse pair is exact up to the rounding of the additions (bit-exact on integer inputs).

Sub-band order and signs follow PyWavelets' ``pywt.dwt2(x, 'db1')``:
``y[:, :, 0] = cA`` (LL), ``y[:, :, 1] = cH`` (detail along rows/height: top minus bottom),
``y[:, :, 2] = cV`` (detail along columns/width: left minus right), ``y[:, :, 3] = cD`` (diagonal).
For a 2x2 block ``[[a, b], [c, d]]``: cA = (a+b+c+d)/2, cH = (a+b-c-d)/2, cV = (a-b+c-d)/2,
cD = (a-b-c+d)/2. This is also the filter bank MobileMamba builds from ``pywt.Wavelet('db1')``.

Odd heights/widths are zero-padded at the bottom/right before analysis (as the official code
does); pass ``output_size`` to :func:`haar_idwt2d` to crop the reconstruction back.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ['haar_filters', 'haar_dwt2d', 'haar_idwt2d']


def haar_filters(channels: int = 1, dtype: torch.dtype = torch.float32,
                 device: Optional[torch.device] = None) -> torch.Tensor:
    """Depthwise Haar filter bank of shape (4 * channels, 1, 2, 2), sub-bands (LL, H, V, D)."""
    base = torch.tensor([[[1., 1.], [1., 1.]],      # LL
                         [[1., 1.], [-1., -1.]],    # H: rows differ (top - bottom)
                         [[1., -1.], [1., -1.]],    # V: columns differ (left - right)
                         [[1., -1.], [-1., 1.]]],   # D
                        dtype=dtype, device=device) * 0.5
    return base[:, None].repeat(channels, 1, 1, 1)


def haar_dwt2d(x: torch.Tensor, filters: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 4, ceil(H/2), ceil(W/2)); odd sizes are zero-padded bottom/right.

    ``filters`` may pass a cached :func:`haar_filters` bank (e.g. a module buffer) to avoid
    rebuilding it on every call.
    """
    if x.dim() != 4:
        raise ValueError(f'haar_dwt2d expects (B, C, H, W), got shape {tuple(x.shape)}')
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    if filters is None:
        filters = haar_filters(c, x.dtype, x.device)
    y = F.conv2d(x, filters.to(x.dtype), stride=2, groups=c)
    return y.reshape(b, c, 4, y.shape[-2], y.shape[-1])


def haar_idwt2d(y: torch.Tensor, output_size: Optional[Sequence[int]] = None,
                filters: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, C, 4, h, w) -> (B, C, 2h, 2w), cropped to ``output_size`` (H, W) when given."""
    if y.dim() != 5 or y.shape[2] != 4:
        raise ValueError(f'haar_idwt2d expects (B, C, 4, h, w), got shape {tuple(y.shape)}')
    b, c, _, h, w = y.shape
    if filters is None:
        filters = haar_filters(c, y.dtype, y.device)
    x = F.conv_transpose2d(y.reshape(b, c * 4, h, w), filters.to(y.dtype), stride=2, groups=c)
    if output_size is not None:
        x = x[..., :output_size[0], :output_size[1]]
    return x
