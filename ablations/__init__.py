"""The papers' ablation tables as data. ``get_table(name)`` is the one way in."""
from .mambavision_tables import TABLE4, TABLE5, TABLE_S1
from .mobilemamba_tables import MRFFI
from .schema import METRICS, NOT_PUBLISHED, TASKS, AblationTable, Claim, Metric, Row, Source

TABLES: dict[str, AblationTable] = {t.name: t for t in (TABLE4, TABLE5, TABLE_S1, MRFFI)}


def get_table(name: str) -> AblationTable:
    """The table called ``name``; a clear error listing the known tables otherwise."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f'unknown ablation table {name!r}; known tables: '
                         + ', '.join(TABLES)) from None


__all__ = ['TABLES', 'get_table', 'AblationTable', 'Row', 'Metric', 'Claim', 'Source', 'METRICS',
           'NOT_PUBLISHED', 'TASKS']
