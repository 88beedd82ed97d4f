"""Pilot every full-profile run of a table at its real size on this machine's device, and
estimate what the table costs before a cluster is booked.

    ./run_all.sh plan <table> [--rows R1,R2] [--tasks cls,det,seg] [--gpus 8[,32...]]
        [--iters N] [--gpu-mem GiB] [--out DIR] [--data-dir DIR]
        [--schedule-scale F[,F...]] [--subset none|in100[,...]] [--seeds N[,N...]|auto]
        [--max-seeds N]

What a pilot runs and measures, and the assumptions of the estimate (on a GPU: the pilot's
s/iter; without one: anchored on the official runs' measured throughput):
``runs.commands.planner``. Each --schedule-scale x --subset combination is estimated from the
same pilots with the reduced run's own schedule; for it and each --seeds, "What you learn for
what it costs" (``reports.plan_learn``): the table's GPU-hours and each claim's chance of
resolving. A run that fails in the pilot is reported with its error and its log, the others go
on, and the exit status is 1. Bad input: a one-line error, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES, get_table  # noqa: E402
from ablations.reduction import SUBSETS, Reduction, check_schedule_scale, check_subset  # noqa: E402
from runs.commands.planner import (  # noqa: E402
    CPU_GPU_MEM_GIB,
    DEFAULT_DATA_DIR,
    DEFAULT_GPUS,
    DEFAULT_ITERS,
    PILOT_WORK_DIR,
    plan_table,
)
from runs.options import split_csv  # noqa: E402
from runs.provenance import REPO  # noqa: E402
from runs.table import sequential as seq  # noqa: E402
from reports.plan_learn import learn  # noqa: E402

NO_SUBSET = 'none'


class UsageError(ValueError):
    pass


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f'{what} must be a positive integer, got {text!r}')
    return value


def _scales(text: str) -> list[float]:
    """--schedule-scale 0.1,1: each in (0, 1] (ablations.reduction's check and message)."""
    scales = []
    for item in split_csv(text) or [text]:
        try:
            value = float(item)
        except ValueError:
            value = item  # check_schedule_scale names it and the valid range
        scales.append(check_schedule_scale(value))
    return scales


def _subsets(text: str) -> list[Optional[str]]:
    """--subset none,in100: 'none' is no subset; others as ablations.reduction checks them."""
    subsets = []
    for item in split_csv(text) or [text]:
        if item == NO_SUBSET:
            subsets.append(None)
            continue
        try:
            subsets.append(check_subset(item))
        except ValueError as exc:
            raise UsageError(f'{exc}, {NO_SUBSET}') from None
    return subsets


def _seeds(text: str, max_seeds: str) -> tuple[list, Optional[int]]:
    """--seeds 3,auto with --max-seeds N (tools/run_table.py's check and messages): the seed
    options (N or 'auto') and the max-seeds of auto (None without auto)."""
    seeds, most = [], None
    for item in split_csv(text) or [text]:
        n, auto_max = seq.parse_seeds(item, max_seeds)
        seeds.append('auto' if auto_max else n)
        most = auto_max or most
    return seeds, most


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        prog='run_all.sh plan', description=__doc__.split('\n\n')[0])
    parser.add_argument('table', help=f'one of: {", ".join(TABLES)}; or a table file of your own')
    parser.add_argument('--rows', help='comma-separated row slugs (default: every row)')
    parser.add_argument('--tasks', help='comma-separated subset of the table\'s tasks')
    parser.add_argument('--gpus', default=','.join(map(str, DEFAULT_GPUS)),
                        help='GPUs per run to estimate for, e.g. 8 or 8,32 (default 8)')
    parser.add_argument('--iters', help='pilot iterations per run, the first excluded from the '
                        'timing (default: 10 on GPU, 2 on CPU; at least 2)')
    parser.add_argument('--gpu-mem', help='GiB to flag a run\'s peak memory against (default: the '
                        f'measured GPU\'s memory; {CPU_GPU_MEM_GIB:.0f} on CPU)')
    parser.add_argument('--out', help='output folder (default: reports/<table>)')
    parser.add_argument('--data-dir', default=str(DEFAULT_DATA_DIR),
                        help='where the generated pilot data is made once and reused')
    parser.add_argument('--work-dir', default=str(PILOT_WORK_DIR),
                        help='where each pilot\'s run dir and log go: '
                        '<work-dir>/<table>/<row>/<task>/')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='key=value overrides of every run\'s config (e.g. to try a smaller '
                        'batch); the plan records them')
    parser.add_argument('--schedule-scale', default='1', metavar='F[,F...]',
                        help='estimate runs with every schedule length x F, 0 < F <= 1, e.g. '
                        '0.1,1 (default 1: the full schedule; docs/reduced_runs.md)')
    parser.add_argument('--subset', default=NO_SUBSET,
                        help=f'estimate ImageNet on a class subset: {NO_SUBSET} (default), '
                        f'{", ".join(SUBSETS)}, or several, e.g. {NO_SUBSET},in100')
    parser.add_argument('--seeds', default='1',
                        help='seeds per (row, task) to cost and to power each claim for, e.g. '
                        '1,3; or auto: seeds in rounds until each claim resolves '
                        '(docs/seed_noise.md)')
    parser.add_argument('--max-seeds', default=str(seq.DEFAULT_MAX_SEEDS),
                        help='--seeds auto: at most this many seeds per row (default '
                        f'{seq.DEFAULT_MAX_SEEDS})')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        table = get_table(args.table)
        rows = [table.row(r).slug for r in split_csv(args.rows)] if args.rows else \
            [r.slug for r in table.rows]
        tasks = split_csv(args.tasks) or list(table.tasks)
        bad = [t for t in tasks if t not in table.tasks]
        if bad:
            raise UsageError(f'unknown task(s) {", ".join(bad)} for {table.name}; its tasks: '
                             f'{", ".join(table.tasks)}')
        tasks = [t for t in table.tasks if t in tasks]
        gpus = [_positive_int(g, '--gpus') for g in split_csv(args.gpus) or ['']]
        if args.iters is None:
            import torch
            iters = DEFAULT_ITERS['cuda' if torch.cuda.is_available() else 'cpu']
        else:
            iters = _positive_int(args.iters, '--iters')
            if iters < 2:
                raise UsageError(f'--iters must be at least 2 (the first is not timed), '
                                 f'got {args.iters}')
        gpu_mem = None
        if args.gpu_mem is not None:
            try:
                gpu_mem = float(args.gpu_mem)
            except ValueError:
                gpu_mem = 0.0
            if not gpu_mem > 0:
                raise UsageError(f'--gpu-mem must be a positive number of GiB, got '
                                 f'{args.gpu_mem!r}')
        reductions = list(dict.fromkeys(Reduction(scale, subset)
                                        for scale in _scales(args.schedule_scale)
                                        for subset in _subsets(args.subset)))
        seeds, max_seeds = _seeds(args.seeds, args.max_seeds)
    except ValueError as exc:
        print(f'run_all.sh plan: error: {exc}', file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else REPO / 'reports' / table.name
    return plan_table(table, rows, tasks, gpus, iters, gpu_mem, out,
                      Path(args.data_dir).expanduser().resolve(), dict(args.cfg_options),
                      Path(args.work_dir).expanduser().resolve(), reductions,
                      partial(learn, table=table, seeds=seeds, max_seeds=max_seeds))


if __name__ == '__main__':
    sys.exit(main())
