"""The files of a run dir that the training process itself holds or writes: the lock it holds
for as long as it lives (a second training of the same run finds it held and does not start),
and the one-line reason it failed. The rest of the run dir is the runner's (``runs.rundir``).
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Optional, Union

LOCK = '.lock'
# Why a training failed, one line, written by the training process (engine.hardening) for the
# record (runs.executors.job): 'loss became nan at iter N (epoch E)', 'no space left on device
# while ...'.
FAILURE_NOTE = 'failure.txt'
PathLike = Union[str, Path]


class TrainingFailed(RuntimeError):
    """The run cannot go on; the message is the one-line reason the run record keeps."""


class RunLock:
    """An exclusive lock on a run dir, held by the process that trains it.

    The kernel releases it when that process dies, however it dies, so a free lock means no live
    training. The holder writes its pid and host into the file for the message others print.
    """

    def __init__(self, run_dir: PathLike):
        self.path = Path(run_dir) / LOCK
        self.file = None

    def acquire(self) -> bool:
        self.file = open(self.path, 'a+')
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            self.file = None
            return False
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f'{os.getpid()} {socket.gethostname()}\n')
        self.file.flush()
        return True

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(run_dir: PathLike) -> Optional[str]:
    """'pid host' of the live process holding the run's lock, or None when the lock is free."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return None
    with open(path, 'a+') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            return f.read().strip() or 'unknown pid'
        fcntl.flock(f, fcntl.LOCK_UN)
    return None
