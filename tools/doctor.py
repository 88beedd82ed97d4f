"""``./run_all.sh doctor [TABLE] [table options]``: can this machine (or cluster) run the table?

One line per check, ``ok``, ``FAIL`` (with the fix) or ``skip`` (with why), then a summary; exit
0 only when nothing failed, 1 otherwise, 2 for a bad option. The checks and what each looks
at: ``runs.commands.doctor_checks``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES, TASKS, get_table  # noqa: E402
from ablations.compose import PROFILES  # noqa: E402
from ablations.table_files import table_reference  # noqa: E402
from runs.commands.doctor_checks import JOB_TIME, DoctorOptions, run_checks, summary  # noqa: E402
from runs.executors.process_layout import (GPUS_PER_NODE, LAUNCHERS, LayoutError,  # noqa: E402
                                            process_layout)
from runs.executors.slurm import SLURM_OPTIONS, SlurmOptions  # noqa: E402
from runs.options import DEFAULT_WORK_DIR, parse_gpus, split_csv  # noqa: E402
from runs.table.graph import plan_runs  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage too)
        print(f'run_all.sh doctor: error: {message}', file=sys.stderr)
        sys.exit(2)


def parse_args(argv: Optional[Sequence[str]]) -> DoctorOptions:
    parser = _Parser(prog='run_all.sh doctor',
                     description='Check this machine or cluster before queuing a table.')
    parser.add_argument('table', nargs='?', help=f'one of: {", ".join(TABLES)}, or a table '
                        'file of your own (its runs\' datasets, disk and memory are checked)')
    parser.add_argument('--profile', default='smoke', choices=PROFILES)
    parser.add_argument('--rows', help='comma-separated row slugs (default: every row)')
    parser.add_argument('--tasks', help=f'comma-separated subset of {",".join(TASKS)}')
    parser.add_argument('--gpus', default='1', help='GPUs per run: N or cls=32,det=8,seg=8')
    parser.add_argument('--launcher', choices=LAUNCHERS)
    parser.add_argument('--data-root', help='datasets root (full profile; smoke: generated)')
    parser.add_argument('--work-dir', default=str(DEFAULT_WORK_DIR))
    parser.add_argument('--report-dir', help='where the plan is, as <DIR>/<table>/plan.json')
    slurm = parser.add_argument_group('SLURM (--launcher slurm)')
    for option in SLURM_OPTIONS:
        slurm.add_argument(f'--{option}', help=f'sbatch --{option} (the doctor\'s job runs '
                           f'{JOB_TIME} at most)' if option == 'time' else f'sbatch --{option}')
    slurm.add_argument('--gpus-per-node', type=int, default=GPUS_PER_NODE)
    slurm.add_argument('--cpus-per-gpu', type=int, default=5)
    slurm.add_argument('--sbatch-args', help='more sbatch options, e.g. "--constraint=a100"')
    slurm.add_argument('--job-timeout', type=float, default=600,
                       help='seconds the doctor\'s job may wait in the queue (default 600)')
    args = parser.parse_args(argv)
    rows, tasks = tuple(split_csv(args.rows)), tuple(split_csv(args.tasks))
    table = None
    if args.table:
        try:
            table = get_table(args.table)
            plan_runs(table, rows, tasks, 1, Path('.'))
        except ValueError as err:
            parser.error(str(err))
    elif rows or tasks:
        parser.error('--rows and --tasks need a table, e.g. ./run_all.sh doctor table4 --rows R')
    try:
        gpus = parse_gpus(args.gpus)
    except ValueError as err:
        parser.error(str(err))
    several = max(gpus.values()) > 1
    launcher = args.launcher or ('pytorch' if several else 'none')
    if launcher == 'none' and several:
        parser.error('--gpus > 1 needs --launcher pytorch or slurm')
    if launcher == 'slurm':  # the doctor's job copies the largest run's layout
        try:
            for count in set(gpus.values()):
                process_layout(count, launcher, 'gpu', args.gpus_per_node)
        except LayoutError as err:
            parser.error(str(err))
    return DoctorOptions(
        # the doctor's SLURM job finds a table of your own again by its file's absolute path
        table=table_reference(table) if table else None, profile=args.profile, rows=rows,
        tasks=tasks, gpus=dict(gpus),
        launcher=launcher, data_root=args.data_root, work_dir=args.work_dir,
        report_dir=args.report_dir, job_timeout=args.job_timeout,
        slurm=SlurmOptions(**{o: getattr(args, o) for o in SLURM_OPTIONS},
                           gpus_per_node=args.gpus_per_node, cpus_per_gpu=args.cpus_per_gpu,
                           sbatch_args=args.sbatch_args))


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    checks = run_checks(options, lambda check: print(check.line(), flush=True))
    print(summary(checks), flush=True)
    return 1 if any(c.status == 'FAIL' for c in checks) else 0


if __name__ == '__main__':
    sys.exit(main())
