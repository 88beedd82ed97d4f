"""A model and a dataset small enough that a test trains them through ``tools/train.py`` (a
real mmengine Runner, real checkpoints) in a few seconds; imported by the configs that
:func:`toy_config` writes (``custom_imports``), so the training subprocess registers them too.

``ballast_mb``: a buffer that makes every checkpoint that big (a save then takes long enough to
be interrupted, or fills a small disk). ``nan_at``: from that training step on, the loss is NaN
(the step count is a buffer, so it is saved and resumed like any weight). ``SignalAtIter``
sends the training process a real signal after a given iteration.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, HOOKS, MODELS

REPO = Path(__file__).resolve().parent.parent
# A training subprocess imports this module by name: give it this PYTHONPATH (a ``tests``
# package in site-packages shadows ``tests.toy_training``).
PYTHONPATH = f'{REPO}{os.pathsep}{REPO / "tests"}'


@DATASETS.register_module(force=True)
class ToyNumbers(torch.utils.data.Dataset):
    def __init__(self, size: int = 4):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        return dict(x=torch.tensor([float(index + 1)]))


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    def __init__(self, ballast_mb: int = 0, nan_at: Optional[int] = None, bad: str = 'nan',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.bad = float(bad)  # what the loss becomes from step nan_at on: nan or inf
        self.w = torch.nn.Parameter(torch.ones(1))
        self.register_buffer('ballast', torch.zeros(ballast_mb * 2 ** 18))  # 4 bytes each
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))
        self.nan_at = nan_at

    def forward(self, x, data_samples=None, mode: str = 'loss'):
        x = torch.stack(list(x)) if isinstance(x, (list, tuple)) else x
        if mode != 'loss':
            return [dict(pred=p) for p in self.w * x]
        self.steps += 1
        loss = ((self.w * x - 1.0) ** 2).mean()
        if self.nan_at is not None and int(self.steps) >= self.nan_at:
            loss = loss * self.bad
        return dict(loss=loss)


@HOOKS.register_module(force=True)
class SignalAtIter(Hook):
    """Sends this process ``signum`` right after iteration ``at`` (1-based), as SLURM or a user
    would between two iterations."""

    priority = 'LOWEST'

    def __init__(self, at: int, signum: int = int(signal.SIGTERM)):
        self.at, self.signum = at, signum

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), self.signum)


def toy_config(path: Path, *, ballast_mb: int = 0, nan_at: Optional[int] = None,
               by_epoch: bool = True, length: int = 3, interval: int = 1, keep: int = 2,
               samples: int = 4, bad: str = 'nan') -> Path:
    """Write a config training the toy for ``length`` epochs (or iterations) of ``samples``
    batches of one, with a checkpoint every ``interval`` of them; return its path."""
    loop = (f'dict(by_epoch=True, max_epochs={length})' if by_epoch
            else f'dict(by_epoch=False, max_iters={length})')
    path.write_text(f'''
custom_imports = dict(imports=['toy_training'], allow_failed_imports=False)
model = dict(type='ToyRegressor', ballast_mb={ballast_mb}, nan_at={nan_at!r}, bad={bad!r})
train_dataloader = dict(batch_size=1, num_workers=0,
                        sampler=dict(type='DefaultSampler', shuffle=False),
                        dataset=dict(type='ToyNumbers', size={samples}))
train_cfg = {loop}
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch={by_epoch}, interval={interval},
                    max_keep_ckpts={keep}))
log_processor = dict(by_epoch={by_epoch})
''')
    return path
