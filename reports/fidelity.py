"""The recipe as run, and its deviations from the official one, for a table's report.

Input: the ``fidelity`` dicts that ``ablations.compose`` attaches to each run's config (and the
runner stores in ``run.json``), keyed by (row, task). Output: text lines a report prints under
its table: one "recipe as run" line per task, and numbered footnotes for the deviations, with the
marks to put beside the cells they affect.
"""
from __future__ import annotations

from typing import Mapping, Optional

from ablations.compose import describe_fidelity


def recipe_block(records: Mapping[tuple[str, str], dict]) -> list[str]:
    """One line per task: how its runs trained (identical runs are described once)."""
    lines = []
    by_task: dict[str, dict[str, list[str]]] = {}
    for (row, task), record in records.items():
        by_task.setdefault(task, {}).setdefault(describe_fidelity(record), []).append(row)
    for task in sorted(by_task):
        described = by_task[task]
        for text, rows in described.items():
            who = '' if len(described) == 1 else f' ({", ".join(rows)})'
            lines.append(f'Recipe as run, {task}{who}: {text}')
    return lines


def deviation_footnotes(records: Mapping[tuple[str, str], dict]
                        ) -> tuple[list[str], dict[tuple[str, str], str]]:
    """Numbered footnotes, one per distinct deviation, and each (row, task)'s marks.

    Returns ``(lines, marks)``: ``lines`` like ``'[r1] cls: lr 5e-3 as the official yaml...'``;
    ``marks[(row, task)]`` like ``'[r1,r2]'`` (empty when the run has no deviation), to print
    beside that row's cells of that task's metrics.
    """
    numbers: dict[tuple[str, str], int] = {}
    marks: dict[tuple[str, str], str] = {}
    for key in sorted(records):
        own = []
        for text in records[key].get('deviations') or []:
            note = (key[1], text)
            numbers.setdefault(note, len(numbers) + 1)
            own.append(f'r{numbers[note]}')
        marks[key] = f'[{",".join(own)}]' if own else ''
    lines = [f'[r{n}] {task}: {text}' for (task, text), n in
             sorted(numbers.items(), key=lambda item: item[1])]
    return lines, marks


def fidelity_section(records: Mapping[tuple[str, str], dict],
                     title: Optional[str] = 'Recipe as run') -> list[str]:
    """The block a report prints under a table: recipe lines, then the deviation footnotes."""
    if not records:
        return []
    lines = [title, ''] if title else []
    lines += recipe_block(records)
    footnotes, _ = deviation_footnotes(records)
    if footnotes:
        lines += ['', 'Deviations from the official recipes:'] + footnotes
    return lines
