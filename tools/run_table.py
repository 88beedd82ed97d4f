"""Run an ablation table as a job graph: ``./run_all.sh table4 ...`` (the engine:
``runs.table.orchestrate``).

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
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES, TASKS, AblationTable, get_table  # noqa: E402
from ablations.compose import PROFILES  # noqa: E402
from ablations.reduction import SUBSETS, Reduction, run_profile  # noqa: E402
from ablations.table_files import table_reference  # noqa: E402
from runs.executors.follow_up import FollowUp  # noqa: E402
from runs.executors.local import LocalOptions  # noqa: E402
from runs.executors.process_layout import GPUS_PER_NODE, LAUNCHERS  # noqa: E402
from runs.executors.slurm import SLURM_OPTIONS, SlurmOptions  # noqa: E402
from runs.options import (DEFAULT_WORK_DIR, TableOptions, frozen_gpus, parse_gpus,  # noqa: E402
                          parse_vis, split_csv)
from reports.seed_rounds import DECISION_JOB, run_rounds  # noqa: E402
from runs.provenance import REPO  # noqa: E402
from runs.table import sequential as seq  # noqa: E402
from runs.table.orchestrate import run_table  # noqa: E402
from runs.tracking.tracker_runs import TRACKERS, check_accounts, ensure_installed  # noqa: E402


def report_command(table: AblationTable, options: TableOptions) -> FollowUp:
    """The reporter's command for this table's runs (``reports/``, one layer above ``runs``)."""
    # a table of your own is found again by its file's path (ablations.table_files)
    command = [sys.executable, '-m', 'tools.report', table_reference(table), '--work-dir',
               str(options.work_dir), '--profile', options.run_profile]
    out = (options.report_dir or REPO / 'reports') / table.name
    if options.report_dir:
        command += ['--out', str(out)]
    return FollowUp(command, 'report', f'writes {out}/')


def seeds_auto(table: AblationTable, options: TableOptions, argv: Optional[Sequence[str]],
               report: Optional[FollowUp]) -> int:
    """--seeds auto: rounds until each claim resolves (reports.seed_rounds), then the report.
    On SLURM the decision after a round is this same command, queued as a job."""
    again = ['env', f'{DECISION_JOB}=1', sys.executable, '-m', 'tools.run_table',
             *(sys.argv[1:] if argv is None else argv)]
    status, done = run_rounds(table, options, again)
    if done and report is not None:
        status = max(status, subprocess.run(report.command, cwd=REPO).returncode)
    return status


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line naming the problem, exit 2 (no usage)
        print(f'{self.prog}: error: {message}', file=sys.stderr)
        sys.exit(2)


def parse_args(argv: Optional[Sequence[str]] = None) -> TableOptions:
    parser = _Parser(
        prog='run_all.sh <table>', description='Run an ablation table end to end.')
    parser.add_argument('table', help=f'one of: {", ".join(TABLES)}, all; or a table file of '
                                      'your own, a .py file that defines TABLE')
    parser.add_argument('--profile', default='smoke', choices=PROFILES,
                        help='smoke (default): generated tiny data on CPU; full: the papers\' '
                             'recipes')
    parser.add_argument('--schedule-scale', type=float, default=1.0, metavar='F',
                        help='full profile: every schedule length x F, 0 < F <= 1 '
                             '(docs/reduced_runs.md)')
    parser.add_argument('--subset', help=f'full profile: train ImageNet on a class subset: '
                                         f'{", ".join(SUBSETS)}')
    parser.add_argument('--rows', help='comma-separated row slugs (default: every row)')
    parser.add_argument('--tasks', help=f'comma-separated subset of {",".join(TASKS)}')
    parser.add_argument('--seeds', default='1',
                        help='seeds per (row, task), 0..N-1; or auto: seeds in rounds until '
                             'each claim resolves (docs/seed_noise.md)')
    parser.add_argument('--max-seeds', type=int, default=seq.DEFAULT_MAX_SEEDS,
                        help='--seeds auto: at most this many seeds per row (default '
                        f'{seq.DEFAULT_MAX_SEEDS})')
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
    parser.add_argument('--work-dir', default=str(DEFAULT_WORK_DIR))
    parser.add_argument('--dry-run', action='store_true',
                        help='print the runs and their commands; run nothing')
    parser.add_argument('--no-report', action='store_true', help='do not call the reporter')
    parser.add_argument('--report-dir', help='where reports go, as <DIR>/<table>/ '
                                             '(default: reports/<table>/)')
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
        gpus = parse_gpus(args.gpus)
        trackers = parse_vis(args.vis)
        reduction = Reduction(args.schedule_scale, args.subset)
        run_profile(args.profile, reduction)  # only the full profile reduces
    except ValueError as err:
        parser.error(str(err))
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    try:
        seeds, max_seeds = seq.parse_seeds(args.seeds, args.max_seeds)
    except ValueError as err:
        parser.error(str(err))
    several = max(gpus.values()) > 1
    launcher = args.launcher or ('pytorch' if several else 'none')
    if launcher == 'none' and several:
        parser.error('--gpus > 1 needs --launcher pytorch or slurm')
    if launcher == 'slurm':
        if args.jobs != 1:
            parser.error('--jobs is for the local executor; SLURM runs every ready job at once')
        executor = SlurmOptions(**{o: getattr(args, o) for o in SLURM_OPTIONS},
                                gpus_per_node=args.gpus_per_node,
                                cpus_per_gpu=args.cpus_per_gpu,
                                requeue_before=args.requeue_before,
                                sbatch_args=args.sbatch_args)
    else:
        executor = LocalOptions(launcher=launcher, jobs=args.jobs)
    return TableOptions(
        tables=tuple(TABLES) if args.table == 'all' else (args.table,),
        profile=args.profile, rows=tuple(split_csv(args.rows)),
        tasks=tuple(split_csv(args.tasks)), seeds=seeds, max_seeds=max_seeds,
        gpus=frozen_gpus(gpus),
        executor=executor, rerun_stale=args.rerun_stale,
        data_root=Path(args.data_root).expanduser() if args.data_root else None,
        work_dir=Path(args.work_dir).expanduser().resolve(), dry_run=args.dry_run,
        report=not args.no_report,
        report_dir=Path(args.report_dir).expanduser().resolve() if args.report_dir else None,
        trackers=tuple(trackers), reduction=reduction)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # SIGTERM (kill, scancel) and SIGINT alike stop the runs cleanly; SIGINT is set explicitly
    # because a shell starts background jobs with it ignored.
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        options = parse_args(argv)
        if not options.dry_run:
            check_accounts(options.trackers)
            ensure_installed(options.trackers)
        status = 0
        for name in options.tables:
            table = get_table(name)
            report = report_command(table, options) if options.report else None
            if options.max_seeds and not options.dry_run:
                status = max(status, seeds_auto(table, options, argv, report))
            else:
                status = max(status, run_table(table, options, report))
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
