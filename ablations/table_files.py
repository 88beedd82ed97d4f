"""Ablation tables of your own: a Python file outside the repository that defines ``TABLE``.

    ./run_all.sh my_ablation.py --rows conv2-concat,no-scan    (status, report, plan, eval and
                                                                doctor take the same path)

Its vocabulary is ``ablations.get_table``, ``AblationTable``, ``Row``, ``Claim`` and
``NOT_PUBLISHED``: ``dataclasses.replace(get_table('table4'), name=..., rows=... + (Row(...),),
claims=...)`` extends a paper table. :func:`load_table_file` imports the file as a module named
after it (its folder first on ``sys.path``), so the mixers it registers exist in this process,
and settles the table once:

- a row with a paper row's slug must be that row, unchanged: it keeps its published numbers and
  notes; every other row is yours: ``in_paper=False``, no published number (``n/p``), a note;
- a base config is taken beside the file where it exists there, else from the repository;
- a paper table's name is refused: the runs go to ``<work_dir>/<name>/``.

A run's config imports the module again (``custom_imports``), its folder put on the path by the
config itself (:func:`dump_config`), and carries the file's sha256 (``ablation.table_file``): an
edited file makes the table's finished runs stale, as an edited config does.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import keyword
import sys
from pathlib import Path
from typing import Optional, Union

from .schema import NOT_PUBLISHED, AblationTable

SUFFIX = '.py'
TABLE_VARIABLE = 'TABLE'


class TableFileError(ValueError):
    """A table file that cannot be used, in one line naming the file."""


@dataclasses.dataclass(frozen=True)
class TableFile:
    """A table loaded from a file: where it is, the module it was imported as, its sha256."""
    path: Path
    module: str
    sha256: str
    table: AblationTable


# The file tables this process has loaded, by table name: the runs' keys name a table, and
# rebuilding a run's config (staleness, reports) finds the file table again by that name.
_LOADED: dict[str, TableFile] = {}
# The folders put on sys.path for a table file's module, by module name.
_FOLDERS: dict[str, str] = {}


def is_table_file(text: str) -> bool:
    """Whether a table argument names a file rather than a paper table."""
    return str(text).endswith(SUFFIX)


def loaded(name: str) -> Optional[AblationTable]:
    """The file table of that name this process has loaded, if any."""
    entry = _LOADED.get(name)
    return entry.table if entry else None


def table_file_of(table: Union[AblationTable, str]) -> Optional[TableFile]:
    """Where a table came from, when it was loaded from a file (None for the papers' tables)."""
    name = table if isinstance(table, str) else table.name
    entry = _LOADED.get(name)
    if entry is None or (not isinstance(table, str) and entry.table is not table):
        return None
    return entry


def table_reference(table: Union[AblationTable, str]) -> str:
    """What finds the table again on a command line or in another process: a file table's path,
    a paper table's name."""
    entry = table_file_of(table)
    if entry is not None:
        return str(entry.path)
    return table if isinstance(table, str) else table.name


def load_table_file(path: Union[str, Path], paper_tables: dict) -> AblationTable:
    """The ``TABLE`` a file defines, settled (see the module's docstring); TableFileError, one
    line naming the file, when it is missing, does not import, defines no table or breaks a
    rule. ``paper_tables``: the papers' tables by name (``ablations.TABLES``). Loading the same
    unchanged file again returns the same table."""
    given = Path(path).expanduser()
    if not given.is_file():
        raise TableFileError(f'table file {path} does not exist (a table is one of: '
                             f'{", ".join(paper_tables)}; or a Python file that defines '
                             f'{TABLE_VARIABLE})')
    path = given.resolve()
    module = path.stem
    if not module.isidentifier() or keyword.iskeyword(module):
        raise TableFileError(f'{path}: a table file is imported as a module: its name must be '
                             f'letters, digits and _ (not starting with a digit), got '
                             f'{path.name!r}')
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    for entry in _LOADED.values():
        if entry.path == path and entry.sha256 == sha256:
            return entry.table
    _check_module_name(module, path)
    _forget(module)
    folder = str(path.parent)
    if folder not in sys.path:  # as for a script: its sibling modules import
        sys.path.insert(0, folder)
        _FOLDERS[module] = folder
    try:
        table = _settle(_execute(module, path, paper_tables), path, paper_tables)
    except TableFileError:
        _forget(module)
        raise
    _LOADED[table.name] = TableFile(path, module, sha256, table)
    return table


def _execute(module: str, path: Path, paper_tables: dict) -> AblationTable:
    """Import the file as ``module`` and return its ``TABLE``, as the user wrote it."""
    spec = importlib.util.spec_from_file_location(module, path)
    imported = importlib.util.module_from_spec(spec)
    sys.modules[module] = imported
    try:
        spec.loader.exec_module(imported)
    except (Exception, SystemExit) as err:
        first = (str(err).strip().splitlines() or [''])[0]
        raise TableFileError(f'{path}: does not import: {type(err).__name__}: {first}') from None
    table = getattr(imported, TABLE_VARIABLE, None)
    if not isinstance(table, AblationTable):
        what = 'defines no TABLE' if table is None else \
            f'its TABLE is a {type(table).__name__}, not an AblationTable'
        raise TableFileError(f'{path}: {what}; e.g. TABLE = dataclasses.replace('
                             f'get_table("table4"), name="my_table", rows=...) '
                             f'(docs/own_ablation.md)')
    if table.name in paper_tables:
        raise TableFileError(f'{path}: TABLE.name {table.name!r} is a paper table\'s name (paper '
                             f'tables: {", ".join(paper_tables)}); give yours its own name: its '
                             f'runs go to <work-dir>/<name>/')
    return table


def _check_module_name(module: str, path: Path) -> None:
    """The file's module name must not be another module's: ``custom_imports`` imports by name."""
    ours = {entry.module for entry in _LOADED.values()}
    present = sys.modules.get(module)
    if present is not None and module not in ours:
        origin = getattr(present, '__file__', None)
        if origin is None or Path(origin).resolve() != path:
            raise TableFileError(f'{path}: its module name {module!r} is taken (by '
                                 f'{origin or "a built-in module"}): rename the file')
        return
    importlib.invalidate_caches()
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and module not in ours and (
            spec.origin is None or not spec.has_location or Path(spec.origin).resolve() != path):
        raise TableFileError(f'{path}: its module name {module!r} is taken (by '
                             f'{spec.origin or "a package"}): rename the file')


def _forget(module: str) -> None:
    """Drop an earlier import of a table file's module and what it registered in mmengine's
    registries, so that the file can be loaded again (edited, or another copy of it)."""
    sys.modules.pop(module, None)
    for name in [n for n, entry in _LOADED.items() if entry.module == module]:
        del _LOADED[name]
    folder = _FOLDERS.pop(module, None)
    if folder in sys.path:
        sys.path.remove(folder)
    registry_module = sys.modules.get('mmengine.registry')
    if registry_module is None:  # nothing can have been registered
        return
    stack = [r for r in vars(registry_module).values() if isinstance(r, registry_module.Registry)]
    seen = set()
    while stack:
        registry = stack.pop()
        if id(registry) in seen:
            continue
        seen.add(id(registry))
        stack.extend(registry.children.values())
        for name, cls in list(registry.module_dict.items()):
            if getattr(cls, '__module__', None) == module:
                del registry.module_dict[name]


def _settle(table: AblationTable, path: Path, paper_tables: dict) -> AblationTable:
    paper_rows = {row.slug: (paper.name, row) for paper in paper_tables.values()
                  for row in paper.rows}
    own_note = (f'Your own row ({path.name}), not in {table.source.paper}, {table.source.table}: '
                'no published number (n/p).')
    rows = []
    for row in table.rows:
        if row.slug in paper_rows:
            paper_name, paper_row = paper_rows[row.slug]
            if row != paper_row:
                changed = [f.name for f in dataclasses.fields(row)
                           if getattr(row, f.name) != getattr(paper_row, f.name)]
                raise TableFileError(
                    f'{path}: row {row.slug!r} is {paper_name}\'s row of that slug with '
                    f'{", ".join(changed)} changed; keep the paper\'s row as it is, or give '
                    f'yours a slug of its own')
            rows.append(row)
            continue
        claimed = {k: v for k, v in row.published.items() if v is not NOT_PUBLISHED}
        claimed.update({k: getattr(row, k) for k in ('published_params_m', 'published_gflops')
                        if getattr(row, k) is not None})
        if claimed:
            raise TableFileError(f'{path}: row {row.slug!r} is your own: it has no published '
                                 f'numbers, got {claimed}; the paper\'s rows keep theirs')
        rows.append(dataclasses.replace(
            row, in_paper=False, published={m: NOT_PUBLISHED for m in table.metrics},
            notes=(*row.notes, own_note)))
    base_configs = {task: str(path.parent / config) if (path.parent / config).is_file()
                    else config for task, config in table.base_configs.items()}
    return dataclasses.replace(table, rows=tuple(rows), base_configs=base_configs)


# --- the runs' configs ---------------------------------------------------------------------------

def import_table_file(cfg, table: AblationTable) -> None:
    """A file table's run config (in place): its module in ``custom_imports``, its sha256 in
    ``ablation.table_file`` (part of the config's hash). Nothing for a paper table."""
    entry = table_file_of(table)
    if entry is None:
        return
    imports = dict(cfg.get('custom_imports') or {})
    imports['imports'] = list(dict.fromkeys([*imports.get('imports', []), entry.module]))
    imports['allow_failed_imports'] = False
    cfg.custom_imports = imports
    cfg.ablation = dict(cfg.get('ablation') or {},
                        table_file=dict(module=entry.module, sha256=entry.sha256))


def table_file_record(table: Union[AblationTable, str]) -> Optional[dict]:
    """What a run's record keeps of its table file: path and sha256 (None for a paper table)."""
    entry = table_file_of(table)
    return None if entry is None else dict(path=str(entry.path), sha256=entry.sha256)


PREAMBLE = '''\
# The module of a table file, in custom_imports, lives outside the repository: its folder goes
# on the path of whatever loads this config (the suite's jobs, tools/train.py, OpenMMLab's own
# tools). Table file: {file} (ablations/table_files.py)
import sys
if {folder!r} not in sys.path:
    sys.path.insert(0, {folder!r})

'''


def dump_config(cfg, path: Union[str, Path]) -> None:
    """``cfg.dump(path)``; a file table's config also puts the file's folder on ``sys.path``
    before mmengine imports its ``custom_imports``, so that it runs on its own anywhere."""
    cfg.dump(str(path))
    module = ((cfg.get('ablation') or {}).get('table_file') or {}).get('module')
    entry = next((e for e in _LOADED.values() if e.module == module), None)
    if entry is not None:
        path = Path(path)
        path.write_text(PREAMBLE.format(file=entry.path, folder=str(entry.path.parent))
                        + path.read_text())
