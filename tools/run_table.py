"""Run an ablation table as a job graph: ``./run_all.sh table4 ...`` (the engine: ``runs.table``).

    python -m tools.run_table table4 [--profile smoke|full] [--rows R1,R2] [--tasks cls,det,seg]
        [--seeds N] [--gpus N | --gpus cls=32,det=8,seg=8] [--launcher none|pytorch|slurm]
        [--jobs N] [--rerun-stale] [--data-root DIR] [--work-dir DIR] [--dry-run] [--no-report]
        [SLURM: --partition --account --qos --time --gpus-per-node --cpus-per-gpu --mem
         --sbatch-args "..."]

Each run has its own dir (layout, record and states: ``runs/``). After the runs, the report
(``python -m reports``): run here by the local executor, or queued by the SLURM one as a last
job after every run has ended.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES, TASKS, AblationTable, get_table  # noqa: E402
from ablations.compose import PROFILES  # noqa: E402
from runs import REPO  # noqa: E402
from runs.graph import parse_gpus  # noqa: E402
from runs.launch import LAUNCHERS  # noqa: E402
from runs.slurm import GPUS_PER_NODE, SLURM_OPTIONS  # noqa: E402
from runs.table import run_table  # noqa: E402
from runs.trackers import TRACKERS, check_accounts, ensure_installed, parse_vis  # noqa: E402


def report_command(table: AblationTable, work_dir: Path, args: argparse.Namespace) -> list[str]:
    """The reporter's command for this table's runs (``reports/``, one layer above ``runs``)."""
    command = [sys.executable, '-m', 'reports', table.name, '--work-dir', str(work_dir),
               '--profile', args.profile]
    if args.report_dir:
        command += ['--out', str(Path(args.report_dir).resolve() / table.name)]
    return command


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line naming the problem, exit 2 (no usage)
        print(f'{self.prog}: error: {message}', file=sys.stderr)
        sys.exit(2)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = _Parser(
        prog='run_all.sh <table>', description='Run an ablation table end to end.')
    parser.add_argument('table', help=f'one of: {", ".join(TABLES)}, all')
    parser.add_argument('--profile', default='smoke', choices=PROFILES,
                        help='smoke (default): generated tiny data on CPU; full: the papers\' recipes')
    parser.add_argument('--rows', help='comma-separated row slugs (default: every row)')
    parser.add_argument('--tasks', help=f'comma-separated subset of {",".join(TASKS)}')
    parser.add_argument('--seeds', type=int, default=1, help='seeds per (row, task), 0..N-1')
    parser.add_argument('--gpus', default='1',
                        help='GPUs per run: N for every task, or per task as cls=32,det=8,seg=8')
    parser.add_argument('--launcher', choices=LAUNCHERS,
                        help='none/pytorch: this machine (torchrun for several GPUs; the '
                             'default when --gpus > 1, else none); slurm: one sbatch job per run')
    parser.add_argument('--jobs', type=int, default=1,
                        help='local executor: runs at once (GPUs or CPU cores are split)')
    parser.add_argument('--rerun-stale', action='store_true',
                        help='rerun finished runs whose config changed (old dirs are kept)')
    parser.add_argument('--data-root', help='datasets root (full profile; smoke: generated)')
    parser.add_argument('--work-dir', default=str(REPO / 'work_dirs'))
    parser.add_argument('--dry-run', action='store_true',
                        help='print the runs and their commands; run nothing')
    parser.add_argument('--no-report', action='store_true', help='do not call the reporter')
    parser.add_argument('--report-dir', help='where reports go, as <DIR>/<table>/ '
                                             '(default: reports/<table>/)')
    parser.add_argument('--quiet', action='store_true',
                        help='accepted for compatibility: training output always goes to each '
                             'run\'s console.log')
    parser.add_argument('--vis', help=f'trackers each run also logs to: {", ".join(TRACKERS)} '
                                      '(installed on first use)')
    slurm = parser.add_argument_group('SLURM (--launcher slurm)')
    for option in SLURM_OPTIONS:
        slurm.add_argument(f'--{option}', help=f'sbatch --{option}')
    slurm.add_argument('--gpus-per-node', type=int, default=GPUS_PER_NODE,
                       help='GPUs per node (runs with more GPUs span several nodes)')
    slurm.add_argument('--cpus-per-gpu', type=int, default=5, help='CPU cores per GPU task')
    slurm.add_argument('--requeue-before', type=int, default=300,
                       help='seconds before the time limit at which a job requeues itself')
    slurm.add_argument('--sbatch-args', help='more sbatch options, e.g. "--constraint=a100"')
    args = parser.parse_args(argv)
    if args.table != 'all':
        get_table(args.table)  # unknown table: ValueError listing the known ones
    try:
        args.gpus_per_task = parse_gpus(args.gpus)
    except ValueError as err:
        parser.error(str(err))
    try:
        args.trackers = parse_vis(args.vis)
    except ValueError as err:
        parser.error(str(err))
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    several = max(args.gpus_per_task.values()) > 1
    if args.launcher is None:
        args.launcher = 'pytorch' if several else 'none'
    elif args.launcher == 'none' and several:
        parser.error('--gpus > 1 needs --launcher pytorch or slurm')
    if args.launcher == 'slurm' and args.jobs != 1:
        parser.error('--jobs is for the local executor; SLURM runs every ready job at once')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    # SIGTERM (kill, scancel) and SIGINT alike stop the runs cleanly; SIGINT is set explicitly
    # because a shell starts background jobs with it ignored.
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        args = parse_args(argv)
        tables = list(TABLES.values()) if args.table == 'all' else [get_table(args.table)]
        if not args.dry_run:
            check_accounts(args.trackers)
            ensure_installed(args.trackers)
        status = 0
        for table in tables:
            report = None if args.no_report else \
                report_command(table, Path(args.work_dir).resolve(), args)
            status = max(status, run_table(table, args, report))
        return status
    except (ValueError, FileNotFoundError) as exc:
        print(f'run_all.sh: error: {exc}', file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f'run_all.sh: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted: run the same command again to resume (finished runs are kept, '
              'interrupted ones resume from their last checkpoint)', file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == '__main__':
    sys.exit(main())
