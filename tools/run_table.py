"""Run an ablation table: every (row, task, seed) through mmengine, then the reporter.

    python -m tools.run_table table4 [--profile smoke|full] [--rows R1,R2] [--tasks cls,det,seg]
        [--seeds N] [--gpus N] [--launcher none|pytorch|slurm] [--partition P]
        [--data-root DIR] [--work-dir DIR] [--dry-run] [--no-report]

One work dir per run, ``<work-dir>/<table>/<row>/<task>/seed<k>/``, holding the row's complete
config (``config.py``), the run's console log, mmengine's timestamped log folders and
``run.json`` (status, exit code, command, profile, commit). A finished run is skipped, an
interrupted one (SIGINT/SIGTERM stop the child too) resumes from its last checkpoint, a failed one is recorded and the others go on;
the exit status is non-zero if any run failed. A lock per work dir keeps two invocations off the
same run. Detection and segmentation runs start from the row's own classification checkpoint
when that run has finished (the paper's protocol: each variant is pretrained on ImageNet).
"""
from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ablations import TABLES, TASKS, AblationTable, get_table
from tools.row_config import (DEFAULT_SMOKE_DATA, PROFILES, REPO, build_row_config,
                              check_data_root)

LAUNCHERS = ('none', 'pytorch', 'slurm')
RUN_FILE = 'run.json'
GPUS_PER_NODE = int(os.environ.get('GPUS_PER_NODE', 8))


@dataclass(frozen=True)
class Run:
    table: AblationTable
    row: str
    task: str
    seed: int
    work_dir: Path

    @property
    def dir(self) -> Path:
        return self.work_dir / self.table.name / self.row / self.task / f'seed{self.seed}'

    @property
    def name(self) -> str:
        return f'{self.table.name}/{self.row}/{self.task}/seed{self.seed}'


def plan_runs(table: AblationTable, rows: Optional[Sequence[str]], tasks: Optional[Sequence[str]],
              seeds: int, work_dir: Path) -> list[Run]:
    """Every (row, task, seed) to run, classification first within a row (det/seg start from it)."""
    slugs = [table.row(r).slug for r in rows] if rows else [r.slug for r in table.rows]
    if tasks:
        bad = [t for t in tasks if t not in table.tasks]
        if bad:
            raise ValueError(f'unknown task(s) {", ".join(bad)} for {table.name}; its tasks: '
                             f'{", ".join(table.tasks)}')
        tasks = [t for t in table.tasks if t in tasks]
    else:
        tasks = list(table.tasks)
    if seeds < 1:
        raise ValueError(f'--seeds must be at least 1, got {seeds}')
    return [Run(table, slug, task, seed, work_dir)
            for slug in slugs for seed in range(seeds) for task in tasks]


def train_command(config: Path, run_dir: Path, launcher: str, gpus: int,
                  partition: Optional[str], job_name: str) -> list[str]:
    """The exact command that trains one run, as mmdet's dist_train.sh / slurm_train.sh do."""
    train = [str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(run_dir), '--resume']
    if launcher == 'none':
        return [sys.executable, *train]
    if launcher == 'pytorch':
        # A port per run, so two tables on one node do not collide.
        port = 29500 + zlib.crc32(str(run_dir).encode()) % 2000
        return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}',
                f'--master_port={port}', *train, '--launcher', 'pytorch']
    per_node = min(gpus, GPUS_PER_NODE)  # more GPUs than a node has span several nodes
    srun = ['srun', f'--job-name={job_name}', f'--gres=gpu:{per_node}', f'--ntasks={gpus}',
            f'--ntasks-per-node={per_node}', '--cpus-per-task=5', '--kill-on-bad-exit=1']
    if partition:
        srun.insert(1, f'--partition={partition}')
    return [*srun, sys.executable, '-u', *train, '--launcher', 'slurm']


def read_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / RUN_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_status(run_dir: Path, **fields) -> dict:
    """Update run.json atomically (a reader never sees half a file)."""
    status = {**read_status(run_dir), **fields}
    tmp = run_dir / (RUN_FILE + '.tmp')
    tmp.write_text(json.dumps(status, indent=2, default=str) + '\n')
    os.replace(tmp, run_dir / RUN_FILE)
    return status


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(REPO), 'status', '--porcelain', '-uno'],
                               capture_output=True, text=True).stdout.strip()
        return out + ('-dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return None


def last_checkpoint(run_dir: Path) -> Optional[Path]:
    """The checkpoint mmengine recorded last in a run dir, if the file is there."""
    marker = run_dir / 'last_checkpoint'
    if not marker.exists():
        return None
    path = Path(marker.read_text().strip())
    return path if path.exists() else None


def pretrained_for(run: Run) -> Optional[Path]:
    """The row's finished classification checkpoint for a det/seg run (same seed), if any."""
    if run.task == 'cls' or 'cls' not in run.table.tasks:
        return None
    cls_dir = Run(run.table, run.row, 'cls', run.seed, run.work_dir).dir
    if read_status(cls_dir).get('status') != 'finished':
        return None
    return last_checkpoint(cls_dir)


class RunLock:
    """An exclusive, non-blocking lock on a run dir; released when the process dies."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / '.lock'
        self.file = None

    def __enter__(self) -> bool:
        self.file = open(self.path, 'w')
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            self.file = None
            return False
        return True

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def _elapsed(seconds: float) -> str:
    return f'{int(seconds // 60)}m{int(seconds % 60):02d}s'


def execute(run: Run, args: argparse.Namespace, data_root: Path) -> str:
    """Run one (row, task, seed); returns 'done', 'skipped', 'locked' or 'failed'."""
    run_dir = run.dir
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir) as locked:
        if not locked:
            return 'locked'
        if read_status(run_dir).get('status') == 'finished':
            return 'skipped'
        pretrained = pretrained_for(run)
        if run.task != 'cls' and pretrained is None:
            print(f'  warning: {run.name} starts from random backbone weights (no finished '
                  f'cls run of this row to initialise from)', flush=True)
        config_path = run_dir / 'config.py'
        console = run_dir / 'console.log'
        try:
            cfg = build_row_config(run.table, run.row, run.task, profile=args.profile,
                                   data_root=data_root, work_dir=run_dir, seed=run.seed,
                                   pretrained=pretrained)
            cfg.dump(str(config_path))
        except Exception as exc:  # a broken row must not stop the others
            write_status(run_dir, **_identity(run, args, data_root), status='failed',
                         returncode=None, error=f'config: {exc!r}', ended=_now())
            print(f'  FAILED to build the config: {exc}', flush=True)
            return 'failed'
        command = train_command(config_path, run_dir, args.launcher, args.gpus, args.partition,
                                job_name=f'{run.table.name}-{run.row}-{run.task}')
        write_status(run_dir, **_identity(run, args, data_root), status='running',
                     returncode=None, started=_now(), ended=None, command=command,
                     config=str(config_path), console_log=str(console),
                     pretrained=str(pretrained) if pretrained else None,
                     host=socket.gethostname(), pid=os.getpid(), error=None)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO), os.environ.get('PYTHONPATH')) if p))
        with open(console, 'a') as log:
            log.write(f'\n=== {_now()} {shlex.join(command)}\n')
            log.flush()
            proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
            write_status(run_dir, child_pid=proc.pid)
            try:
                for line in proc.stdout:  # the toolkit's own log, beneath our progress line
                    log.write(line)
                    if not args.quiet:
                        sys.stdout.write('    ' + line)
                returncode = proc.wait()
            except KeyboardInterrupt:
                # Never leave a training process running on its own: a second invocation
                # would resume the same run beside it.
                _stop(proc)
                write_status(run_dir, status='interrupted', returncode=proc.returncode,
                             ended=_now())
                raise
        status = 'finished' if returncode == 0 else 'failed'
        write_status(run_dir, status=status, returncode=returncode, ended=_now())
        if status == 'failed':
            print(f'  FAILED (exit {returncode}); log: {console}', flush=True)
        return 'done' if status == 'finished' else 'failed'


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """Terminate a child run, killing it if it has not exited after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _now() -> str:
    return dt.datetime.now().isoformat(timespec='seconds')


def _identity(run: Run, args: argparse.Namespace, data_root: Path) -> dict:
    return dict(table=run.table.name, row=run.row, task=run.task, seed=run.seed,
                profile=args.profile, data_root=str(data_root), commit=git_commit())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='run_all.sh <table>', description='Run an ablation table end to end.')
    parser.add_argument('table', help=f'one of: {", ".join(TABLES)}, all')
    parser.add_argument('--profile', default='smoke', choices=PROFILES,
                        help='smoke (default): generated tiny data on CPU; full: the papers\' recipes')
    parser.add_argument('--rows', help='comma-separated row slugs (default: every row)')
    parser.add_argument('--tasks', help=f'comma-separated subset of {",".join(TASKS)}')
    parser.add_argument('--seeds', type=int, default=1, help='seeds per (row, task), 0..N-1')
    parser.add_argument('--gpus', type=int, default=1, help='GPUs per run (pytorch/slurm)')
    parser.add_argument('--launcher', default='none', choices=LAUNCHERS)
    parser.add_argument('--partition', help='SLURM partition for srun')
    parser.add_argument('--data-root', help='datasets root (full profile; smoke: generated)')
    parser.add_argument('--work-dir', default=str(REPO / 'work_dirs'))
    parser.add_argument('--dry-run', action='store_true',
                        help='print the runs and their commands; run nothing')
    parser.add_argument('--no-report', action='store_true', help='do not call the reporter')
    parser.add_argument('--quiet', action='store_true', help='keep the toolkits\' logs to files')
    args = parser.parse_args(argv)
    if args.table != 'all':
        get_table(args.table)  # unknown table: ValueError listing the known ones
    if args.gpus < 1:
        parser.error(f'--gpus must be at least 1, got {args.gpus}')
    if args.launcher == 'none' and args.gpus > 1:
        parser.error('--gpus > 1 needs --launcher pytorch or slurm')
    return args


def _split(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(',') if v.strip()] if value else None


def run_table(table: AblationTable, args: argparse.Namespace) -> int:
    work_dir = Path(args.work_dir).resolve()
    runs = plan_runs(table, _split(args.rows), _split(args.tasks), args.seeds, work_dir)
    if args.profile == 'full' and not args.data_root and not args.dry_run:
        raise ValueError('the full profile needs --data-root DIR (imagenet/, coco/, ade/ under '
                         'it); see README.md')
    data_root = Path(args.data_root or DEFAULT_SMOKE_DATA).expanduser().resolve()
    if args.dry_run:
        for i, run in enumerate(runs, 1):
            config = run.dir / 'config.py'
            print(f'[{i}/{len(runs)}] {run.name}')
            print('  ' + shlex.join(train_command(config, run.dir, args.launcher, args.gpus,
                                                  args.partition,
                                                  f'{table.name}-{run.row}-{run.task}')))
        return 0
    if args.profile == 'smoke' and not args.data_root:
        from tools.make_tiny_datasets import make_tiny_datasets
        make_tiny_datasets(data_root)
    for task in sorted({r.task for r in runs}):  # before any run starts
        check_data_root(task, data_root)

    start = time.monotonic()
    outcome: dict[str, list[str]] = {}
    for i, run in enumerate(runs, 1):
        print(f'[{i}/{len(runs)}] {run.name} ({args.profile}) elapsed '
              f'{_elapsed(time.monotonic() - start)}', flush=True)
        t0 = time.monotonic()
        result = execute(run, args, data_root)
        outcome.setdefault(result, []).append(run.name)
        print(f'[{i}/{len(runs)}] {run.name}: {result} in {_elapsed(time.monotonic() - t0)}',
              flush=True)
    print(f'{table.name}: ' + ', '.join(f'{len(v)} {k}' for k, v in outcome.items())
          + f' in {_elapsed(time.monotonic() - start)}', flush=True)
    for name in outcome.get('failed', []):
        print(f'  failed: {name} (see {work_dir / name / "console.log"})')
    for name in outcome.get('locked', []):
        print(f'  locked by another invocation, not run: {name}')
    if not args.no_report:
        report = [sys.executable, '-m', 'reports', table.name, '--work-dir', str(work_dir),
                  '--profile', args.profile]
        print('$ ' + shlex.join(report), flush=True)
        subprocess.run(report, cwd=REPO, check=False)
    return 1 if outcome.get('failed') else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    # SIGTERM (kill, scancel) and SIGINT alike stop the current run cleanly; SIGINT is set
    # explicitly because a shell starts background jobs with it ignored.
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        args = parse_args(argv)
        tables = list(TABLES.values()) if args.table == 'all' else [get_table(args.table)]
        status = 0
        for table in tables:
            status = max(status, run_table(table, args))
        return status
    except (ValueError, FileNotFoundError) as exc:
        print(f'run_all.sh: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted: run the same command again to resume (finished runs are kept, '
              'the interrupted one resumes from its last checkpoint)', file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == '__main__':
    sys.exit(main())
