"""MobileMamba: Lightweight Multi-Receptive Visual Mamba Network (He et al., CVPR 2025).

Written from the paper and from reading the official code (lewandofskee/MobileMamba). Module and
parameter names follow the official checkpoint layout wherever the module is the same
(``patch_embed.0.c.weight``, ``blocks2.3.mixer.m.attn.global_op.global_atten.A_logs``, ...), so
:func:`convert_official_state_dict` is mostly a renaming of prefixes.

Layout of this file (timm order): fusion helpers and building blocks, the SS2D scan and the
WTE-Mamba global operator, the local operators, the MRFFI mixer, blocks and stages, the
``MobileMamba`` backbone, the variant table, checkpoint conversion.

The ablation flags are constructor arguments of :class:`MRFFI` only; the backbone threads
``mrffi_cfg`` through unchanged:

* ``wavelet``       WTE branch (Haar DWT -> depthwise kxk conv -> scale -> IDWT) beside SS2D.
* ``identity``      keep the identity channels; off: they are given to the local branch.
* ``local_op``      ``'single'``: the official DW kxk conv + BN + ReLU + DW 1x1 conv + BN;
                    ``'multi'``: the paper's MK-DeConv, n channel groups with kernels 3..2n+1.
* ``local_kernels`` for ``'multi'``: None (n = (k - 1) // 2 from the stage kernel k, so the largest
                    kernel equals the official single kernel), an int n, or explicit odd kernels.
* ``scan``          ``'bi'``: row-major sequence and its reverse, summed; ``'uni'``: one direction.
* ``ssm_ratio``, ``d_state`` SS2D width (2) and state size (1), as in all official variants.

The two operators of MRFFI are built from mmengine's ``MODELS`` registry: ``global_op_cfg`` /
``local_op_cfg`` (threaded like ``mrffi_cfg``) name another registered operator with ``type``;
without them MRFFI builds the paper's (``WTEMamba``; ``DWConvBNReLU`` or ``MultiKernelDWConv``
as ``local_op`` says) from the flags above. The contract is in ``WTEMamba``'s docstring and
docs/mixers.md.
"""
from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .layers import DropPath, FrozenStagesMixin, LayerNorm2d
from .mixer_contract import resolve_mixer_type
from .ops import haar_dwt2d, haar_idwt2d, selective_scan
from .ops.haar import haar_filters

__all__ = [
    'MobileMamba', 'MRFFI', 'SS2D', 'WTEMamba', 'DWConvBNReLU', 'MultiKernelDWConv', 'ConvBN',
    'BNLinear', 'split_channels', 'fuse_conv_bn', 'fuse_bn_linear', 'fuse_modules',
    'convert_official_state_dict',
]

LOCAL_OPS = ('single', 'multi')
SCANS = ('bi', 'uni')
MRFFI_FLAGS = ('wavelet', 'identity', 'local_op', 'local_kernels', 'scan', 'ssm_ratio', 'd_state')


# ------------------------------------------------------------------------------------------------
# BN fusion helpers
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold an eval-mode BatchNorm2d into the conv before it (returns a new conv with bias)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, bias=True,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale[:, None, None, None])
    fused.bias.copy_(bias)
    return fused


@torch.no_grad()
def fuse_bn_linear(bn: nn.BatchNorm1d, linear: nn.Linear) -> nn.Linear:
    """Fold an eval-mode BatchNorm1d into the Linear after it."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True,
                      device=linear.weight.device, dtype=linear.weight.dtype)
    fused.weight.copy_(linear.weight * scale[None, :])
    bias = linear.weight @ shift
    if linear.bias is not None:
        bias = bias + linear.bias
    fused.bias.copy_(bias)
    return fused


def fuse_modules(module: nn.Module) -> nn.Module:
    """Replace, recursively and in place, every child that has a ``fuse()`` by its fused form."""
    for name, child in module.named_children():
        if callable(getattr(child, 'fuse', None)):
            setattr(module, name, child.fuse())
        else:
            fuse_modules(child)
    return module


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------
class ConvBN(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d; names ``c``/``bn`` as the official ``Conv2d_BN``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module('c', nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                       groups=groups, bias=False))
        self.add_module('bn', nn.BatchNorm2d(out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def fuse(self) -> nn.Conv2d:
        return fuse_conv_bn(self.c, self.bn)


class BNLinear(nn.Sequential):
    """BatchNorm1d + Linear classifier (official ``BN_Linear``: names ``bn``/``l``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, std: float = 0.02):
        super().__init__()
        self.add_module('bn', nn.BatchNorm1d(in_features))
        self.add_module('l', nn.Linear(in_features, out_features, bias=bias))
        nn.init.trunc_normal_(self.l.weight, std=std)
        if bias:
            nn.init.zeros_(self.l.bias)

    def fuse(self) -> nn.Linear:
        return fuse_bn_linear(self.bn, self.l)


class Residual(nn.Module):
    """x + m(x); the attribute name ``m`` is the official one."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        """A residual depthwise Conv+BN becomes one conv with the identity in its centre tap
        (x + dw(x) = dw'(x)); anything else is fused inside and kept residual."""
        m = self.m
        if isinstance(m, ConvBN) and _is_same_size_depthwise(m.c):
            conv = m.fuse()
            k = conv.kernel_size
            conv.weight[:, 0, k[0] // 2, k[1] // 2] += 1.0
            return conv
        fuse_modules(self)
        return self


def _is_same_size_depthwise(conv: nn.Conv2d) -> bool:
    k, p = conv.kernel_size, conv.padding
    return (conv.groups == conv.in_channels == conv.out_channels and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and k[0] % 2 == 1 and k[1] % 2 == 1
            and p == (k[0] // 2, k[1] // 2))


class FFN(nn.Module):
    """Conv1x1+BN, ReLU, Conv1x1+BN (last BN weight 0 so each residual FFN starts as identity)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.pw1 = ConvBN(dim, hidden)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


def _make_divisible(v: float, divisor: int = 8) -> int:
    # timm's make_divisible with round_limit=0, which the official SqueezeExcite(c, 0.25) uses.
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """Squeeze-excite with ratio 0.25 (timm ``SEModule`` layout: ``fc1``/``fc2`` with bias)."""

    def __init__(self, channels: int, rd_ratio: float = 0.25):
        super().__init__()
        rd = _make_divisible(channels * rd_ratio)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(s)


class PatchMerging(nn.Module):
    """Stride-2 downsampling: 1x1 expand to 4C, dw 3x3 s2, SE, 1x1 project to C'."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hidden = dim * 4
        self.conv1 = ConvBN(dim, hidden)
        self.act = nn.ReLU()
        self.conv2 = ConvBN(hidden, hidden, 3, 2, 1, groups=hidden)
        self.se = SqueezeExcite(hidden, 0.25)
        self.conv3 = ConvBN(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))


class Scale(nn.Module):
    """Learnable per-channel multiplier (official ``_ScaleModule``: one ``weight``)."""

    def __init__(self, shape: Sequence[int], init_scale: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full(tuple(shape), float(init_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


# ------------------------------------------------------------------------------------------------
# Global operator: SS2D (VMamba "v052d", channel-first) and WTE-Mamba
# ------------------------------------------------------------------------------------------------
class SS2D(nn.Module):
    """2-D selective scan over the row-major sequence (and its reverse for ``scan='bi'``).

    in_proj (1x1+BN) -> x, z; z = SiLU(z); x = SiLU(dw3x3(x)); per direction k: x_proj_k gives
    (dt, B, C), dt_proj_k maps dt to d_inner; selective scan with softplus(dt + bias); directions
    are summed in row-major order; LayerNorm; * z; out_proj (1x1+BN).
    """

    def __init__(self, d_model: int, d_state: int = 1, ssm_ratio: float = 2.0,
                 dt_rank: Union[int, str] = 'auto', d_conv: int = 3, scan: str = 'bi'):
        super().__init__()
        if scan not in SCANS:
            raise ValueError(f'scan={scan!r} is not one of {SCANS}')
        d_inner = int(ssm_ratio * d_model)
        dt_rank = math.ceil(d_model / 16) if dt_rank == 'auto' else int(dt_rank)
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, dt_rank
        self.scan = scan
        self.k_group = 2 if scan == 'bi' else 1
        k = self.k_group

        self.in_proj = ConvBN(d_model, 2 * d_inner)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=True)
        # Per-direction projections stacked on a leading K axis (official layout). x_proj uses
        # nn.Linear's default init; dt/A/D use the official "v2" init.
        bound = 1.0 / math.sqrt(d_inner)
        self.x_proj_weight = nn.Parameter(
            torch.empty(k, dt_rank + 2 * d_state, d_inner).uniform_(-bound, bound))
        self.dt_projs_weight = nn.Parameter(0.1 * torch.rand(k, d_inner, dt_rank))
        self.dt_projs_bias = nn.Parameter(0.1 * torch.rand(k, d_inner))
        self.A_logs = nn.Parameter(torch.zeros(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.out_norm = LayerNorm2d(d_inner)
        self.out_proj = ConvBN(d_inner, d_model)

    def forward_core(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w = x.shape
        k, n, r, length = self.k_group, self.d_state, self.dt_rank, h * w
        xs = x.flatten(2)
        if k == 2:
            xs = torch.stack([xs, xs.flip(-1)], dim=1)
        xs = xs.reshape(b, k * d, length)
        # Grouped 1-D convs apply each direction's own projection (counted by FLOP counters).
        x_dbl = F.conv1d(xs, self.x_proj_weight.reshape(-1, d, 1), groups=k)
        dts, bs, cs = torch.split(x_dbl.view(b, k, r + 2 * n, length), [r, n, n], dim=2)
        dts = F.conv1d(dts.reshape(b, k * r, length), self.dt_projs_weight.reshape(k * d, r, 1),
                       groups=k)
        ys = selective_scan(xs, dts, -torch.exp(self.A_logs.float()), bs.contiguous(),
                            cs.contiguous(), self.Ds.float(),
                            delta_bias=self.dt_projs_bias.reshape(-1).float(),
                            delta_softplus=True)
        ys = ys.view(b, k, d, length)
        y = ys[:, 0] + ys[:, 1].flip(-1) if k == 2 else ys[:, 0]
        return y.reshape(b, d, h, w).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(x).chunk(2, dim=1)
        z = self.act(z)
        x = self.act(self.conv2d(x))
        y = self.out_norm(self.forward_core(x))
        return self.out_proj(y * z)


@MODELS.register_module()
class WTEMamba(nn.Module):
    """Wavelet-transform-enhanced Mamba: ``s * SS2D(x) + IWT(w * dwconv_kxk(WT(x)))``.

    Official name ``MBWTConv2d``; one wavelet level; Haar filters are fixed buffers (not saved:
    they are constants, and not counted as parameters).

    Contract of an MRFFI operator (this global one, the local ones, and any operator named by
    ``global_op_cfg`` / ``local_op_cfg``; docs/mixers.md): MRFFI builds it as
    ``MODELS.build(cfg, default_args=dict(channels=n))``, n its branch's channel count, and
    passes nothing else to a user's operator (the paper's operators also get their flags, see
    ``MRFFI``). ``forward`` maps (B, n, H, W) to the same shape and dtype, at the stage's map
    size, which may be odd and non-square. The global operator gets the first n = global
    channels of the block's map, the local one the next n = local channels.
    """

    def __init__(self, channels: int, kernel_size: int = 5, wavelet: bool = True,
                 scan: str = 'bi', ssm_ratio: float = 2.0, d_state: int = 1):
        super().__init__()
        self.wavelet = wavelet
        self.global_atten = SS2D(channels, d_state=d_state, ssm_ratio=ssm_ratio, scan=scan)
        self.base_scale = Scale((1, channels, 1, 1), 1.0)
        if wavelet:
            self.register_buffer('wt_filter', haar_filters(channels), persistent=False)
            # ModuleLists of one level keep the official key names (wavelet_convs.0.weight).
            self.wavelet_convs = nn.ModuleList([
                nn.Conv2d(channels * 4, channels * 4, kernel_size, padding=kernel_size // 2,
                          groups=channels * 4, bias=False)])
            self.wavelet_scale = nn.ModuleList([Scale((1, channels * 4, 1, 1), 0.1)])

    @torch.no_grad()
    def fuse(self) -> 'WTEMamba':
        """Fuse the Conv+BN pairs inside, then fold the scales into the convs before them:
        ``base_scale`` into SS2D's out_proj, ``wavelet_scale`` into the wavelet conv."""
        fuse_modules(self)
        proj = self.global_atten.out_proj
        if isinstance(proj, nn.Conv2d) and isinstance(self.base_scale, Scale):
            s = self.base_scale.weight.reshape(-1)
            proj.weight.mul_(s[:, None, None, None])
            proj.bias.mul_(s)
            self.base_scale = nn.Identity()
        if self.wavelet and isinstance(self.wavelet_scale[0], Scale):
            self.wavelet_convs[0].weight.mul_(
                self.wavelet_scale[0].weight.reshape(-1)[:, None, None, None])
            self.wavelet_scale[0] = nn.Identity()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_scale(self.global_atten(x))
        if self.wavelet:
            h, w = x.shape[-2:]
            y = haar_dwt2d(x, self.wt_filter)
            b, c, _, hh, ww = y.shape
            y = self.wavelet_scale[0](self.wavelet_convs[0](y.reshape(b, c * 4, hh, ww)))
            out = out + haar_idwt2d(y.reshape(b, c, 4, hh, ww), (h, w), self.wt_filter)
        return out


# ------------------------------------------------------------------------------------------------
# Local operators
# ------------------------------------------------------------------------------------------------
@MODELS.register_module()
class DWConvBNReLU(nn.Sequential):
    """Official single-kernel local op: DW kxk + BN + ReLU + DW 1x1 + BN (official names).

    An MRFFI operator (contract: ``WTEMamba``); (B, channels, H, W) -> same shape.
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.add_module('dwconv3x3', nn.Conv2d(channels, channels, kernel_size, 1,
                                               kernel_size // 2, groups=channels, bias=False))
        self.add_module('bn1', nn.BatchNorm2d(channels))
        self.add_module('relu', nn.ReLU(inplace=True))
        self.add_module('dwconv1x1', nn.Conv2d(channels, channels, 1, groups=channels,
                                               bias=False))
        self.add_module('bn2', nn.BatchNorm2d(channels))

    def fuse(self) -> nn.Sequential:
        return nn.Sequential(fuse_conv_bn(self.dwconv3x3, self.bn1), self.relu,
                             fuse_conv_bn(self.dwconv1x1, self.bn2))


@MODELS.register_module()
class MultiKernelDWConv(nn.Module):
    """MK-DeConv (paper form): channels split into n groups, group i gets a DW conv of kernel
    k_i (+BN); then ReLU and a DW 1x1 conv + BN over all channels, as in the single-kernel op.

    An MRFFI operator (contract: ``WTEMamba``); (B, channels, H, W) -> same shape.
    """

    def __init__(self, channels: int, kernels: Sequence[int]):
        super().__init__()
        n = len(kernels)
        if channels < n:
            raise ValueError(f'local_op=multi needs at least {n} local channels for kernels '
                             f'{tuple(kernels)}, got {channels}')
        self.splits = [channels // n + (1 if i < channels % n else 0) for i in range(n)]
        self.kernels = tuple(kernels)
        self.convs = nn.ModuleList([ConvBN(c, c, k, 1, k // 2, groups=c)
                                    for c, k in zip(self.splits, kernels)])
        self.act = nn.ReLU(inplace=True)
        self.pw = ConvBN(channels, channels, 1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1)
        x = torch.cat([conv(p) for conv, p in zip(self.convs, parts)], dim=1)
        return self.pw(self.act(x))


def _multi_kernels(local_kernels, stage_kernel: int) -> Tuple[int, ...]:
    if local_kernels is None:
        n = max(1, (stage_kernel - 1) // 2)
    elif isinstance(local_kernels, int) and not isinstance(local_kernels, bool):
        n = local_kernels
    else:
        ks = tuple(local_kernels)
        if not ks or any((not isinstance(k, int)) or k < 1 or k % 2 == 0 for k in ks):
            raise ValueError(f'local_kernels={local_kernels!r}: expected None, a group count n '
                             f'>= 1, or a sequence of odd positive kernel sizes')
        return ks
    if n < 1:
        raise ValueError(f'local_kernels={local_kernels!r}: the group count n must be >= 1')
    return tuple(2 * i + 3 for i in range(n))


# ------------------------------------------------------------------------------------------------
# The mixer: MRFFI
# ------------------------------------------------------------------------------------------------
def nearest_multiple_of_16(n: int) -> int:
    """Nearest multiple of 16, ties rounded up (the official rule)."""
    lower = (n // 16) * 16
    return lower if n - lower < lower + 16 - n else lower + 16


def split_channels(dim: int, global_ratio: float, local_ratio: float,
                   identity: bool = True) -> Tuple[int, int, int]:
    """(global, local, identity) channel counts by the official rule.

    global = nearest multiple of 16 of int(xi * C); local = int(mu * C), cut so the total fits;
    identity = the rest (given to the local branch when ``identity=False``).
    """
    for name, r in (('global_ratio', global_ratio), ('local_ratio', local_ratio)):
        if not 0.0 <= r <= 1.0:
            raise ValueError(f'{name}={r!r} is outside the valid range [0, 1]')
    if global_ratio + local_ratio > 1.0 + 1e-6:
        raise ValueError(f'global_ratio={global_ratio!r} + local_ratio={local_ratio!r} > 1: the '
                         f'two branches cannot fit in {dim} channels (valid: sum <= 1)')
    n_global = nearest_multiple_of_16(int(global_ratio * dim))
    if n_global > dim:
        raise ValueError(f'global_ratio={global_ratio!r} gives {n_global} global channels (int('
                         f'xi*C) rounded to a multiple of 16), more than the {dim} channels')
    n_local = int(local_ratio * dim)
    if n_global + n_local > dim:
        n_local = dim - n_global
    n_identity = dim - n_global - n_local
    if not identity:
        n_local, n_identity = n_local + n_identity, 0
    return n_global, n_local, n_identity


def _op_cfg(key: str, cfg: Optional[dict], paper_type: str) -> dict:
    """``cfg`` with a ``type``: the paper's operator when it names none."""
    cfg = {'type': paper_type, **(cfg or {})}
    if 'channels' in cfg:
        raise ValueError(f'{key} must not set channels: MRFFI passes each branch its own')
    return cfg


class MRFFI(nn.Module):
    """Multi-Receptive Field Feature Interaction (official ``MobileMambaModule``).

    Splits channels into global / local / identity, applies the global operator (WTE-Mamba) and
    the local one, concats with the identity part, then ReLU and Conv1x1+BN (BN weight 0).

    ``global_op_cfg`` / ``local_op_cfg`` build the operators through ``MODELS`` with
    ``channels`` = the branch's channel count (contract: ``WTEMamba``). None, or a dict without
    ``type``, is the paper's operator: global ``WTEMamba``; local ``DWConvBNReLU`` for
    ``local_op='single'``, ``MultiKernelDWConv`` for ``'multi'``. The paper's operators, wherever
    named, also get their arguments from the flags (WTEMamba: kernel_size, wavelet, scan,
    ssm_ratio, d_state; DWConvBNReLU: kernel_size; MultiKernelDWConv: the kernels of
    local_kernels), the cfg's keys winning; another operator gets the cfg's keys and
    ``channels`` only. A branch without channels is ``nn.Identity`` (its type is still checked).
    """

    def __init__(self, dim: int, global_ratio: float = 0.8, local_ratio: float = 0.2,
                 kernel_size: int = 3, wavelet: bool = True, identity: bool = True,
                 local_op: str = 'single', local_kernels=None, scan: str = 'bi',
                 ssm_ratio: float = 2.0, d_state: int = 1, global_op_cfg: Optional[dict] = None,
                 local_op_cfg: Optional[dict] = None):
        super().__init__()
        for name, v in (('wavelet', wavelet), ('identity', identity)):
            if not isinstance(v, bool):
                raise ValueError(f'{name}={v!r} is not one of (True, False)')
        if local_op not in LOCAL_OPS:
            raise ValueError(f'local_op={local_op!r} is not one of {LOCAL_OPS}')
        if scan not in SCANS:
            raise ValueError(f'scan={scan!r} is not one of {SCANS}')
        if not (isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 1):
            raise ValueError(f'kernel size {kernel_size!r} is not valid: expected an odd int >= 1')
        global_op_cfg = _op_cfg('global_op_cfg', global_op_cfg, 'WTEMamba')
        local_op_cfg = _op_cfg('local_op_cfg', local_op_cfg,
                               'DWConvBNReLU' if local_op == 'single' else 'MultiKernelDWConv')
        global_cls = resolve_mixer_type(global_op_cfg, 'global_op_cfg', 'channels', 'operator')
        local_cls = resolve_mixer_type(local_op_cfg, 'local_op_cfg', 'channels', 'operator')
        self.dim = dim
        self.global_channels, self.local_channels, self.identity_channels = split_channels(
            dim, global_ratio, local_ratio, identity)

        def paper_args(cls) -> dict:
            # The paper's operators are configured by the flags; a user's one by its cfg only.
            if cls is WTEMamba:
                return dict(kernel_size=kernel_size, wavelet=wavelet, scan=scan,
                            ssm_ratio=ssm_ratio, d_state=d_state)
            if cls is DWConvBNReLU:
                return dict(kernel_size=kernel_size)
            if cls is MultiKernelDWConv:
                return dict(kernels=_multi_kernels(local_kernels, kernel_size))
            return {}

        self.global_op = (MODELS.build(global_op_cfg, default_args=dict(
            paper_args(global_cls), channels=self.global_channels))
            if self.global_channels else nn.Identity())
        self.local_op = (MODELS.build(local_op_cfg, default_args=dict(
            paper_args(local_cls), channels=self.local_channels))
            if self.local_channels else nn.Identity())
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(dim, dim, bn_weight_init=0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xg, xl, xi = torch.split(
            x, [self.global_channels, self.local_channels, self.identity_channels], dim=1)
        return self.proj(torch.cat([self.global_op(xg), self.local_op(xl), xi], dim=1))

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, global={self.global_channels}, local={self.local_channels}, '
                f'identity={self.identity_channels}')


class MixerWindow(nn.Module):
    """Holds the mixer as ``attn``: only here to keep the official key path ``mixer.m.attn``."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


# ------------------------------------------------------------------------------------------------
# Blocks and stages
# ------------------------------------------------------------------------------------------------
class MobileMambaBlock(nn.Module):
    """x + DropPath(ffn1(dw1(mixer(ffn0(dw0(x)))))), each inner part itself residual."""

    def __init__(self, dim: int, global_ratio: float, local_ratio: float, kernel_size: int,
                 drop_path: float = 0.0, mrffi_cfg: Optional[dict] = None,
                 global_op_cfg: Optional[dict] = None, local_op_cfg: Optional[dict] = None):
        super().__init__()
        self.dw0 = Residual(ConvBN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0))
        self.ffn0 = Residual(FFN(dim, dim * 2))
        self.mixer = Residual(MixerWindow(MRFFI(dim, global_ratio, local_ratio, kernel_size,
                                                **(mrffi_cfg or {}), global_op_cfg=global_op_cfg,
                                                local_op_cfg=local_op_cfg)))
        self.dw1 = Residual(ConvBN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0))
        self.ffn1 = Residual(FFN(dim, dim * 2))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # As in the official code the outer skip adds x to a sum that already contains x.
        return x + self.drop_path(self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x))))))


def _conv_ffn(dim: int) -> nn.Sequential:
    """Residual dw3x3 conv + residual FFN (used before and after each PatchMerging)."""
    return nn.Sequential(Residual(ConvBN(dim, dim, 3, 1, 1, groups=dim)),
                         Residual(FFN(dim, dim * 2)))


# ------------------------------------------------------------------------------------------------
# Backbone
# ------------------------------------------------------------------------------------------------
@MODELS.register_module()
class MobileMamba(FrozenStagesMixin, BaseModule):
    """MobileMamba backbone (three stages at strides 16, 32, 64 by default).

    Args:
        arch: ``'T2' | 'T4' | 'S6' | 'B1' | 'B2' | 'B4'`` or a dict with ``widths``, ``depths``
            and optionally ``drop_path_rate``.
        in_channels: image channels.
        global_ratio / local_ratio / kernels: per stage (xi, mu, kernel of the WTE conv and the
            local op).
        mrffi_cfg: MRFFI flags, the same for every stage (a dict), or one dict per stage.
        global_op_cfg / local_op_cfg: MRFFI's global / local operator, built through
            ``MODELS`` (a dict for every stage, or one per stage); None: the paper's, from the
            flags. A ``type`` naming another registered operator gets the cfg's keys and
            ``channels`` (its branch's channel count) only; contract: ``WTEMamba``,
            docs/mixers.md.
        stages: 3 (official) or 4 (the paper's four-stage baseline: stride-4 start, one more
            stage in front). With 3-entry per-stage settings and ``stages=4`` the extra first
            stage is derived: width ``widths[0] // 2``, depth 1, and the first stage's ratios
            and kernel; the stem has two stride-2 convs. Strides are then 4, 8, 16, 32. This
            changes the layout only (every original stage keeps its width, at twice the
            resolution), so it is not compute-matched: S6 goes from 15.0M / 0.65 GFLOPs to
            15.4M / 3.06 GFLOPs at 224 px. The paper compares at equal throughput with widths it
            does not publish; pass 4-entry ``widths``/``depths`` for such a comparison (e.g.
            widths (32, 96, 192, 384), depths (1, 1, 2, 2): 6.8M / 0.81 GFLOPs).
        out_indices: stages whose outputs are returned (None: all; negative indices allowed).
        frozen_stages: -1 freezes nothing, 0 the stem, i the stem and stages 1..i.
        norm_eval: keep BatchNorm layers in eval mode during training.
        drop_path_rate: overrides the variant's stochastic depth rate.
        with_cp: gradient checkpointing per block.
    """

    arch_zoo: Dict[str, dict] = {
        'T2': dict(widths=(144, 272, 368), depths=(1, 2, 2), drop_path_rate=0.0),
        'T4': dict(widths=(176, 368, 448), depths=(1, 2, 2), drop_path_rate=0.0),
        'S6': dict(widths=(192, 384, 448), depths=(1, 2, 2), drop_path_rate=0.0),
        'B1': dict(widths=(200, 376, 448), depths=(2, 3, 2), drop_path_rate=0.03),
        'B2': dict(widths=(200, 376, 448), depths=(2, 3, 2), drop_path_rate=0.03),
        'B4': dict(widths=(200, 376, 448), depths=(2, 3, 2), drop_path_rate=0.03),
    }
    # Resolutions of the published variants (B1/B2/B4 differ only here).
    resolutions: Dict[str, int] = {'T2': 192, 'T4': 192, 'S6': 224, 'B1': 256, 'B2': 384,
                                   'B4': 512}

    def __init__(self,
                 arch: Union[str, dict] = 'S6',
                 in_channels: int = 3,
                 global_ratio: Sequence[float] = (0.8, 0.7, 0.6),
                 local_ratio: Sequence[float] = (0.2, 0.2, 0.3),
                 kernels: Sequence[int] = (7, 5, 3),
                 mrffi_cfg: Union[dict, Sequence[dict], None] = None,
                 global_op_cfg: Union[dict, Sequence[dict], None] = None,
                 local_op_cfg: Union[dict, Sequence[dict], None] = None,
                 stages: int = 3,
                 out_indices: Optional[Sequence[int]] = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: Optional[float] = None,
                 with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None):
        super().__init__(init_cfg=init_cfg)
        if stages not in (3, 4):
            raise ValueError(f'stages={stages!r} is not one of (3, 4)')
        arch = self._arch_dict(arch)
        self.arch_settings = dict(
            widths=self._per_stage('widths', arch['widths'], stages, lambda v: v[0] // 2),
            depths=self._per_stage('depths', arch['depths'], stages, lambda v: 1),
            global_ratio=self._per_stage('global_ratio', global_ratio, stages, lambda v: v[0]),
            local_ratio=self._per_stage('local_ratio', local_ratio, stages, lambda v: v[0]),
            kernels=self._per_stage('kernels', kernels, stages, lambda v: v[0]))
        mrffi_cfgs = self._mrffi_cfgs(mrffi_cfg, stages)
        self.global_op_cfgs = self._op_cfgs('global_op_cfg', global_op_cfg, stages)
        self.local_op_cfgs = self._op_cfgs('local_op_cfg', local_op_cfg, stages)
        if drop_path_rate is None:
            drop_path_rate = arch.get('drop_path_rate', 0.0)
        self.num_stages = stages
        self.embed_dims = self.arch_settings['widths']
        self.mrffi_cfgs = mrffi_cfgs
        self.out_indices = self._out_indices(out_indices, stages)
        if not -1 <= frozen_stages <= stages:
            raise ValueError(f'frozen_stages={frozen_stages!r} is not valid: expected -1 '
                             f'(nothing), 0 (stem) ... {stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

        self.patch_embed = self._stem(in_channels, self.embed_dims[0], stages)
        self._add_stages(drop_path_rate)
        self.fused = False
        self._freeze_stages()

    # ---- construction helpers ------------------------------------------------------------------
    @classmethod
    def _arch_dict(cls, arch: Union[str, dict]) -> dict:
        """The variant's settings: a name from :attr:`arch_zoo` or a dict, checked before any
        layer is built so that a typo fails with the valid choices."""
        if isinstance(arch, str):
            if arch.upper() not in cls.arch_zoo:
                raise ValueError(f'arch={arch!r} is not one of {tuple(cls.arch_zoo)} '
                                 f'(or a dict with widths and depths)')
            return cls.arch_zoo[arch.upper()]
        if isinstance(arch, dict):
            missing = {'widths', 'depths'} - set(arch)
            if missing:
                raise ValueError(f'arch dict {arch!r} lacks {sorted(missing)}')
            unknown = set(arch) - {'widths', 'depths', 'drop_path_rate'}
            if unknown:
                raise ValueError(f'arch dict keys {sorted(unknown)} are not valid; valid keys: '
                                 f"['depths', 'drop_path_rate', 'widths']")
            return arch
        raise ValueError(f'arch={arch!r} is neither a variant name nor a dict')

    @staticmethod
    def _out_indices(out_indices: Union[int, Sequence[int], None], stages: int) -> tuple:
        """Stage indices in ``range(stages)``: mmdet/mmseg configs pass an int, negative
        indices or nothing, and ``forward`` compares plain indices."""
        if out_indices is None:
            out_indices = tuple(range(stages))
        if isinstance(out_indices, int):
            out_indices = (out_indices,)
        normalized = []
        for i in out_indices:
            if not -stages <= i < stages:
                raise ValueError(f'out_indices entry {i!r} is out of range for {stages} stages '
                                 f'(valid: {tuple(range(stages))} or negative indices)')
            normalized.append(i % stages)
        return tuple(normalized)

    @staticmethod
    def _stem(in_channels: int, width: int, stages: int) -> nn.Sequential:
        """3x3 s2 convs; four (x16) for the official 3-stage model, two (x4) for stages=4, so
        that the first stage starts at the stride the layout needs."""
        chans = [in_channels, width // 8, width // 4, width // 2, width] if stages == 3 else \
            [in_channels, width // 2, width]
        stem = []
        for i in range(len(chans) - 1):
            if i:
                stem.append(nn.ReLU())
            stem.append(ConvBN(chans[i], chans[i + 1], 3, 2, 1))
        return nn.Sequential(*stem)

    def _add_stages(self, drop_path_rate: float) -> None:
        """``blocks1`` ... ``blocksN`` under the official checkpoint's names, with stochastic
        depth rising linearly over all blocks."""
        settings = self.arch_settings
        widths, depths = settings['widths'], settings['depths']
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        for i in range(self.num_stages):
            layers = []
            if i:
                # Official layout: downsampling sits at the head of the next stage (blocksN.0-2).
                layers += [_conv_ffn(widths[i - 1]), PatchMerging(widths[i - 1], widths[i]),
                           _conv_ffn(widths[i])]
            start = sum(depths[:i])
            layers += [MobileMambaBlock(widths[i], settings['global_ratio'][i],
                                        settings['local_ratio'][i], settings['kernels'][i],
                                        dpr[start + j], self.mrffi_cfgs[i],
                                        self.global_op_cfgs[i], self.local_op_cfgs[i])
                       for j in range(depths[i])]
            self.add_module(f'blocks{i + 1}', nn.Sequential(*layers))

    @staticmethod
    def _per_stage(name: str, value, stages: int, derive) -> tuple:
        value = tuple(value)
        if len(value) == stages:
            return value
        if stages == 4 and len(value) == 3:
            return (derive(value),) + value
        raise ValueError(f'{name}={value!r} has {len(value)} entries; expected {stages} '
                         f'(or 3 when stages=4, to derive the extra first stage)')

    @staticmethod
    def _mrffi_cfgs(cfg, stages: int) -> List[dict]:
        if cfg is None:
            cfgs = [{} for _ in range(stages)]
        elif isinstance(cfg, dict):
            cfgs = [dict(cfg) for _ in range(stages)]
        else:
            cfgs = [dict(c) for c in cfg]
            if len(cfgs) == 3 and stages == 4:
                cfgs = [dict(cfgs[0])] + cfgs
            if len(cfgs) != stages:
                raise ValueError(f'mrffi_cfg has {len(cfgs)} per-stage dicts; expected {stages}')
        for c in cfgs:
            unknown = set(c) - set(MRFFI_FLAGS)
            if unknown:
                raise ValueError(f'mrffi_cfg keys {sorted(unknown)} are not valid; valid keys: '
                                 f'{list(MRFFI_FLAGS)}')
        return cfgs

    @staticmethod
    def _op_cfgs(name: str, cfg, stages: int) -> List[Optional[dict]]:
        """One operator cfg (or None: the paper's) per stage, from one for all or a list."""
        if cfg is None or isinstance(cfg, dict):
            return [None if cfg is None else dict(cfg) for _ in range(stages)]
        cfgs = [None if c is None else dict(c) for c in cfg]
        if len(cfgs) == 3 and stages == 4:
            cfgs = [cfgs[0]] + cfgs  # the derived first stage repeats the first, as mrffi_cfg
        if len(cfgs) != stages:
            raise ValueError(f'{name} has {len(cfgs)} per-stage entries; expected {stages}')
        return cfgs

    # ---- forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.patch_embed(x)
        outs = []
        for i in range(self.num_stages):
            for layer in getattr(self, f'blocks{i + 1}'):
                if self.with_cp and self.training and x.requires_grad:
                    x = checkpoint.checkpoint(layer, x, use_reentrant=False)
                else:
                    x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    # ---- OpenMMLab backbone interface ----------------------------------------------------------
    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.patch_embed] + [getattr(self, f'blocks{i}')
                                        for i in range(1, self.frozen_stages + 1)]
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    # ---- deployment ----------------------------------------------------------------------------
    @torch.no_grad()
    def fuse(self) -> 'MobileMamba':
        """Fold every Conv+BN pair into one conv, in place (for eval-mode inference).

        Also folds what becomes linear after that: a residual depthwise conv's identity into
        its centre tap, and the WTE scales into the convs before them. Call in eval mode: the
        BN running statistics are what gets folded.
        """
        if not self.fused:
            fuse_modules(self)
            self.fused = True
        return self

    switch_to_deploy = fuse


# ------------------------------------------------------------------------------------------------
# Official checkpoint conversion
# ------------------------------------------------------------------------------------------------
_BACKBONE_TOP = re.compile(r'^(patch_embed|blocks\d+)\.')
_WRAPPER_KEYS = ('state_dict', 'model', 'net', 'model_ema', 'state_dict_ema')


def convert_official_state_dict(state_dict: dict, *, head_prefix: str = 'head.',
                                backbone_prefix: str = 'backbone.') -> dict:
    """Official MobileMamba keys -> this suite's (mmpretrain ``ImageClassifier`` layout).

    * ``module.`` (DDP) and ``backbone.`` (official mmdet/mmseg checkpoints) prefixes are removed;
      backbone keys are identical to ours and come out under ``backbone_prefix``.
    * The classifier ``head.bn.*`` / ``head.l.*`` maps to our ``BNLinearClsHead`` under
      ``head_prefix`` (same inner names). The official † models distil through that same head;
      a ``head_dist.*`` (official ``distillation=True``, unused by the released models) passes
      through unchanged, so loading reports it as unexpected.
    * ``*.wt_filter`` / ``*.iwt_filter`` (fixed Haar filters the official code stores as frozen
      parameters) are checked against our Haar bank and dropped: we keep them as buffers.
    * Any other key (a downstream neck or decode head) passes through unchanged.

    A checkpoint wrapper (``{'state_dict': ...}``, ``{'model': ...}``, ``{'net': ...}``) is
    unwrapped. Pass ``backbone_prefix=''`` to load straight into a bare ``MobileMamba``.
    """
    sd = state_dict
    for key in _WRAPPER_KEYS:
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    out: Dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        k = key[len('module.'):] if key.startswith('module.') else key
        is_backbone = k.startswith('backbone.')
        if is_backbone:
            k = k[len('backbone.'):]
        if k.endswith(('.wt_filter', '.iwt_filter')):
            _check_haar(key, value)
            continue
        if is_backbone or _BACKBONE_TOP.match(k):
            out[backbone_prefix + k] = value
        elif k.startswith('head.'):
            out[head_prefix + k[len('head.'):]] = value
        else:
            out[k] = value
    return out


def _check_haar(key: str, value: torch.Tensor) -> None:
    if not torch.is_tensor(value) or value.dim() != 4 or value.shape[1:] != (1, 2, 2) or \
            value.shape[0] % 4:
        raise ValueError(f'{key}: expected a (4C, 1, 2, 2) Haar filter bank, got '
                         f'{getattr(value, "shape", type(value))}')
    ref = haar_filters(value.shape[0] // 4, torch.float64)
    if not torch.allclose(value.double(), ref, atol=1e-6):
        raise ValueError(f'{key}: not the db1 (Haar) filter bank this implementation uses')
