"""``./run_all.sh status <table> [--rows R] [--tasks T] [--seeds N] [--profile P] [--wait]``: where
each run of a table is.

One line per run: state (``runs.rundir.STATES``), SLURM job id, progress from the mmengine log,
elapsed, ETA; then a summary. A running full-profile run whose row is the released model of an
official run (``ablations/reference_catalog.py``) gets a second line: its last evaluation and its lr
now, each against the official run's at the same epoch or step (``runs.commands.table_status``).

``--rows``, ``--tasks`` and ``--seeds`` select runs as the table command does, so the subset
that was queued can be followed on its own; without them every run of the table is listed.
``--wait`` blocks until every selected run has ended (:data:`ENDED`), printing each change of
state, then lists them. Exit 0 only when every selected run has finished (and none is stale), 1
otherwise, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES  # noqa: E402
from ablations.compose import PROFILES  # noqa: E402
from ablations.reduction import split_profile  # noqa: E402
from runs import console  # noqa: E402
from runs.commands.table_status import status  # noqa: E402
from runs.options import DEFAULT_WORK_DIR, split_csv  # noqa: E402


def _profile(value: str) -> str:
    try:
        if split_profile(value)[0] in PROFILES:
            return value
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    raise argparse.ArgumentTypeError(f'{value!r} is not a profile; valid: {", ".join(PROFILES)}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='run_all.sh status',
                                     description='Where each run of a table is.')
    parser.add_argument('table', help='one of: ' + ', '.join(TABLES) + '; or a table file of '
                        'your own (the path the table command was given)')
    parser.add_argument('--work-dir', default=str(DEFAULT_WORK_DIR))
    parser.add_argument('--profile', type=_profile, help=f'only this profile: '
                        f'{", ".join(PROFILES)}, or a reduced full profile such as full@0.1+in100')
    parser.add_argument('--rows', help='only these rows (comma-separated slugs), as the table '
                                       'command takes them')
    parser.add_argument('--tasks', help='only these tasks (comma-separated)')
    parser.add_argument('--seeds', type=int, help='only seeds 0..N-1 (default: every seed found)')
    parser.add_argument('--wait', action='store_true',
                        help='block until every selected run has ended, then list them; exit 0 '
                             'only when all finished')
    parser.add_argument('--poll', type=float, default=30.0,
                        help='--wait: seconds between looks (default 30)')
    parser.add_argument('--timeout', type=float,
                        help='--wait: give up (exit 1) after this many seconds')
    args = parser.parse_args(argv)
    try:
        if args.poll <= 0:
            raise ValueError(f'--poll must be above 0 seconds, got {args.poll:g}')
        if args.timeout is not None and args.timeout < 0:
            raise ValueError(f'--timeout must be 0 or more seconds, got {args.timeout:g}')
        with console.quiet_toolkits():
            return status(args.table, Path(args.work_dir).resolve(), args.profile,
                          split_csv(args.rows), split_csv(args.tasks), args.seeds,
                          args.poll if args.wait else None, args.timeout)
    except ValueError as err:
        print(f'run_all.sh status: error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('run_all.sh status: interrupted; the runs go on', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
