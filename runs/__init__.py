"""The run-dir layout, the run record and the status words: one definition for the runner, the
training process, ``status`` and the reporter.

    <work_dir>/<table>/<profile>/<row>/<task>/seed<k>/       a training run
    <work_dir>/<table>/<profile>/<row>/<task>/eval-<tag>/    an evaluation of a checkpoint

Each run dir holds ``run.json`` (the record below), ``config.py`` (the complete config),
``console.log``, mmengine's ``<YYYYmmdd_HHMMSS>/`` log folders and checkpoints, and ``.lock``,
held by the live training process for as long as it runs (a second training of the same run
finds it held and does not start).

The record's ``status`` is what the process that owns the run last wrote (:data:`RECORDED`). What
``status`` and the reporter show (:data:`STATES`) adds what only a reader can tell: a run whose
record says running but whose lock is free was ``interrupted``; a run waiting on a failed
upstream run is ``blocked``; a finished run whose config hash differs from the config the table
generates today is ``stale``; a run with no record is ``pending``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

REPO = Path(__file__).resolve().parent.parent
RECORD = 'run.json'
LOCK = '.lock'
CONFIG = 'config.py'
CONSOLE = 'console.log'
# A link to the checkpoint a finished run hands on (det/seg start from their row's cls run).
HANDOVER = 'final.pth'
# Why a training failed, one line, written by the training process (runs.training) for the
# record (runs.job): 'loss became nan at iter N (epoch E)', 'no space left on device while ...'.
FAILURE_NOTE = 'failure.txt'

# Written into run.json by the process that owns the run.
RECORDED = ('queued', 'running', 'finished', 'failed', 'interrupted', 'blocked')
# Shown by `status` and the reporter, in the order a summary lists them.
STATES = ('finished', 'running', 'queued', 'pending', 'interrupted', 'failed', 'blocked', 'stale')
KINDS = ('train', 'eval')

SEED_DIR = re.compile(r'seed(\d+)')
EVAL_DIR = re.compile(r'eval-([0-9a-f]{6,64})')
TIMESTAMP = re.compile(r'\d{8}_\d{6}')
PathLike = Union[str, Path]


@dataclass(frozen=True)
class RunKey:
    """Which run a dir holds. ``tag`` is ``seed<k>`` for training, ``eval-<sha>`` for an eval."""
    table: str
    profile: str
    row: str
    task: str
    tag: str

    @classmethod
    def train(cls, table: str, profile: str, row: str, task: str, seed: int) -> 'RunKey':
        return cls(table, profile, row, task, f'seed{seed}')

    @classmethod
    def eval(cls, table: str, profile: str, row: str, task: str, sha256: str) -> 'RunKey':
        return cls(table, profile, row, task, f'eval-{sha256[:12]}')

    @property
    def kind(self) -> str:
        return 'eval' if self.tag.startswith('eval-') else 'train'

    @property
    def seed(self) -> Optional[int]:
        match = SEED_DIR.fullmatch(self.tag)
        return int(match.group(1)) if match else None

    @property
    def name(self) -> str:
        return f'{self.table}/{self.profile}/{self.row}/{self.task}/{self.tag}'

    def dir(self, work_dir: PathLike) -> Path:
        return Path(work_dir) / self.table / self.profile / self.row / self.task / self.tag


def cls_run_dir(run_dir: PathLike) -> Path:
    """The dir of the classification run of the same row and seed, which det/seg start from."""
    run_dir = Path(run_dir)
    return run_dir.parents[1] / 'cls' / run_dir.name


def table_root(work_dir: PathLike, table: str) -> Path:
    """``<work_dir>/<table>``, or ``work_dir`` itself when it already is that folder."""
    work_dir = Path(work_dir)
    root = work_dir / table
    if not root.is_dir() and work_dir.name == table:
        return work_dir
    return root


def iter_run_dirs(work_dir: PathLike, table: str, profiles: Optional[tuple[str, ...]] = None,
                  rows: Optional[set[str]] = None, tasks: Optional[tuple[str, ...]] = None,
                  ) -> Iterator[tuple[RunKey, Path, Optional[str]]]:
    """Every run dir of a table on disk, as ``(key, dir, None)``; a folder that does not fit the
    layout comes as ``(None, folder, why)`` so that callers can say why they ignored it."""
    root = table_root(work_dir, table)
    if not root.is_dir():
        return
    for profile_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.')):
        if profiles is not None and profile_dir.name not in profiles:
            yield None, profile_dir, f'not a profile ({", ".join(profiles)})'
            continue
        for row_dir in sorted(p for p in profile_dir.iterdir() if p.is_dir()):
            if rows is not None and row_dir.name not in rows:
                yield None, row_dir, f'not a row of {table}'
                continue
            for task_dir in sorted(p for p in row_dir.iterdir() if p.is_dir()):
                if tasks is not None and task_dir.name not in tasks:
                    yield None, task_dir, f'{table} has no task {task_dir.name!r}'
                    continue
                for run_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
                    if not (SEED_DIR.fullmatch(run_dir.name) or EVAL_DIR.fullmatch(run_dir.name)):
                        yield None, run_dir, 'not a seed<k> or eval-<sha> folder'
                        continue
                    yield (RunKey(table, profile_dir.name, row_dir.name, task_dir.name,
                                  run_dir.name), run_dir, None)


# --- the record -----------------------------------------------------------------------------

class RecordError(ValueError):
    """run.json exists but cannot be read as a record."""


def read_record(run_dir: PathLike) -> Optional[dict]:
    """The run's record; None when there is none; RecordError when it is unreadable."""
    path = Path(run_dir) / RECORD
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RecordError(f'{path}: {err}') from err
    if not isinstance(record, dict):
        raise RecordError(f'{path}: not a JSON object')
    if record.get('status') not in RECORDED:
        raise RecordError(f'{path}: unknown status {record.get("status")!r}; valid: '
                          + ', '.join(RECORDED))
    return record


def readable_record(run_dir: PathLike) -> Optional[dict]:
    """The run's record, or None when there is none or it cannot be read."""
    try:
        return read_record(run_dir)
    except RecordError:
        return None


def write_record(run_dir: PathLike, **fields: Any) -> dict:
    """Update run.json atomically (a reader never sees half a file)."""
    run_dir = Path(run_dir)
    try:
        record = read_record(run_dir) or {}
    except RecordError:
        record = {}
    record.update(fields)
    tmp = run_dir / f'{RECORD}.{os.getpid()}.tmp'
    tmp.write_text(json.dumps(record, indent=2, default=str) + '\n')
    os.replace(tmp, run_dir / RECORD)
    return record


# --- the lock held by the live training -----------------------------------------------------

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


# --- states ---------------------------------------------------------------------------------

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
        upstream = readable_record(upstream_dir)
        if upstream is not None and run_state(upstream, upstream_dir) in ('failed', 'blocked'):
            return 'blocked'
    return state


# --- the hand-over from a cls run to its det/seg runs --------------------------------------

def handover_checkpoint(cls_run_dir: PathLike) -> Optional[Path]:
    """The checkpoint a det/seg run of the same row starts from: the cls run's best one.

    Both ImageNet recipes report (and the papers' downstream runs start from) the best EMA epoch,
    which ``save_best`` keeps however many regular checkpoints are pruned; its ``state_dict``
    holds the EMA weights (mmengine's EMAHook swaps them in when saving). Without a best file
    (a recipe that does not validate) the file named in ``last_checkpoint``. None if neither.
    """
    run_dir = Path(cls_run_dir)
    best = sorted(run_dir.glob('best_*.pth'), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    marker = run_dir / 'last_checkpoint'
    if marker.exists():
        path = Path(marker.read_text().strip())
        if path.exists():
            return path
    return None


# --- config identity ------------------------------------------------------------------------

# Keys whose values are locations, not recipe: two runs that differ only there are the same run.
PATH_KEYS = frozenset({'work_dir', 'data_root', 'ann_file', 'checkpoint', 'load_from', 'resume',
                       'launcher'})


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
                if str(k) not in PATH_KEYS}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value != value:
        return 'nan'
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def config_hash(cfg: Any, upstream: Optional[str] = None) -> str:
    """A hash of a resolved config with every path left out (:data:`PATH_KEYS`). ``upstream``:
    the config hash of the run this one starts from, so a det run goes stale with its cls run."""
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    text = json.dumps([_canonical(data), upstream], sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- small facts every run's record carries --------------------------------------------------

def now() -> str:
    """The record's timestamps: local time to the second, ISO 8601."""
    return dt.datetime.now().isoformat(timespec='seconds')


def git_commit(repo: PathLike = REPO, short: bool = True) -> Optional[str]:
    """A checkout's commit, the suite's by default (``-dirty`` when tracked files differ from
    it); None outside git."""
    try:
        out = subprocess.run(['git', '-C', str(repo), 'rev-parse', *(['--short'] * short),
                              'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(repo), 'status', '--porcelain', '-uno'],
                               capture_output=True, text=True).stdout.strip()
        return out + ('-dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return None


PINS = REPO / 'requirements' / 'pins.txt'
# Everything below this line of pins.txt is optional: installed on first use (the trackers of
# --vis), never by tools/setup_env.sh, and left out of the environment's key.
OPTIONAL_SECTION = '# --- optional'


def read_pins(optional: bool = False, path: PathLike = PINS) -> dict[str, str]:
    """name -> version: the environment's runtime pins (``# build-only`` lines are not pins of
    the environment), or with ``optional`` the pins of the optional section."""
    pins, in_optional = {}, False
    for line in Path(path).read_text().splitlines():
        if line.startswith(OPTIONAL_SECTION):
            in_optional = True
        match = re.match(r'\s*([A-Za-z0-9_.\-]+)==([^\s#]+)', line)
        if match and 'build-only' not in line and in_optional == optional:
            pins[match.group(1)] = match.group(2)
    return pins


def split_csv(value: Optional[str]) -> list[str]:
    """``'a, b,,c'`` -> ``['a', 'b', 'c']`` (``--rows``, ``--tasks``, ``--gpus`` lists)."""
    return [v.strip() for v in (value or '').split(',') if v.strip()]


@contextlib.contextmanager
def quiet_toolkits() -> Iterator[None]:
    """Silence what the toolkits say while a command only builds configs and models (``--dry-run``,
    ``status``, ``doctor``): their warnings (deprecations, defaults) and mmengine's INFO and
    WARNING log lines, which would interleave with the command's own lines. Errors still show;
    training processes are not affected, so all of it stays in the run logs."""
    previous = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # MMLogger is a logging.Logger outside logging's registry; the global threshold still
        # applies to it.
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)
