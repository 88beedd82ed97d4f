"""A non-finite loss stops the run (:class:`NonFiniteLossHook`) at the first NaN/Inf, before
anything of that iteration is saved: :class:`TrainingFailed` ``loss became nan at iter N
(epoch E)``.
"""
from __future__ import annotations

import math

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from .run_files import TrainingFailed


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stops the run at the first NaN/Inf loss, before any later hook (EMA, checkpoint) of that
    iteration runs: nothing trained on a non-finite loss is ever saved."""

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        value = float(loss.detach().float().sum()) if torch.is_tensor(loss) else float(loss)
        if get_world_size() > 1:  # every rank stops at the same iteration
            bad = torch.tensor([0.0 if math.isfinite(value) else 1.0])
            all_reduce(bad, op='max')
            if bad.item() and math.isfinite(value):
                value = float('nan')
        if math.isfinite(value):
            return
        what = 'nan' if math.isnan(value) else 'inf'
        epoch = f' (epoch {runner.epoch + 1})' if _by_epoch(runner) else ''
        raise TrainingFailed(f'loss became {what} at iter {runner.iter + 1}{epoch}')


def _by_epoch(runner) -> bool:
    return isinstance(runner.train_loop, EpochBasedTrainLoop)
