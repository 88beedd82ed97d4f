"""A config's lr at every iteration, computed by mmengine's own parameter schedulers, stepped as
its runner steps them, without data or a model.

The runner builds ``cfg.param_scheduler`` with ``end`` defaulting to the loop's length and the
epoch length of the train dataloader (``convert_to_iter_based`` schedulers turn epochs into
iterations with it); before each iteration ``RuntimeInfoHook`` logs the optimizer's lr, after it
``ParamSchedulerHook`` steps the iteration-based schedulers, and after each epoch the
epoch-based ones. :func:`lr_curve` does exactly that on an optimizer built from the config's
``optim_wrapper`` over one parameter, so the lr it returns for iteration ``i`` is the lr the
run logs at iteration ``i`` (the lr after ``i - 1`` steps).
"""
from __future__ import annotations

import copy
import math
from typing import Optional


def epoch_length(cfg, dataset_size: int, gpus: int) -> int:
    """``len(train_dataloader)`` on each of ``gpus`` ranks for a dataset of ``dataset_size``
    samples: a ``RepeatDataset`` wrapper multiplies it by its ``times``; mmengine's
    DefaultSampler gives each rank ceil(N / gpus) samples (round_up, its default), then
    ``batch_size`` per batch, the last one dropped when the loader's ``drop_last`` is set."""
    loader = cfg.train_dataloader
    dataset = loader.get('dataset') or {}
    while isinstance(dataset, dict) and 'dataset' in dataset:
        if dataset.get('type') == 'RepeatDataset':
            dataset_size *= int(dataset.get('times', 1))
        dataset = dataset['dataset']
    sampler = loader.get('sampler') or {}
    per_rank = math.ceil(dataset_size / gpus) if sampler.get('round_up', True) \
        else len(range(0, dataset_size, gpus))
    batch = loader.batch_size
    return per_rank // batch if loader.get('drop_last', False) else math.ceil(per_rank / batch)


def _optim_wrapper(cfg):
    import torch
    from mmengine.optim import build_optim_wrapper

    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    # The schedule does not depend on AMP; mmengine's AmpOptimWrapper refuses a CPU.
    if wrapper_cfg.get('type') == 'AmpOptimWrapper':
        wrapper_cfg['type'] = 'OptimWrapper'
        wrapper_cfg.pop('loss_scale', None)
        wrapper_cfg.pop('dtype', None)
    wrapper_cfg.pop('paramwise_cfg', None)  # one parameter: one group, at the base lr
    return build_optim_wrapper(torch.nn.Linear(1, 1, bias=False), wrapper_cfg)


def lr_curve(cfg, iterations: int, epoch_len: Optional[int] = None) -> list[float]:
    """The lr (first parameter group) the run of ``cfg`` logs at iterations 1..``iterations``.

    ``epoch_len``: iterations per epoch (required when a scheduler counts epochs; see
    :func:`epoch_length`).
    """
    from mmengine.registry import PARAM_SCHEDULERS

    wrapper = _optim_wrapper(cfg)
    loop = cfg.train_cfg
    by_epoch_loop = 'max_epochs' in loop
    schedulers = cfg.get('param_scheduler') or []
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    built = []
    for sched in schedulers:
        sched = copy.deepcopy(dict(sched))
        by_epoch = sched.get('by_epoch', True)
        if by_epoch and epoch_len is None:
            raise ValueError('an epoch-based scheduler needs the epoch length')
        sched.setdefault('end', loop.max_epochs if by_epoch else loop.get('max_iters'))
        built.append(PARAM_SCHEDULERS.build(
            sched, default_args=dict(optimizer=wrapper, epoch_length=epoch_len)))
    curve = []
    group = wrapper.optimizer.param_groups[0]
    for i in range(1, iterations + 1):
        curve.append(group['lr'])
        for scheduler in built:
            if not scheduler.by_epoch:
                scheduler.step()
        if by_epoch_loop and epoch_len and i % epoch_len == 0:
            for scheduler in built:
                if scheduler.by_epoch:
                    scheduler.step()
    return curve
