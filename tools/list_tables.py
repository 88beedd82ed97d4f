"""``./run_all.sh list``: the known tables and their rows. Plain Python (the tables are data), so
it runs without the environment."""
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import TABLES  # noqa: E402


def main() -> None:
    for table in TABLES.values():
        print(f'{table.name}: {table.title}')
        print(f'  source: {table.source}; tasks: {", ".join(table.tasks)}; '
              f'metrics: {", ".join(table.metrics)}')
        for row in table.rows:
            extra = '' if row.in_paper else '  [not in the paper]'
            print(f'  {row.slug:18s} {row.name}{extra}')


if __name__ == '__main__':
    main()
