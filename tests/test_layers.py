"""The suite's layers import one way: tools -> reports -> runs -> ablations -> backbones ->
backbones/ops. A lower layer never imports a higher one, not even lazily inside a function;
``tools/`` holds command-line fronts only, and nothing imports from it.

Read from the source (every import statement, at any depth), not by importing the modules, so
a function-local import that has not run yet is caught too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Lowest first. ``backbones.ops`` is a layer of its own under ``backbones``.
LAYERS = ('backbones.ops', 'backbones', 'ablations', 'runs', 'reports', 'tools')
RANK = {name: i for i, name in enumerate(LAYERS)}
PACKAGES = ('backbones', 'ablations', 'runs', 'reports')


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
    assert layer_of('backbones.mesa') == 'backbones'
    assert layer_of('runs.identity') == 'runs'
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
