"""The words a run's state is said in, and the state a record and the lock tell.

The record's ``status`` is what the process that owns the run last wrote (:data:`RECORDED`). What
``status`` and the reporter show (:data:`STATES`) adds what only a reader can tell: a run whose
record says running but whose lock is free was ``interrupted``; a run waiting on a failed
upstream run is ``blocked``; a finished run whose config hash differs from the config the table
generates today is ``stale`` (``runs.rundir.identity``); a run with no record is ``pending``.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Optional

from engine.run_files import lock_holder

from .paths import PathLike

# Written into run.json by the process that owns the run.
RECORDED = ('queued', 'running', 'finished', 'failed', 'interrupted', 'blocked')
# Shown by `status` and the reporter, in the order a summary lists them.
STATES = ('finished', 'running', 'queued', 'pending', 'interrupted', 'failed', 'blocked', 'stale')
KINDS = ('train', 'eval')


def recorded_state(record: Optional[dict], run_dir: PathLike) -> str:
    """The state the record and the lock tell, without asking a scheduler or rebuilding configs:
    one of pending, queued, running, finished, failed, interrupted."""
    if record is None:
        return 'pending'
    status = record['status']
    if status == 'finished' and record.get('returncode') not in (0, None):
        return 'failed'
    if status == 'running':
        if record.get('host') not in (None, socket.gethostname()):
            return 'running'  # another machine's lock cannot be probed from here
        return 'running' if lock_holder(run_dir) else 'interrupted'
    return status


def run_state(record: Optional[dict], run_dir: PathLike) -> str:
    """:func:`recorded_state`, plus ``blocked`` for a run still waiting on an upstream run (its
    ``depends_on``, the row's cls run) that failed or is itself blocked: it will never start."""
    state = recorded_state(record, run_dir)
    if state in ('queued', 'pending') and record and record.get('depends_on'):
        upstream_dir = Path(record['depends_on'])
        from .record import readable_record  # (record imports this module)
        upstream = readable_record(upstream_dir)
        if upstream is not None and run_state(upstream, upstream_dir) in ('failed', 'blocked'):
            return 'blocked'
    return state
