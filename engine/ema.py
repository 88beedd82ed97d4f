"""The EMA of the official recipes, updated once per optimizer step at any accumulation.

mmengine's ``EMAHook`` averages at every ``interval``-th iteration counted from the first, so
with ``interval`` = the accumulation count it averages right after the first micro-batch of each
accumulated step: the average lags one optimizer step behind and starts from the untrained
weights. ``StepEMAHook`` averages after each iteration at which the optimizer stepped
(``OptimWrapper.should_update()``, which also covers the short last step of an epoch), so the
EMA sees the same weights, as often, at every world size and accumulation.
"""
from __future__ import annotations

from mmengine.hooks import EMAHook
from mmengine.registry import HOOKS

# The config types that keep an EMA of the weights (checkpoints then hold two copies).
EMA_HOOK_TYPES = ('EMAHook', 'StepEMAHook')


@HOOKS.register_module()
class StepEMAHook(EMAHook):
    """``EMAHook`` that averages once per optimizer step (leave ``interval`` at 1)."""

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.optim_wrapper.should_update():
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
