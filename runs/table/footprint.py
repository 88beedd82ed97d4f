"""The disk a run's checkpoints take, known before it starts.

A checkpoint mmengine writes holds the model's state (fp32 parameters and buffers; AMP keeps fp32
master weights), the optimizer's state (AdamW and LAMB: two moments per trainable parameter; SGD
with momentum: one) and, with an ``EMAHook``, a second copy of the state (the averaged weights go
into ``state_dict``, the raw ones into ``ema_state_dict``). The best checkpoint (``save_best``)
is written without the optimizer. The run keeps ``max_keep_ckpts`` regular checkpoints plus the
best one, and briefly one more while a new one is written before the oldest is removed.

    from runs.table.footprint import checkpoint_footprint, table_footprint
    checkpoint_footprint(cfg)  # dict(bytes_per_checkpoint, kept, total_bytes, peak_bytes, ...)
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch
from mmengine.config import Config

from backbones.build import build_model_from_config
from engine.ema import EMA_HOOK_TYPES

# Moments per trainable parameter in each optimizer's state.
OPTIMIZER_MOMENTS = {'AdamW': 2, 'Adam': 2, 'Lamb': 2, 'SGD': 1}
# Pickle and metadata per stored tensor (names, sizes, the optimizer's per-parameter step).
TENSOR_OVERHEAD_BYTES = 600


def _state_bytes(model: torch.nn.Module) -> tuple[int, int, int]:
    """(bytes of the fp32 state, trainable parameter count, tensors in the state)."""
    state = model.state_dict()
    nbytes = sum(t.numel() * (4 if t.is_floating_point() else t.element_size())
                 for t in state.values())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return nbytes, trainable, len(state)


def checkpoint_footprint(cfg: Config, model: Optional[torch.nn.Module] = None) -> dict:
    """Expected checkpoint bytes of a run of ``cfg`` (the model is built unless given)."""
    model = build_model_from_config(cfg) if model is None else model
    state_bytes, trainable, tensors = _state_bytes(model)
    copies = 2 if any(h.get('type') in EMA_HOOK_TYPES for h in cfg.get('custom_hooks') or []) else 1
    opt = cfg.optim_wrapper.optimizer
    moments = OPTIMIZER_MOMENTS.get(opt.type, 2)
    if opt.type == 'SGD' and not opt.get('momentum'):
        moments = 0
    n_trainable_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    weights = copies * (state_bytes + tensors * TENSOR_OVERHEAD_BYTES)
    optimizer = moments * 4 * trainable + n_trainable_tensors * TENSOR_OVERHEAD_BYTES
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    max_keep = hook.get('max_keep_ckpts', -1)
    bounded = max_keep is not None and max_keep > 0
    best = 1 if hook.get('save_best') else 0
    last_bytes = weights + optimizer
    kept = max_keep if bounded else None
    total = kept * last_bytes + best * weights if bounded else None
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        bytes_per_checkpoint=last_bytes,
        best_bytes=weights if best else 0,
        kept=kept,
        best=best,
        total_bytes=total,
        # one more regular checkpoint exists while the newest is written and the oldest not yet
        # removed
        peak_bytes=None if total is None else total + last_bytes,
    )


def table_footprint(footprints: Iterable[dict]) -> dict:
    """The table's total over its runs' footprints (None if any run is unbounded)."""
    footprints = list(footprints)
    if any(f['total_bytes'] is None for f in footprints):
        return dict(total_bytes=None, peak_bytes=None, runs=len(footprints))
    return dict(total_bytes=sum(f['total_bytes'] for f in footprints),
                # runs of a table go one at a time: one run's transient extra checkpoint at most
                peak_bytes=sum(f['total_bytes'] for f in footprints)
                + max((f['bytes_per_checkpoint'] for f in footprints), default=0),
                runs=len(footprints))


def format_bytes(n: Optional[int]) -> str:
    if n is None:
        return 'unbounded'
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if n < 1000 or unit == 'TB':
            return f'{n:.1f} {unit}' if unit != 'B' else f'{n} B'
        n /= 1000
    return f'{n:.1f} TB'
