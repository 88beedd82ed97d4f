"""The papers' ablation tables as data. ``get_table(name)`` is the one way in; it also takes the
path of a table file of your own (``ablations.table_files``)."""
from .mambavision_tables import TABLE4, TABLE5, TABLE_S1
from .mobilemamba_tables import MRFFI
from .schema import METRICS, NOT_PUBLISHED, TASKS, AblationTable, Claim, Metric, Row, Source

TABLES: dict[str, AblationTable] = {t.name: t for t in (TABLE4, TABLE5, TABLE_S1, MRFFI)}

from .table_files import TableFileError, is_table_file, load_table_file, loaded  # noqa: E402


def get_table(name: str) -> AblationTable:
    """The table called ``name``, or the ``TABLE`` of the file ``name`` names (``*.py``; a file
    table this process loaded is found by its name too); a clear error listing the known tables
    otherwise."""
    if name in TABLES:
        return TABLES[name]
    if is_table_file(name):
        return load_table_file(name, TABLES)
    table = loaded(name)
    if table is None:
        raise ValueError(f'unknown ablation table {name!r}; known tables: ' + ', '.join(TABLES)
                         + '; or a table file of your own (a .py file that defines TABLE)')
    return table


__all__ = ['TABLES', 'get_table', 'AblationTable', 'Row', 'Metric', 'Claim', 'Source', 'METRICS',
           'NOT_PUBLISHED', 'TASKS', 'TableFileError']
