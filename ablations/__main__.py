"""`python -m ablations`: list the known tables and their rows."""
from . import TABLES


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
