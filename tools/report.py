"""``./run_all.sh report <table> [--work-dir DIR] [--out DIR] [--pick paper|last|best]
[--profile P] [--no-complexity]``: a table's runs into the paper's table (``reports``).

Exit status: 0 when the report was written (warnings go to stderr and into the report),
1 when no number at all could be read (no runs, or none of them gave a value), 2 for bad
arguments, such as an unknown table. It prints its own lines only: what the toolkits say while
the complexity column builds the rows' models stays out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES, get_table  # noqa: E402
from reports.parsing import PICKS, show_path  # noqa: E402
from reports.table_report import report  # noqa: E402
from runs.console import quiet_toolkits  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='run_all.sh report',
        description='Turn the mmengine logs of an ablation table\'s runs into the paper\'s '
                    'table: <out>/<table>.md, .csv, _steps.csv, .png (steps from the first '
                    'row) and _absolute.png.')
    parser.add_argument('table', help='ablation table: ' + ', '.join(TABLES) + '; or a table '
                        'file of your own (the path the table command was given)')
    parser.add_argument('--work-dir', default='work_dirs',
                        help='folder holding <table>/<profile>/<row>/<task>/seed<k>/ '
                             '(default: work_dirs)')
    parser.add_argument('--out', help='output folder (default: reports/<table>)')
    parser.add_argument('--pick', choices=PICKS, default='paper',
                        help='paper (default): the evaluation each paper reports (best or final, '
                             'by recipe); last: the final one; best: the best one')
    parser.add_argument('--profile', help='report only runs of this profile (default: the '
                                          'profile of the newest run)')
    parser.add_argument('--no-complexity', action='store_true',
                        help='do not build the models to count params and FLOPs')
    return parser



def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        table = get_table(args.table)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path('reports') / table.name
    with quiet_toolkits():
        status, warnings, written = report(table, Path(args.work_dir), out, args.pick,
                                           args.profile, args.no_complexity)
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    for path in written:
        print(f'wrote {show_path(path)}')
    return status


if __name__ == '__main__':
    sys.exit(main())
