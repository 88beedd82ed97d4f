"""Parameters and FLOPs of a model: what ``tools/complexity.py`` prints and the reporter's
params/FLOPs columns show.

FLOPs are multiply-accumulates (MACs), the unit the papers call FLOPs: everything but the
selective scan is counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC, so
halved), the scan analytically by ``backbones.ops.count_scan_flops`` (which skips computing it).
Attention (``scaled_dot_product_attention``) is counted; fvcore, which the published numbers
were most likely measured with, skips it: the ``w/o attn`` column shows that convention.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from . import MODEL_TYPES
from .ops import count_scan_flops


def _sdpa_macs_formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _custom_mapping() -> dict:
    # On CPU, scaled_dot_product_attention dispatches to an op FlopCounterMode does not know
    # (it counts the CUDA flash/efficient ones only), which would silently count attention as 0.
    op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    return {op: _sdpa_macs_formula} if op is not None else {}


def _as_4d(shape) -> tuple:
    """(..., L, d) -> (batch, heads, L, d), folding any leading dims into batch * heads."""
    lead = 1
    for s in shape[:-2]:
        lead *= s
    return (1, lead) + tuple(shape[-2:])


class _AttentionCounter(TorchFunctionMode):
    """MACs of every ``F.scaled_dot_product_attention`` call, whichever kernel then runs it
    (the CPU math fallback shows up as plain bmm ops, indistinguishable from others)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = (kwargs[n] if n in kwargs else args[i]
                       for i, n in enumerate(('query', 'key', 'value')))
            self.macs += sdpa_flop_count(*(_as_4d(t.shape) for t in (q, k, v))) // 2
        return func(*args, **kwargs)


def _input_shape(input_shape: Union[int, Sequence[int]]) -> tuple[int, int, int]:
    """224 -> (3, 224, 224); (H, W) -> (3, H, W); (C, H, W) stays."""
    if isinstance(input_shape, int):
        return (3, input_shape, input_shape)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 1:
        return (3, shape[0], shape[0])
    if len(shape) == 2:
        return (3, ) + shape
    if len(shape) == 3:
        return shape
    raise ValueError(f'input shape must be S, (H, W) or (C, H, W), got {input_shape!r}')


def _run(model: nn.Module, x: torch.Tensor):
    """One forward of whatever ``model`` is: an OpenMMLab model in 'tensor' mode, or a module."""
    from mmengine.model import BaseModel
    if not isinstance(model, BaseModel):
        return model(x)
    module = type(model).__module__
    if module.startswith('mmdet'):
        # Two-stage detectors' 'tensor' mode runs the RPN's predict, which reads image metas.
        from mmdet.structures import DetDataSample
        H, W = x.shape[-2:]
        meta = dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W),
                    batch_input_shape=(H, W), scale_factor=(1., 1.))
        samples = [DetDataSample(metainfo=meta) for _ in range(x.shape[0])]
        return model(x, samples, mode='tensor')
    return model(x, mode='tensor')


def measure_complexity(model: nn.Module, input_shape: Union[int, Sequence[int]] = 224,
                       batch_size: int = 1) -> dict:
    """Params and MACs of one forward of ``model`` (eval mode, no grad) on a random input.

    ``input_shape``: S, (H, W) or (C, H, W). Returns ``params`` (count), ``flops`` (MACs, the
    papers' "FLOPs"), and their parts ``scan_flops`` (selective scans), ``attn_flops``
    (scaled-dot-product attention) and ``scan_calls``.
    """
    shape = _input_shape(input_shape)
    params = sum(p.numel() for p in model.parameters())
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device('cpu')
    x = torch.randn(batch_size, *shape, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), count_scan_flops() as scans, _AttentionCounter() as attn, \
                FlopCounterMode(display=False, custom_mapping=_custom_mapping()) as counter:
            _run(model, x)
    finally:
        model.train(was_training)
    other = counter.get_total_flops() // 2
    return dict(params=params, flops=other + scans.flops, scan_flops=scans.flops,
                attn_flops=attn.macs, scan_calls=scans.calls)


# ----------------------------------------------------------------------------- building models
class _ClassifierView(nn.Module):
    """Backbone -> GAP -> Linear: an ImageClassifier's compute without mmpretrain (for --arch)."""

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def build_variant(model: str, arch: str, num_classes: int = 1000) -> nn.Module:
    """A backbone variant; for MambaVision with its official classifier when num_classes > 0."""
    from mmengine.registry import MODELS  # the backbones registered themselves there
    if model not in MODEL_TYPES:
        raise ValueError(f'--model must be one of {list(MODEL_TYPES)}, got {model!r}')
    if model == 'mambavision' and num_classes > 0:
        backbone = MODELS.build(dict(type='MambaVision', arch=arch, out_indices=(3, ),
                                     final_norm=True))
        return _ClassifierView(backbone, backbone.dims[3], num_classes)
    return MODELS.build(dict(type=MODEL_TYPES[model], arch=arch))
