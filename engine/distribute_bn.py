"""timm's ``distribute_bn`` as the official MambaVision trainer runs it (yaml ``dist_bn:
reduce``): after every training epoch, before validation and the checkpoint, each process's
BatchNorm running statistics, its model's and its EMA model's, are averaged over the processes
(``reduce``) or taken from rank 0 (``broadcast``). Without it each rank validates and rank 0 saves
statistics of its own shard of the data. MobileMamba's trainer leaves it off (``dist_BN = ''``).
"""
from __future__ import annotations

import torch.nn as nn
from mmengine.dist import all_reduce, broadcast, is_distributed
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

MODES = ('reduce', 'broadcast')


def distribute_bn(model: nn.Module, mode: str = 'reduce') -> int:
    """Make every process's BatchNorm running means and variances equal; the buffers touched."""
    if mode not in MODES:
        raise ValueError(f'distribute_bn mode {mode!r}; valid: {", ".join(MODES)}')
    touched = 0
    for name, buffer in model.named_buffers():
        if name.endswith(('running_mean', 'running_var')):
            if mode == 'reduce':
                all_reduce(buffer, op='mean')
            else:
                broadcast(buffer, 0)
            touched += 1
    return touched


@HOOKS.register_module()
class DistributeBNHook(Hook):
    """Runs :func:`distribute_bn` on the model and every EMA model after each training epoch
    (before the checkpoint hook, VERY_LOW, and the validation loop); nothing in one process."""

    priority = 'NORMAL'

    def __init__(self, mode: str = 'reduce'):
        if mode not in MODES:
            raise ValueError(f'DistributeBNHook mode {mode!r}; valid: {", ".join(MODES)}')
        self.mode = mode

    def after_train_epoch(self, runner) -> None:
        if not is_distributed():
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        distribute_bn(model, self.mode)
        for hook in runner.hooks:
            if isinstance(hook, EMAHook):
                distribute_bn(hook.ema_model.module, self.mode)
