"""The run dir: its layout, its record (``run.json``), the lock of the training that holds it, the
states a reader tells from them, and a run's identity (the config hash that makes it ``stale``).
One definition for the runner, the training process, ``status`` and the reporter.

Each run dir holds ``run.json`` (the record), ``config.py`` (the complete config),
``console.log``, mmengine's ``<YYYYmmdd_HHMMSS>/`` log folders and checkpoints, and ``.lock``,
held by the live training process for as long as it runs.
"""
from engine.run_files import FAILURE_NOTE, LOCK, RunLock, lock_holder

from .identity import PATH_KEYS, config_hash, run_config, stale_reason
from .paths import (
                    CONFIG,
                    CONSOLE,
                    EVAL_DIR,
                    HANDOVER,
                    RECORD,
                    SEED_DIR,
                    SEED_ROUNDS,
                    TIMESTAMP,
                    PathLike,
                    RunKey,
                    cls_run_dir,
                    handover_checkpoint,
                    iter_run_dirs,
                    table_root,
)
from .record import RecordError, now, read_record, readable_record, write_record
from .states import KINDS, RECORDED, STATES, recorded_state, run_state

__all__ = ['FAILURE_NOTE', 'LOCK', 'RunLock', 'lock_holder', 'PATH_KEYS', 'config_hash',
           'run_config', 'stale_reason', 'CONFIG', 'CONSOLE', 'EVAL_DIR', 'HANDOVER', 'RECORD',
           'SEED_DIR', 'SEED_ROUNDS', 'TIMESTAMP', 'PathLike', 'RunKey', 'cls_run_dir',
           'handover_checkpoint', 'iter_run_dirs', 'table_root', 'RecordError', 'now',
           'read_record', 'readable_record', 'write_record', 'KINDS', 'RECORDED', 'STATES',
           'recorded_state', 'run_state']
