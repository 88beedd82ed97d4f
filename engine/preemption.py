"""Preemption costs one iteration, and the run resumes where it stopped.

SIGTERM, SIGINT or SLURM's SIGUSR1 (:func:`install_signal_handlers`) only set a flag; the train
loop (:class:`ResumableEpochBasedTrainLoop`, :class:`ResumableIterBasedTrainLoop`) finishes the
current iteration, saves a complete state (:func:`save_resume_point`: everything mmengine saves,
i.e. model, optimizer and AMP scaler, schedulers, EMA, message hub, plus the position within
the epoch and every RNG) as ``preempt_iter_<N>.pth`` and stops (:class:`Preempted`). Resuming
from it skips the samples already seen at the sampler (no batch is loaded to skip it) and
restores the RNGs, so on CPU with ``num_workers=0`` the resumed run is bit-identical to one left
alone. The next regular checkpoint removes the preemption file. Which checkpoint a new attempt
resumes from is the job's choice (``runs.executors.resume``).
"""
from __future__ import annotations

import itertools
import os
import random
import signal
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from .atomic_checkpoint import (
    ATOMIC_BACKEND,
    MARKER,
    PREEMPT_PREFIX,
    _drop_preemption_files,
    atomic_write,
)


class Preempted(Exception):
    """A stop was asked for; ``path`` is the checkpoint saved after the last iteration."""

    def __init__(self, signum: int, path: Optional[str], iteration: int):
        super().__init__(f'stopped by {signal.Signals(signum).name} after iteration {iteration}')
        self.signum, self.path, self.iteration = signum, path, iteration


_STOP: dict = {'signum': None}


def request_stop(signum: int, frame=None) -> None:
    """Signal handler: finish this iteration, save, stop. A second Ctrl-C stops at once; a
    repeated SIGTERM does not (SLURM signals every process of a job, and runs.executors.job then stops
    its child too: the save under way must finish)."""
    if _STOP['signum'] == signal.SIGINT and signum == signal.SIGINT:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _STOP['signum'] = _STOP['signum'] or signum


def install_signal_handlers() -> None:
    _STOP['signum'] = None
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, request_stop)


def _stop_signal() -> Optional[int]:
    """The signal asked for on any rank (all ranks must stop after the same iteration)."""
    asked = _STOP['signum']
    if get_world_size() > 1:
        flag = torch.tensor([asked or 0], dtype=torch.int64)
        all_reduce(flag, op='max')
        asked = int(flag.item()) or None
    return asked


def capture_rng() -> dict:
    """Every RNG a training step draws from, as plain data (safe to load)."""
    np_state = np.random.get_state()
    state = dict(python=random.getstate(),
                 numpy=(np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                        float(np_state[4])),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state['python'])
    name, key, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def save_resume_point(runner, epoch: int, batch: int) -> str:
    """Save everything needed to continue after the iteration just done: mmengine's complete
    checkpoint plus the position (``batch`` batches of epoch ``epoch`` done) and the RNGs."""
    iteration = runner.train_loop.iter
    point = dict(epoch=epoch, batch=batch, iter=iteration, world_size=get_world_size(),
                 rng=capture_rng())
    filename = f'{PREEMPT_PREFIX}{iteration}.pth'
    runner.save_checkpoint(runner.work_dir, filename,
                           meta=dict(epoch=epoch, iter=iteration, resume_point=point),
                           backend_args=dict(backend=ATOMIC_BACKEND))
    path = str(Path(runner.work_dir) / filename)
    if is_main_process():
        atomic_write(Path(runner.work_dir) / MARKER, path.encode())
        _drop_preemption_files(runner.work_dir, keep=path)
    return path


def _skip_samples(dataloader, count: int) -> None:
    """Make the dataloader's next pass start ``count`` samples (of this rank) into its sampler's
    order, without loading them: the batch sampler reads a sampler that drops them once."""
    if count <= 0:
        return
    holder = dataloader.batch_sampler if dataloader.batch_sampler is not None else dataloader
    inner = holder.sampler

    class _SkipOnce:
        def __iter__(self):
            holder.sampler = inner  # later passes (next epoch) are whole again
            return itertools.islice(iter(inner), count, None)

        def __len__(self):
            return len(inner)

        def __getattr__(self, name):
            return getattr(inner, name)

    holder.sampler = _SkipOnce()


def _batch_size(dataloader) -> int:
    return dataloader.batch_size or dataloader.batch_sampler.batch_size


class _Resumable:
    """What both loops share: the resume point read from the checkpoint, and the stop check."""

    resume_point: Optional[dict] = None  # set by ResumePointHook.after_load_checkpoint

    def _take_resume_point(self) -> Optional[dict]:
        point, self.resume_point = self.resume_point, None
        if point is None or point.get('iter') != self._iter:
            return None  # load_from (not a resume), or a checkpoint of another iteration
        if point.get('world_size', 1) != get_world_size():
            point = dict(point, rng=None)  # other ranks, other RNG streams: order only
        return point

    def _stop_if_asked(self, epoch: int, batch: int) -> None:
        signum = _stop_signal()
        if signum is None:
            return
        path = None
        if self._iter > self._iter_at_start:  # nothing new to save otherwise
            path = save_resume_point(self.runner, epoch, batch)
        raise Preempted(signum, path, self._iter)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(_Resumable, EpochBasedTrainLoop):
    """mmengine's EpochBasedTrainLoop that can stop, and resume, between any two iterations."""

    def run(self):
        self._iter_at_start = self._iter
        self._point = self._take_resume_point()
        return super().run()

    def run_epoch(self) -> None:
        point, self._point = self._point, None
        done = point['batch'] if point else 0
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        _skip_samples(self.dataloader, done * _batch_size(self.dataloader))
        batches = iter(self.dataloader)  # draws a seed from torch's RNG: restore after it
        if point and point.get('rng'):
            restore_rng(point['rng'])
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
            self._stop_if_asked(self._epoch, idx + 1)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(_Resumable, IterBasedTrainLoop):
    """mmengine's IterBasedTrainLoop that can stop between any two iterations, and resumes by
    skipping the samples seen at the sampler instead of loading every one of them again."""

    def run(self):
        self._iter_at_start = self._iter
        point = self._take_resume_point()
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._advance(self._iter)
            if point and point.get('rng'):
                restore_rng(point['rng'])
        while self._iter < self._max_iters and not self.stop_training:
            self._stop_if_asked(self._epoch, self._iter)
            self.runner.model.train()
            self.run_iter(next(self.dataloader_iterator))
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _advance(self, iters: int) -> None:
        """Position the data where ``iters`` iterations left it (a finite sampler restarts each
        pass with the next epoch's order, as mmengine's infinite iterator does)."""
        from mmengine.dataset import InfiniteSampler
        loader = self.dataloader
        sampler = loader.sampler
        if isinstance(sampler, InfiniteSampler):
            # Its index stream is one generator for the whole run, and the iterator built with
            # the loop may have prefetched from it (workers): start it again from its seed.
            sampler.indices = sampler._indices_of_rank()
            passes, within = 0, iters * _batch_size(loader)
        else:
            passes, batches = divmod(iters, len(loader))
            within = batches * _batch_size(loader)
            if passes and hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(passes)
        _skip_samples(loader, within)
        self.dataloader_iterator = _InfiniteDataloaderIterator(loader)
        self.dataloader_iterator._epoch = passes


@HOOKS.register_module()
class ResumePointHook(Hook):
    """Hands the resume point of a checkpoint (see :func:`save_resume_point`) to the loop."""

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        point = (checkpoint.get('meta') or {}).get('resume_point')
        if isinstance(runner.train_loop, _Resumable):
            runner.train_loop.resume_point = point
