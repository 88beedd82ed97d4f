"""Evaluate a checkpoint in an ablation row's config: ``./run_all.sh eval``.

    python -m tools.eval_checkpoint TABLE --rows R[,R2] --checkpoint FILE [--tasks cls|det|seg]
        [--profile smoke|full] [--data-root DIR] [--work-dir DIR] [--fuse-bn] [--no-ema]
        [--launcher none|pytorch|slurm] [--gpus N] [--partition P] [--force]
        [--trust-checkpoint]

What is read from FILE, the model it is checked against and where the result goes: see
``runs.commands.evaluate``, the engine this front calls.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES, TASKS  # noqa: E402
from ablations.compose import PROFILES  # noqa: E402
from backbones.checkpoint_io import CheckpointError, trust_checkpoints  # noqa: E402
from runs.commands.evaluate import EvalError, EvalOptions, run  # noqa: E402
from runs.executors.process_layout import LAUNCHERS, LayoutError, process_layout  # noqa: E402
from runs.options import (  # noqa: E402
    DEFAULT_WORK_DIR,
    parse_vis,  # noqa: E402
    split_csv,
)
from runs.tracking.tracker_runs import TRACKERS  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[EvalOptions, bool]:
    """The options, and whether to trust the checkpoint (a loader setting, not an option of
    the eval itself)."""
    parser = argparse.ArgumentParser(
        prog='run_all.sh eval',
        description='Evaluate a checkpoint (official or ours) in an ablation row\'s config.')
    parser.add_argument('table', help=f'one of: {", ".join(TABLES)}; or a table file of your own')
    parser.add_argument('--rows', required=True, help='comma-separated row slugs')
    parser.add_argument('--tasks', help=f'one of {", ".join(TASKS)} (default: the task the '
                                        f'checkpoint\'s keys show)')
    parser.add_argument('--checkpoint', required=True, help='the checkpoint file')
    parser.add_argument('--profile', default='smoke', choices=PROFILES,
                        help='smoke (default): generated tiny data; full: the real dataset')
    parser.add_argument('--data-root', help='datasets root (full profile; smoke: generated)')
    parser.add_argument('--work-dir', default=str(DEFAULT_WORK_DIR))
    parser.add_argument('--fuse-bn', action='store_true',
                        help='MobileMamba: fold BatchNorms before evaluating')
    parser.add_argument('--no-ema', action='store_true',
                        help='take the plain weights even when the file has EMA ones')
    parser.add_argument('--launcher', default='none', choices=LAUNCHERS)
    parser.add_argument('--gpus', type=int, default=1, help='GPUs (pytorch/slurm)')
    parser.add_argument('--partition', help='SLURM partition for srun')
    parser.add_argument('--force', action='store_true', help='evaluate again even if finished')
    parser.add_argument('--vis', help=f'trackers the eval also logs to: {", ".join(TRACKERS)} '
                                      '(installed on first use)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load FILE with weights_only=False (only a file you trust fully: '
                             'unpickling can run code)')
    args = parser.parse_args(argv)
    if args.gpus < 1:
        parser.error(f'--gpus must be at least 1, got {args.gpus}')
    try:  # the processes the eval starts: refused here, before anything is written
        process_layout(args.gpus, args.launcher, 'gpu')
    except LayoutError as err:
        parser.error(str(err))
    try:
        trackers = parse_vis(args.vis)
    except ValueError as err:
        parser.error(str(err))
    return EvalOptions(
        table=args.table, rows=tuple(split_csv(args.rows)), tasks=tuple(split_csv(args.tasks)),
        checkpoint=Path(args.checkpoint), profile=args.profile,
        data_root=Path(args.data_root) if args.data_root else None,
        work_dir=Path(args.work_dir).expanduser().resolve(), fuse_bn=args.fuse_bn,
        no_ema=args.no_ema, launcher=args.launcher, gpus=args.gpus, partition=args.partition,
        force=args.force, trackers=tuple(trackers)), args.trust_checkpoint


def main(argv: Optional[Sequence[str]] = None) -> int:
    options, trust = parse_args(argv)
    trust_checkpoints(trust)
    try:
        return run(options)
    except (EvalError, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f'run_all.sh eval: error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
