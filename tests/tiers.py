"""The quick tier's stand-ins for long parametrized lists (issue 32): the first case of each group
stays in ``-m "not slow"``, the others run in the whole suite only. A property then keeps one
quick check per group (a family, a task, a kind of fact) and every case in CI."""
from __future__ import annotations

from typing import Callable, Hashable, Iterable

import pytest


def first_of_each(cases: Iterable, group: Callable[[object], Hashable]) -> list:
    """``cases`` (values, tuples or ``pytest.param``) with all but the first of each ``group``
    marked slow; ``group`` gets a case's values."""
    seen, out = set(), []
    for case in cases:
        values = case.values if hasattr(case, 'values') and hasattr(case, 'marks') else \
            (case if isinstance(case, tuple) else (case,))
        key = group(values if len(values) > 1 else values[0])
        if key in seen:
            marks = list(getattr(case, 'marks', ())) + [pytest.mark.slow]
            out.append(pytest.param(*values, marks=marks, id=getattr(case, 'id', None)))
        else:
            seen.add(key)
            out.append(case)
    return out
