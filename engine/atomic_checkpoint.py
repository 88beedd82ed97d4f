"""Atomic checkpoints: :class:`SafeCheckpointHook` writes every checkpoint to a temporary file in
the same dir, fsyncs and renames it (:class:`AtomicLocalBackend`), then updates
``last_checkpoint`` (also atomically), and only then prunes old checkpoints (mmengine deletes the
oldest one *before* writing the new one). A kill at any moment leaves the old or the new
checkpoint, never a truncated one; a full disk during a save is :class:`TrainingFailed` ``no
space left on device while saving <file>``, the previous checkpoint untouched.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Optional

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from .run_files import TrainingFailed

ATOMIC_BACKEND = 'suite_atomic_local'
PREEMPT_PREFIX = 'preempt_iter_'
MARKER = 'last_checkpoint'


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader, or a crash, sees the old file or the new one:
    a temporary file in the same dir, fsync, rename, fsync of the dir. A full disk is
    TrainingFailed naming the file; the temporary file is removed and the old one untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TrainingFailed(f'no space left on device while saving {path.name} '
                                 f'(in {path.parent})') from err
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are :func:`atomic_write`s."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(filepath, obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class _DeferRemovals:
    """A file backend whose ``remove`` only notes the path (done after the new file is saved)."""

    def __init__(self, backend):
        self._backend = backend
        self.removed: list[str] = []

    def remove(self, path) -> None:
        self.removed.append(str(path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _drop_preemption_files(work_dir: str, keep: Optional[str] = None) -> None:
    for path in Path(work_dir).glob(f'{PREEMPT_PREFIX}*.pth'):
        if keep is None or path.resolve() != Path(keep).resolve():
            path.unlink(missing_ok=True)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook, writing atomically and pruning only after a save succeeded."""

    def __init__(self, *args, **kwargs):
        if kwargs.get('backend_args') is None and kwargs.get('file_client_args') is None:
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):
        # The bookkeeping is mmengine's (which steps are kept, recorded in the message hub so a
        # resumed run prunes the same files); the order is ours: save, point at it, then prune.
        drop = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                             self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                drop = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta,
                               by_epoch=self.by_epoch, backend_args=self.backend_args,
                               **self.args)
        if not is_main_process():
            return
        atomic_write(Path(runner.work_dir) / MARKER, str(self.last_ckpt).encode())
        if drop is not None and drop != step:
            old = Path(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(drop)))
            old.unlink(missing_ok=True)
        _drop_preemption_files(runner.work_dir)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine removes the previous best file before writing the new one: defer that.
        backend, self.file_backend = self.file_backend, _DeferRemovals(self.file_backend)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            deferred, self.file_backend = self.file_backend.removed, backend
        if is_main_process():
            current = {str(Path(p).resolve()) for p in (self.best_ckpt_path_dict.values()
                       if getattr(self, 'best_ckpt_path_dict', None) else ())}
            if getattr(self, 'best_ckpt_path', None):
                current.add(str(Path(self.best_ckpt_path).resolve()))
            for path in deferred:
                if str(Path(path).resolve()) not in current:
                    Path(path).unlink(missing_ok=True)
