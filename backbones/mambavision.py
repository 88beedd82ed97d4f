"""MambaVision (Hatamizadeh & Kautz, "MambaVision: A Hybrid Mamba-Transformer Vision Backbone",
CVPR 2025) as one OpenMMLab backbone for mmpretrain, mmdet and mmseg.

Layout of this file (timm's order): building blocks, the token mixer, blocks and stages, the
backbone, the checkpoint converter, the variant table.

Parameter names follow the official checkpoints (NVlabs/MambaVision) wherever the module is the
same, so an official ImageNet or downstream checkpoint loads after a prefix change only
(``convert_official_state_dict``). The ablation flags of the paper's Table 4 and the hybrid
patterns of Table 5 are constructor arguments (``mixer_cfg``, ``hybrid_pattern``). The token
mixer is built from mmengine's ``MODELS`` registry, so ``mixer_cfg=dict(type=...)`` swaps in
any registered mixer that keeps the contract of ``MambaVisionMixer`` (docs/mixers.md).
"""
from __future__ import annotations

import math
import random
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .layers import DropPath, FrozenStagesMixin, LayerNorm2d
from .mixer_contract import resolve_mixer_type
from .ops import selective_scan

__all__ = ['MambaVision', 'MambaVisionMixer', 'check_mixer_flags', 'hybrid_layout',
           'convert_official_state_dict', 'ARCH_SETTINGS', 'HYBRID_PATTERNS']

CONV1_CHOICES = ('regular', 'causal')
FUSION_CHOICES = ('concat', 'gate', 'add')
HYBRID_PATTERNS = ('last_half', 'first_half', 'alternate_sm', 'alternate_ms', 'last_quarter',
                   'random')
MIXER_DEFAULTS = dict(conv1='regular', conv2=True, fusion='concat', dt_bias_twice=True, d_state=8,
                      d_conv=3, expand=1)
# The registered name of the paper's mixer: what a mixer_cfg without ``type`` builds.
PAPER_MIXER = 'MambaVisionMixer'


# ----------------------------------------------------------------------------- building blocks
class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (names as timm's Mlp, which the official checkpoints use)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class PatchEmbed(nn.Module):
    """Stem: two stride-2 conv3x3 + BN + ReLU (overall stride 4)."""

    def __init__(self, in_channels: int, in_dim: int, dim: int) -> None:
        super().__init__()
        # Indices 0..5 of this Sequential are the official checkpoint names (conv_down.0/1/3/4).
        self.conv_down = nn.Sequential(
            nn.Conv2d(in_channels, in_dim, 3, 2, 1, bias=False),
            nn.BatchNorm2d(in_dim, eps=1e-4),
            nn.ReLU(),
            nn.Conv2d(in_dim, dim, 3, 2, 1, bias=False),
            nn.BatchNorm2d(dim, eps=1e-4),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_down(x)


class Downsample(nn.Module):
    """Conv3x3 stride 2 doubling the width, without a norm (as the official code)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Sequential(nn.Conv2d(dim, 2 * dim, 3, 2, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(x)


class ConvBlock(nn.Module):
    """Residual conv3x3-BN-GELU(tanh)-conv3x3-BN block of stages 1 and 2."""

    def __init__(self, dim: int, drop_path: float = 0.,
                 layer_scale: Optional[float] = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.norm1 = nn.BatchNorm2d(dim, eps=1e-5)
        self.act1 = nn.GELU(approximate='tanh')
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.norm2 = nn.BatchNorm2d(dim, eps=1e-5)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim)) if layer_scale else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


class Attention(nn.Module):
    """Multi-head self-attention within a window (no q/k norm)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.num_heads, C // self.num_heads).permute(
            2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v,
                                           dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, L, C)))


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) with H, W multiples of the window -> (B * windows, wh * ww, C), row-major
    inside a window (the token order the official mixer scans)."""
    B, C, H, W = x.shape
    wh, ww = window
    x = x.view(B, C, H // wh, wh, W // ww, ww).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, wh * ww, C)


def window_reverse(x: torch.Tensor, window: tuple[int, int], H: int, W: int) -> torch.Tensor:
    """Inverse of ``window_partition``."""
    wh, ww = window
    C = x.shape[-1]
    x = x.reshape(-1, H // wh, W // ww, wh, ww, C).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(-1, C, H, W)


# ----------------------------------------------------------------------------- the token mixer
def check_mixer_flags(d_model: int, conv1: str = 'regular', conv2: bool = True,
                      fusion: str = 'concat', dt_bias_twice: bool = True, d_state: int = 8,
                      d_conv: int = 3, expand: float = 1) -> None:
    """Raise ValueError, naming the valid choices, for a bad mixer flag or combination."""
    if conv1 not in CONV1_CHOICES:
        raise ValueError(f'conv1 must be one of {CONV1_CHOICES}, got {conv1!r}')
    if not isinstance(conv2, bool):
        raise ValueError(f'conv2 must be True or False, got {conv2!r}')
    if fusion not in FUSION_CHOICES:
        raise ValueError(f'fusion must be one of {FUSION_CHOICES}, got {fusion!r}')
    if not isinstance(dt_bias_twice, bool):
        raise ValueError(f'dt_bias_twice must be True or False, got {dt_bias_twice!r}')
    if not isinstance(d_state, int) or not isinstance(d_conv, int) or d_state < 1 or d_conv < 1:
        raise ValueError(f'd_state and d_conv must be integers >= 1, got {d_state!r}, {d_conv!r}')
    d_inner = int(expand * d_model)
    if d_inner < 2 or d_inner % 2 or d_inner != expand * d_model:
        raise ValueError(f'expand * d_model must be an even integer >= 2 (it is split into the '
                         f'x and z branches), got {expand} * {d_model}')


@MODELS.register_module()
class MambaVisionMixer(nn.Module):
    """MambaVision's token mixer (paper Eq. 7) with the Table 4 ablation factors as flags.

    in_proj splits the tokens into an SSM branch x and a symmetric branch z (each d_inner / 2
    channels). x: conv1 -> SiLU -> selective scan -> y. z: conv2 -> SiLU (SiLU only when
    ``conv2=False``) -> z'. Then ``fusion``:

    - ``'concat'`` (official): out_proj(cat[y, z']), out_proj: Linear(d_inner -> d_model).
    - ``'gate'`` (Mamba's gating): out_proj(y * z'), out_proj: Linear(d_inner / 2 -> d_model).
    - ``'add'`` (not in the paper): out_proj(y + z'), out_proj: Linear(d_inner / 2 -> d_model).

    The C/2 split is kept in every row so that only the named factor changes (our reading of
    Table 4; the paper does not say). ``conv1='causal'`` pads only on the left (original Mamba);
    ``'regular'`` uses symmetric 'same' padding (official). ``dt_bias_twice=True`` keeps the
    official quirk: dt_proj adds its bias and the same bias goes to the scan as delta_bias.

    Contract (what any mixer named by ``mixer_cfg=dict(type=...)`` must keep; docs/mixers.md):
    the block builds it as ``MODELS.build(mixer_cfg, default_args=dict(d_model=C))`` with C the
    stage width (``dim * 4`` in stage 3, ``dim * 8`` in stage 4) and nothing else but the user's
    keys; ``forward`` maps the LayerNorm-ed tokens of one window, (B * windows, wh * ww, C) in
    row-major order, to a tensor of the same shape and dtype. The backbone's init then
    re-initialises its nn.Linear, nn.LayerNorm and nn.BatchNorm2d layers, as it does this one's.
    """

    def __init__(self, d_model: int, conv1: str = 'regular', conv2: bool = True,
                 fusion: str = 'concat', dt_bias_twice: bool = True, d_state: int = 8,
                 d_conv: int = 3, expand: float = 1, dt_rank: Union[int, str] = 'auto',
                 dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                 dt_scale: float = 1.0, conv_bias: bool = False, bias: bool = False) -> None:
        super().__init__()
        check_mixer_flags(d_model, conv1, conv2, fusion, dt_bias_twice, d_state, d_conv, expand)
        d_inner = int(expand * d_model)
        self.d_model, self.d_state, self.d_conv, self.d_inner = d_model, d_state, d_conv, d_inner
        self.conv1, self.conv2, self.fusion = conv1, conv2, fusion
        self.dt_bias_twice = dt_bias_twice
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == 'auto' else int(dt_rank)
        d_half = d_inner // 2

        self.in_proj = nn.Linear(d_model, d_inner, bias=bias)
        self.x_proj = nn.Linear(d_half, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_half, bias=True)
        # Mamba's dt init. MambaVision's model-wide init (MambaVision._official_init) overwrites
        # it, exactly as the official code does; a mixer built alone keeps Mamba's.
        std = self.dt_rank**-0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(d_half) * (math.log(dt_max) - math.log(dt_min)) +
                       math.log(dt_min)).clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32))
                                  .repeat(d_half, 1).contiguous())
        self.D = nn.Parameter(torch.ones(d_half))
        # Marked as official (timm's optimizer factory ignores the mark: it exempts 1-D
        # parameters, so D escapes weight decay and the 2-D A_log does not).
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(d_inner if fusion == 'concat' else d_half, d_model, bias=bias)
        # Depthwise convs without bias: the official `bias=conv_bias // 2` is 0 for True.
        self.conv1d_x = nn.Conv1d(d_half, d_half, d_conv, groups=d_half, bias=conv_bias)
        self.conv1d_z = (nn.Conv1d(d_half, d_half, d_conv, groups=d_half, bias=conv_bias)
                         if conv2 else None)

    def _conv(self, x: torch.Tensor, conv: nn.Conv1d, causal: bool) -> torch.Tensor:
        if causal:
            return F.conv1d(F.pad(x, (self.d_conv - 1, 0)), conv.weight, conv.bias,
                            groups=conv.groups)
        return F.conv1d(x, conv.weight, conv.bias, padding='same', groups=conv.groups)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, d_model) -> (B, L, d_model)."""
        x, z = self.in_proj(hidden_states).transpose(1, 2).chunk(2, dim=1)  # (B, d/2, L) each
        x = F.silu(self._conv(x, self.conv1d_x, self.conv1 == 'causal'))
        z = F.silu(self._conv(z, self.conv1d_z, False) if self.conv2 else z)
        dt, B, C = self.x_proj(x.transpose(1, 2)).split(
            [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj(dt) if self.dt_bias_twice else F.linear(dt, self.dt_proj.weight)
        y = selective_scan(
            x, dt.transpose(1, 2), -torch.exp(self.A_log.float()),
            B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), self.D.float(),
            z=None, delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        if self.fusion == 'concat':
            y = torch.cat([y, z], dim=1)
        elif self.fusion == 'gate':
            y = y * z
        else:
            y = y + z
        return self.out_proj(y.transpose(1, 2))

    def extra_repr(self) -> str:
        return (f'conv1={self.conv1!r}, conv2={self.conv2}, fusion={self.fusion!r}, '
                f'dt_bias_twice={self.dt_bias_twice}, d_state={self.d_state}, '
                f'd_conv={self.d_conv}, dt_rank={self.dt_rank}')


# ----------------------------------------------------------------------------- blocks and stages
class MambaVisionBlock(nn.Module):
    """Pre-norm block of stages 3-4: a token mixer or self-attention, then an MLP.

    The mixer is ``MODELS.build(mixer_cfg, default_args=dict(d_model=dim))``; ``mixer_cfg`` has
    its ``type`` (the backbone resolves it).
    """

    def __init__(self, dim: int, num_heads: int, attention: bool, mixer_cfg: dict,
                 mlp_ratio: float = 4., qkv_bias: bool = True, drop: float = 0.,
                 attn_drop: float = 0., drop_path: float = 0.,
                 layer_scale: Optional[float] = None) -> None:
        super().__init__()
        self.attention = attention
        self.norm1 = nn.LayerNorm(dim)
        self.mixer = (Attention(dim, num_heads, qkv_bias, attn_drop, drop)
                      if attention else MODELS.build(mixer_cfg, default_args=dict(d_model=dim)))
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        if layer_scale:
            self.gamma_1 = nn.Parameter(layer_scale * torch.ones(dim))
            self.gamma_2 = nn.Parameter(layer_scale * torch.ones(dim))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixer(self.norm1(x))
        x = x + self.drop_path(y if self.gamma_1 is None else self.gamma_1 * y)
        y = self.mlp(self.norm2(x))
        return x + self.drop_path(y if self.gamma_2 is None else self.gamma_2 * y)


def hybrid_layout(depth: int, pattern: str = 'last_half',
                  rng: Optional[random.Random] = None) -> list[bool]:
    """Which blocks of a hybrid stage attend (True) rather than mix (False); Table 5.

    ``last_half`` is the official rule: the last floor(N/2) blocks attend (odd N included).
    ``first_half`` mirrors it; ``last_quarter`` makes the last floor(N/4) blocks attend;
    ``alternate_sm`` is S M S M ... and ``alternate_ms`` M S M S ... literally;
    ``random`` attends floor(N/2) blocks at positions drawn from ``rng``.
    """
    if pattern not in HYBRID_PATTERNS:
        raise ValueError(f'hybrid_pattern must be one of {HYBRID_PATTERNS}, got {pattern!r}')
    half = depth // 2
    if pattern == 'last_half':
        return [i >= depth - half for i in range(depth)]
    if pattern == 'first_half':
        return [i < half for i in range(depth)]
    if pattern == 'alternate_sm':
        return [i % 2 == 0 for i in range(depth)]
    if pattern == 'alternate_ms':
        return [i % 2 == 1 for i in range(depth)]
    if pattern == 'last_quarter':
        return [i >= depth - depth // 4 for i in range(depth)]
    chosen = set((rng or random.Random(0)).sample(range(depth), half))
    return [i in chosen for i in range(depth)]


def _pair(window: Union[int, Sequence[int]]) -> tuple[int, int]:
    return (int(window), int(window)) if isinstance(window, int) else tuple(int(w) for w in window)


class MambaVisionStage(nn.Module):
    """One stage: its blocks, then (stages 1-3) the downsample.

    Hybrid stages (3, 4) pad the map to a multiple of the window and run every block, mixer and
    attention alike, on windows; the result is cropped back to the input size.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size, conv: bool,
                 downsample: bool, attention: Sequence[bool], mixer_cfg: dict,
                 mlp_ratio: float = 4., qkv_bias: bool = True, drop: float = 0.,
                 attn_drop: float = 0., drop_path: Sequence[float] = (),
                 layer_scale: Optional[float] = None,
                 layer_scale_conv: Optional[float] = None) -> None:
        super().__init__()
        self.conv = conv
        self.window_size = _pair(window_size)
        self.with_cp = False
        if conv:
            self.blocks = nn.ModuleList(
                ConvBlock(dim, drop_path[i], layer_scale_conv) for i in range(depth))
        else:
            self.blocks = nn.ModuleList(
                MambaVisionBlock(dim, num_heads, attention[i], mixer_cfg, mlp_ratio, qkv_bias,
                                 drop, attn_drop, drop_path[i], layer_scale)
                for i in range(depth))
        self.downsample = Downsample(dim) if downsample else None

    def _run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = cp.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (this stage's output, the next stage's input)."""
        if self.conv:
            x = self._run_blocks(x)
        else:
            H, W = x.shape[-2:]
            wh, ww = self.window_size
            pad_b, pad_r = (wh - H % wh) % wh, (ww - W % ww) % ww
            if pad_b or pad_r:
                x = F.pad(x, (0, pad_r, 0, pad_b))
            Hp, Wp = x.shape[-2:]
            x = window_reverse(self._run_blocks(window_partition(x, self.window_size)),
                               self.window_size, Hp, Wp)
            if pad_b or pad_r:
                x = x[:, :, :H, :W].contiguous()
        return x, (x if self.downsample is None else self.downsample(x))


# ----------------------------------------------------------------------------- the backbone
@MODELS.register_module()
class MambaVision(FrozenStagesMixin, BaseModule):
    """MambaVision backbone: conv stem, two conv stages, two hybrid mixer/attention stages.

    Args:
        arch: 'T', 'T2', 'S', 'B', 'L', 'L2' (case-insensitive) or a dict with depths,
            num_heads, dim, in_dim, drop_path_rate, layer_scale[, mlp_ratio, layer_scale_conv].
        in_channels: input channels.
        mixer_cfg: the token mixer of the mixer blocks. Without ``type`` (or with
            ``type='MambaVisionMixer'``): the paper's mixer with these flags (conv1, conv2,
            fusion, dt_bias_twice, d_state, d_conv, expand), missing keys taking the official
            values. With ``type`` naming another registered mixer: that class, built with the
            user's keys and ``d_model`` only (contract: ``MambaVisionMixer``, docs/mixers.md).
        hybrid_pattern: where attention sits in stages 3-4 (``HYBRID_PATTERNS``, Table 5).
        pattern_seed: seed of the ``'random'`` pattern.
        window_size: per-stage window (int or (h, w)); used by stages 3 and 4.
        out_indices: stages whose outputs (before the downsample) are returned; widths
            dim * 2**i.
        frozen_stages: stem and the first ``frozen_stages`` stages are frozen (-1: none).
        norm_eval: keep BatchNorm layers in eval mode while training.
        out_norm: a LayerNorm2d per output, ``outnorm{i}`` (the official downstream wrapper).
        final_norm: BatchNorm2d ``norm`` on the stage-4 output (the official classifier's norm
            before pooling; needs 3 in out_indices).
        drop_path_rate: stochastic depth, rising linearly over all blocks (None: the arch's).
        drop_rate, attn_drop_rate, qkv_bias, mlp_ratio: as the official model (mlp_ratio None:
            the arch's, 4 by default).
        with_cp: gradient checkpointing of every block.
        init_cfg: e.g. dict(type='Pretrained', checkpoint=..., prefix='backbone.').
    """

    def __init__(self, arch: Union[str, dict] = 'T', in_channels: int = 3,
                 mixer_cfg: Optional[dict] = None, hybrid_pattern: str = 'last_half',
                 pattern_seed: int = 0, window_size: Sequence = (8, 8, 14, 7),
                 out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, out_norm: bool = False, final_norm: bool = False,
                 drop_path_rate: Optional[float] = None, drop_rate: float = 0.,
                 attn_drop_rate: float = 0., qkv_bias: bool = True,
                 mlp_ratio: Optional[float] = None, with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = self._resolve_arch(arch)
        mixer_cfg = {'type': PAPER_MIXER, **(mixer_cfg or {})}
        if 'd_model' in mixer_cfg:
            raise ValueError('mixer_cfg must not set d_model: each block passes its own width')
        # The paper's defaults are its own flags: merged and checked for the paper's mixer
        # only; another mixer gets the user's keys as they are.
        self.uses_paper_mixer = resolve_mixer_type(
            mixer_cfg, 'mixer_cfg', 'd_model') is MambaVisionMixer
        if self.uses_paper_mixer:
            flags = {k: v for k, v in mixer_cfg.items() if k not in ('type', '_scope_')}
            unknown = set(flags) - set(MIXER_DEFAULTS)
            if unknown:
                raise ValueError(f'unknown mixer_cfg keys {sorted(unknown)}; valid keys: '
                                 f'{list(MIXER_DEFAULTS)}')
            mixer_cfg = {**mixer_cfg, **MIXER_DEFAULTS, **flags}
        self.mixer_cfg = mixer_cfg
        if hybrid_pattern not in HYBRID_PATTERNS:
            raise ValueError(f'hybrid_pattern must be one of {HYBRID_PATTERNS}, '
                             f'got {hybrid_pattern!r}')
        if len(window_size) != 4:
            raise ValueError(f'window_size needs one entry per stage (4), got {window_size!r}')
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(i + 4 if i < 0 else i for i in out_indices)
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty subset of 0..3, got {out_indices}')
        if frozen_stages not in range(-1, 5):
            raise ValueError(f'frozen_stages must be in -1..4, got {frozen_stages}')
        if final_norm and 3 not in out_indices:
            raise ValueError('final_norm normalises the stage-4 output: out_indices must hold 3')
        if final_norm and out_norm:
            raise ValueError('final_norm (classifier BatchNorm) and out_norm (downstream '
                             'LayerNorm2d) both normalise the stage-4 output: choose one')

        depths, dim = list(arch['depths']), int(arch['dim'])
        if self.uses_paper_mixer:
            # Checked here too: a pattern may leave a stage without any mixer to check them.
            check_mixer_flags(dim * 4, **{k: self.mixer_cfg[k] for k in MIXER_DEFAULTS})
        self.arch = arch
        self.dims = [dim * 2**i for i in range(4)]
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.out_norm = out_norm
        self.final_norm = final_norm
        self.hybrid_pattern = hybrid_pattern
        self.pattern_seed = pattern_seed
        self.drop_path_rate = arch['drop_path_rate'] if drop_path_rate is None else drop_path_rate
        mlp_ratio = arch.get('mlp_ratio', 4.) if mlp_ratio is None else mlp_ratio

        self.patch_embed = PatchEmbed(in_channels, int(arch['in_dim']), dim)
        # On the CPU explicitly, so that building under `torch.device('meta')` works.
        dpr = torch.linspace(0, self.drop_path_rate, sum(depths), device='cpu').tolist()
        rng = random.Random(pattern_seed)  # drawn stage 3 then stage 4: one seed, one model
        self.levels = nn.ModuleList()
        self.layouts: list[str] = []
        for i, depth in enumerate(depths):
            conv = i < 2
            attention = [False] * depth if conv else hybrid_layout(depth, hybrid_pattern, rng)
            self.layouts.append('C' * depth if conv else
                                ''.join('S' if a else 'M' for a in attention))
            self.levels.append(
                MambaVisionStage(self.dims[i], depth, arch['num_heads'][i], window_size[i],
                                 conv=conv, downsample=i < 3, attention=attention,
                                 mixer_cfg=self.mixer_cfg, mlp_ratio=mlp_ratio,
                                 qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                                 drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])],
                                 layer_scale=arch.get('layer_scale'),
                                 layer_scale_conv=arch.get('layer_scale_conv')))
        self.with_cp = with_cp
        if final_norm:
            self.norm = nn.BatchNorm2d(self.dims[3])
        if out_norm:
            for i in out_indices:
                self.add_module(f'outnorm{i}', LayerNorm2d(self.dims[i]))
        self.apply(self._official_init)
        self._freeze_stages()

    @staticmethod
    def _resolve_arch(arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.upper()
            if key not in ARCH_SETTINGS:
                raise ValueError(f'arch must be one of {list(ARCH_SETTINGS)} or a dict, '
                                 f'got {arch!r}')
            return dict(ARCH_SETTINGS[key])
        arch = dict(arch)
        required = {'depths', 'num_heads', 'dim', 'in_dim', 'drop_path_rate', 'layer_scale'}
        optional = {'mlp_ratio', 'layer_scale_conv'}
        if not required <= set(arch) or set(arch) - required - optional:
            raise ValueError(f'an arch dict needs exactly {sorted(required)} (optional: '
                             f'{sorted(optional)}), got {sorted(arch)}')
        if len(arch['depths']) != 4 or len(arch['num_heads']) != 4:
            raise ValueError('depths and num_heads need 4 entries (one per stage)')
        return arch

    @staticmethod
    def _official_init(m: nn.Module) -> None:
        # The official model re-initialises every Linear after construction, dt_proj included
        # (its weight becomes trunc-normal 0.02 and its bias 0, overriding Mamba's dt init).
        # Kept so that training from scratch starts as the published models did.
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def with_cp(self) -> bool:
        return self._with_cp

    @with_cp.setter
    def with_cp(self, value: bool) -> None:
        self._with_cp = bool(value)
        for level in self.levels:
            level.with_cp = self._with_cp

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed] + [self.levels[i] for i in range(self.frozen_stages)]
        frozen += [getattr(self, f'outnorm{i}') for i in range(self.frozen_stages)
                   if self.out_norm and i in self.out_indices]
        if self.final_norm and self.frozen_stages == 4:
            frozen.append(self.norm)
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.patch_embed(x)
        outs = []
        for i, level in enumerate(self.levels):
            out, x = level(x)
            if i in self.out_indices:
                if self.final_norm and i == 3:
                    out = self.norm(out)
                if self.out_norm:
                    out = getattr(self, f'outnorm{i}')(out)
                outs.append(out)
            if i == max(self.out_indices):
                break  # later stages would feed no output
        return tuple(outs)


# ----------------------------------------------------------------------------- checkpoints
def convert_official_state_dict(state_dict: dict) -> dict:
    """Official MambaVision weights -> this suite's names.

    Accepts the official ImageNet layout (``patch_embed.*``, ``levels.*``, ``norm.*``,
    ``head.*``; optionally under ``module.``) and the official mmdet/mmseg layout (everything
    under ``backbone.``, plus the detector's/segmentor's own keys). The backbone's names are
    the official ones, so an ImageNet checkpoint becomes an mmpretrain ImageClassifier one:
    ``backbone.<name>`` for the backbone and its final BatchNorm ``norm``, ``head.fc.*`` for the
    classifier (LinearClsHead). A downstream checkpoint is returned unchanged but for
    ``module.``: its neck/head keys are mmdet's/mmseg's own.
    """
    sd = {(k[len('module.'):] if k.startswith('module.') else k): v
          for k, v in state_dict.items()}
    if any(k.startswith('backbone.') for k in sd):
        return sd
    out = {}
    for k, v in sd.items():
        if k.startswith('head.'):
            out['head.fc.' + k[len('head.'):]] = v
        else:
            out['backbone.' + k] = v
    return out


# ----------------------------------------------------------------------------- variants
# Official widths/depths (NVlabs/MambaVision mamba_vision.py); Table 1 of the paper.
ARCH_SETTINGS = {
    'T': dict(depths=[1, 3, 8, 4], num_heads=[2, 4, 8, 16], dim=80, in_dim=32,
              drop_path_rate=0.2, layer_scale=None),
    'T2': dict(depths=[1, 3, 11, 4], num_heads=[2, 4, 8, 16], dim=80, in_dim=32,
               drop_path_rate=0.2, layer_scale=None),
    'S': dict(depths=[3, 3, 7, 5], num_heads=[2, 4, 8, 16], dim=96, in_dim=64,
              drop_path_rate=0.2, layer_scale=None),
    'B': dict(depths=[3, 3, 10, 5], num_heads=[2, 4, 8, 16], dim=128, in_dim=64,
              drop_path_rate=0.3, layer_scale=1e-5),
    'L': dict(depths=[3, 3, 10, 5], num_heads=[4, 8, 16, 32], dim=196, in_dim=64,
              drop_path_rate=0.3, layer_scale=1e-5),
    'L2': dict(depths=[3, 3, 12, 5], num_heads=[4, 8, 16, 32], dim=196, in_dim=64,
               drop_path_rate=0.3, layer_scale=1e-5),
}
