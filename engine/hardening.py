"""What the training process (``engine.trainer``) adds to mmengine's Runner so that a run loses
nothing and never trains on garbage: the resumable loops (``engine.preemption``), the atomic
checkpoint hook (``engine.atomic_checkpoint``) and the non-finite loss stop
(``engine.loss_guard``) put into a config, and the reason a training failed left where the job
reads it (``engine.run_files.FAILURE_NOTE``).
"""
from __future__ import annotations

from pathlib import Path

# Registered here, for the config that names them.
from . import atomic_checkpoint, loss_guard, preemption  # noqa: F401
from .atomic_checkpoint import atomic_write
from .run_files import FAILURE_NOTE

LOOP_FOR = {'EpochBasedTrainLoop': 'ResumableEpochBasedTrainLoop',
            'IterBasedTrainLoop': 'ResumableIterBasedTrainLoop'}


def harden_config(cfg) -> None:
    """Put the loops and hooks above into a training config (in place)."""
    loop = cfg.train_cfg
    kind = loop.get('type') or ('EpochBasedTrainLoop' if loop.get('by_epoch', True)
                                else 'IterBasedTrainLoop')
    kind = kind.split('.')[-1]
    if kind in LOOP_FOR:
        loop.pop('by_epoch', None)
        loop['type'] = LOOP_FOR[kind]
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and checkpoint.get('type', '').split('.')[-1] == 'CheckpointHook':
        checkpoint['type'] = 'SafeCheckpointHook'
    hooks = list(cfg.get('custom_hooks') or [])
    hooks += [dict(type='NonFiniteLossHook'), dict(type='ResumePointHook')]
    cfg.custom_hooks = hooks


def record_failure(work_dir, reason: str) -> None:
    """Leave the reason a training failed where ``runs.executors.job`` reads it (best effort: the disk
    may be the reason)."""
    try:
        atomic_write(Path(work_dir) / FAILURE_NOTE, (reason.strip() + '\n').encode())
    except Exception:  # noqa: BLE001  (the console log still has it)
        pass
