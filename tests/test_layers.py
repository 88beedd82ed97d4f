"""The suite's layers import one way: tools -> reports -> runs -> ablations -> engine ->
backbones -> backbones/ops. A lower layer never imports a higher one, not even lazily inside a
function, nor starts one by path; ``tools/`` holds command-line fronts only, and nothing
imports from it. Each package and sub-package says what it owns; file names are unique.

Read from the source (every import statement, at any depth), not by importing the modules, so
a function-local import that has not run yet is caught too.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Lowest first. ``backbones.ops`` is a layer of its own under ``backbones``.
LAYERS = ('backbones.ops', 'backbones', 'engine', 'ablations', 'runs', 'reports', 'tools')
RANK = {name: i for i, name in enumerate(LAYERS)}
PACKAGES = ('backbones', 'engine', 'ablations', 'runs', 'reports')


def layer_of(module: str) -> str | None:
    """The suite layer a dotted module name belongs to; None for a third-party module."""
    if module == 'backbones.ops' or module.startswith('backbones.ops.'):
        return 'backbones.ops'
    top = module.split('.')[0]
    return top if top in RANK else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = module_name(path)
    package = own if path.name == '__init__.py' else own.rpartition('.')[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if target:
                found.append((node.lineno, target))
            # ``from backbones import ops`` names a submodule: it counts as that module.
            found += [(node.lineno, f'{target}.{alias.name}' if target else alias.name)
                      for alias in node.names
                      if not target or layer_of(f'{target}.{alias.name}') != layer_of(target)]
    return found


def package_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob('*.py'))


def test_layer_of():
    assert layer_of('backbones.ops.haar') == 'backbones.ops'
    assert layer_of('engine.mesa') == 'engine'
    assert layer_of('backbones.mambavision') == 'backbones'
    assert layer_of('runs.rundir.identity') == 'runs'
    assert layer_of('mmengine.config') is None


@pytest.mark.parametrize('path', package_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path):
    own = layer_of(module_name(path))
    upward = [f'{path.relative_to(REPO)}:{line} imports {target} ({layer_of(target)} is above '
              f'{own})' for line, target in imported_modules(path)
              if layer_of(target) is not None and RANK[layer_of(target)] > RANK[own]]
    assert not upward, '\n'.join(upward)


def test_the_check_sees_function_local_and_relative_imports(tmp_path):
    """The check itself: a lazy import inside a function and a relative one both count."""
    probe = REPO / 'ablations' / '_layer_probe.py'
    probe.write_text('def f():\n    from tools.run_table import main\n'
                     'from .. import reports\n')
    try:
        targets = [t for _, t in imported_modules(probe)]
    finally:
        probe.unlink()
    assert 'tools.run_table' in targets and 'reports' in targets


def test_nothing_imports_tools():
    """``tools/`` is the top: its files are run, never imported by the packages or each other."""
    users = [f'{p.relative_to(REPO)}:{line} imports {t}'
             for p in package_files() + sorted((REPO / 'tools').glob('*.py'))
             for line, t in imported_modules(p) if layer_of(t) == 'tools']
    assert not users, '\n'.join(users)


# What a package may not start as a process: ``tools/`` by path (``REPO / 'tools' / ...``,
# ``'tools/x.py'``) or as a module (``-m tools.x``). The engine starts its own modules.
TOOLS_BY_PATH = re.compile(r"""['"]tools['"]\s*/|[\[,(]\s*['"](\./)?tools/\w+\.py['"]|"""
                           r"""['"]-m['"],\s*['"]tools\.""")


@pytest.mark.parametrize('path', package_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_package_starts_tools(path):
    """A package never starts a front of ``tools/``: ``runs`` starts ``engine.trainer`` and
    ``engine.tester`` with ``python -m``, not ``tools/train.py`` by path."""
    code = [line for line in path.read_text().splitlines()
            if not line.lstrip().startswith('#')]
    found = [f'{path.relative_to(REPO)}: {line.strip()}' for line in code
             if TOOLS_BY_PATH.search(line)]
    assert not found, '\n'.join(found)


def test_the_tools_check_sees_paths_and_modules():
    for line in ("REPO / 'tools' / 'train.py'", "['python', 'tools/test.py']",
                 "[sys.executable, '-m', 'tools.report']"):
        assert TOOLS_BY_PATH.search(line), line
    assert not TOOLS_BY_PATH.search("[sys.executable, '-m', 'engine.trainer']")


def subpackages() -> list[Path]:
    return sorted({p.parent for pkg in PACKAGES for p in (REPO / pkg).rglob('__init__.py')})


@pytest.mark.parametrize('folder', subpackages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_package_says_what_it_owns(folder):
    """A docstring of one to about three lines of summary opens every package."""
    doc = ast.get_docstring(ast.parse((folder / '__init__.py').read_text()))
    assert doc, f'{folder.relative_to(REPO)}/__init__.py has no docstring'
    summary = doc.split('\n\n')[0]
    assert len(summary.splitlines()) <= 3, summary


def test_runs_is_grouped_by_concern():
    """``runs/`` holds sub-packages, one concern each, and only a few modules of its own."""
    own = sorted(p.name for p in (REPO / 'runs').glob('*.py') if p.name != '__init__.py')
    assert own == ['console.py', 'options.py', 'provenance.py'], own
    groups = sorted(p.name for p in (REPO / 'runs').iterdir()
                    if (p / '__init__.py').exists())
    assert groups == ['commands', 'datasets', 'executors', 'logs', 'rundir', 'table',
                      'tracking'], groups


def test_file_names_are_unique():
    """No two modules share a file name, so a traceback names one file. (Configs are data named
    by OpenMMLab's conventions, ``smoke.py`` in each family, and are not modules.)"""
    seen: dict[str, list[str]] = {}
    for path in package_files() + sorted((REPO / 'tools').glob('*.py')) + \
            sorted((REPO / 'benchmarks').glob('*.py')) + sorted((REPO / 'tests').glob('*.py')):
        if path.name not in ('__init__.py', '__main__.py', 'conftest.py'):
            seen.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    repeated = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not repeated, repeated


def test_mmengine_components_live_in_engine():
    """Hooks, loops, lr schedulers, samplers, transforms and vis backends are registered in
    ``engine/``; ``backbones/`` registers models (and their necks and heads) only."""
    registering = re.compile(r'@(HOOKS|LOOPS|PARAM_SCHEDULERS|DATA_SAMPLERS|TRANSFORMS|'
                             r'VISBACKENDS)\.register_module')
    outside = [f'{p.relative_to(REPO)}' for p in package_files()
               if registering.search(p.read_text()) and p.parts[len(REPO.parts)] != 'engine']
    assert not outside, outside
