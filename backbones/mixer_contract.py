"""Replaceable token mixers: how a backbone resolves the ``type`` of a mixer config in mmengine's
``MODELS`` registry, and a check that a built mixer keeps the contract of docs/mixers.md.

MambaVision builds its token mixer from ``mixer_cfg``, MobileMamba the two operators of each
MRFFI from ``global_op_cfg`` / ``local_op_cfg``. Each resolves the ``type`` here before building
anything, so that a typo fails at once, in one line, with the registered choices.
"""
from __future__ import annotations

import inspect
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS

__all__ = ['registered_mixers', 'resolve_mixer_type', 'check_mixer_contract']


def _takes(cls, arg: str) -> bool:
    """Whether ``cls`` is an nn.Module whose constructor takes ``arg`` by name (the backbones
    pass the width as a keyword)."""
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        return False
    try:
        param = inspect.signature(cls).parameters.get(arg)
    except (TypeError, ValueError):  # a constructor inspect cannot read
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def _visible_registries(scope: Optional[str] = None) -> list:
    """The registries ``MODELS.build`` searches now: the default scope's (or ``scope``'s), then
    its parents up to mmengine's root."""
    with MODELS.switch_scope_and_registry(scope) as registry:
        chain = []
        while registry is not None:
            chain.append(registry)
            registry = registry.parent
    return chain


def registered_mixers(arg: str, scope: Optional[str] = None) -> list[str]:
    """Sorted names of the registered modules a backbone that passes ``arg`` can build."""
    names = set()
    for registry in _visible_registries(scope):
        names.update(name for name, cls in registry.module_dict.items() if _takes(cls, arg))
    return sorted(names)


def resolve_mixer_type(cfg: dict, key: str, arg: str, what: str = 'mixer') -> type:
    """The class ``cfg['type']`` names (a registered name, as ``MODELS.build`` looks it up, or an
    nn.Module class), checked to take ``arg``, the width the backbone passes.

    Raises a one-line ValueError naming the bad value and the registered choices that take
    ``arg``; ``key`` (e.g. ``'mixer_cfg'``) and ``what`` (e.g. ``'mixer'``) word it.
    """
    type_, scope = cfg['type'], cfg.get('_scope_')
    if isinstance(type_, str):
        with MODELS.switch_scope_and_registry(scope) as registry:
            cls = registry.get(type_)
    else:
        cls = type_
    if cls is not None and _takes(cls, arg):
        return cls
    choices = ', '.join(registered_mixers(arg, scope)) or 'none'
    if cls is None:
        raise ValueError(f'{key} type {type_!r} is not a registered {what}; registered: {choices}')
    raise ValueError(f'{key} type {type_!r} does not fit: it is not an nn.Module whose '
                     f'constructor takes {arg!r}; registered: {choices}')


def check_mixer_contract(module: nn.Module, channels: int, layout: str = 'tokens',
                         sizes: Sequence[Union[int, tuple[int, int]]] = (),
                         batch: int = 2) -> None:
    """Run ``module`` once per size on random input and raise ValueError, in one line, unless
    each output is a tensor of the input's shape, dtype and device.

    ``layout='tokens'``: MambaVision's mixer, (B, L, channels) -> same, ``sizes`` are token
    counts L (default 16 and 15: a square and a non-square window). ``layout='map'``:
    MobileMamba's operators, (B, channels, H, W) -> same, ``sizes`` are (H, W) (default (7, 7)
    and (4, 3): stage maps may be odd and non-square). The module is run without gradients in
    its current train/eval mode, on the device and dtype of its first parameter (CPU float32
    without one).
    """
    if layout not in ('tokens', 'map'):
        raise ValueError(f"layout must be 'tokens' or 'map', got {layout!r}")
    first = next(module.parameters(), None)
    device = first.device if first is not None else torch.device('cpu')
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    if layout == 'tokens':
        shapes = [(batch, int(n), channels) for n in (sizes or (16, 15))]
    else:
        shapes = [(batch, channels, int(h), int(w)) for h, w in (sizes or ((7, 7), (4, 3)))]
    name = type(module).__name__
    for shape in shapes:
        x = torch.randn(shape, device=device, dtype=dtype)
        with torch.no_grad():
            y = module(x)
        if not torch.is_tensor(y):
            raise ValueError(f'{name} returned {type(y).__name__} for input {tuple(shape)}; '
                             f'the contract is one tensor of the same shape')
        if y.shape != x.shape or y.dtype != x.dtype or y.device != x.device:
            raise ValueError(f'{name} maps {tuple(shape)} {dtype} on {device} to '
                             f'{tuple(y.shape)} {y.dtype} on {y.device}; the contract is the '
                             f'same shape, dtype and device')
