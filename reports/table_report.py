"""A table's report from its runs' logs: :func:`report` writes ``<table>.md``, ``.csv``,
``_steps.csv``, ``.png`` and ``_absolute.png`` (the front: ``tools/report.py``,
``./run_all.sh report``).
"""
from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Optional

import pandas as pd

from ablations import METRICS, AblationTable
from runs.logs.early_ranking import reduced_run_caveat
from runs.rundir import RecordError, RunKey, read_record

from .complexity_column import complexity_of_rows
from .fidelity import deviation_footnotes, fidelity_section
from .parsing import collect, show_path
from .reference_sections import reference_sections
from .released import released_rows, render_released
from .seed_rounds import read_rounds, rounds_file, rounds_section
from .rendering import (
    ReportContext,
    footnote_marks,
    reduction_of,
    render_absolute_png,
    render_markdown,
    render_png,
    write_csv,
    write_steps_csv,
    withhold_verdicts,
)
from .tabulation import (
    baseline_steps,
    claim_check,
    claim_steps,
    pair_agreement,
    paper_layout,
    select_profile,
    summarize,
)


def git_commit() -> str:
    """The reporter's own commit, marked when the tree has uncommitted changes."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return 'none (no commit yet)'
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + (' + uncommitted changes' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def _distinct(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values.dropna()})


def _complexity(table: AblationTable, out: Path, skip: bool
                ) -> tuple[Optional[dict], list[str]]:
    if not skip:
        return complexity_of_rows(table, out)
    # Skipped: keep the columns only where the paper prints numbers a reader may look for.
    published = any(r.published_params_m is not None or r.published_gflops is not None
                    for r in table.rows)
    return ({} if published else None), []


def fidelity_records(work_dir: Path, table: AblationTable, kept: pd.DataFrame
                     ) -> dict[tuple[str, str], dict]:
    """The recipe as run (run.json's ``fidelity``) of each reported (row, task), read from its
    lowest seed."""
    records = {}
    for (row, task, profile), group in kept.groupby(['row', 'task', 'profile'], sort=True):
        key = RunKey.train(table.name, profile, row, task, int(group['seed'].min()))
        try:
            fidelity = (read_record(key.dir(work_dir)) or {}).get('fidelity')
        except RecordError:
            fidelity = None
        if fidelity:
            records[row, task] = fidelity
    return records


def mark_cells(layout: pd.DataFrame, table: AblationTable,
               marks: dict[tuple[str, str], str]) -> pd.DataFrame:
    """Put each (row, task)'s deviation marks beside that task's cells of that row."""
    layout = layout.copy()
    for i, row in enumerate(table.rows):
        for metric in table.metrics:
            mark = marks.get((row.slug, METRICS[metric].task), '')
            if mark:
                column = METRICS[metric].label
                layout.at[i, column] = f'{layout.at[i, column]} {mark}'
    return layout


def report(table: AblationTable, work_dir: Path, out: Path, pick: str = 'last',
           profile: Optional[str] = None, no_complexity: bool = False
           ) -> tuple[int, list[str], list[Path]]:
    """Write the report files; the exit status, the warnings and the files written."""
    frame, warnings = collect(work_dir, table, pick)
    released = render_released(released_rows(work_dir, table, profile))
    if frame.empty and not released:
        return 1, warnings + [f'nothing to report: no runs of {table.name} under '
                              f'{show_path(work_dir)}'], []
    if frame.empty:  # only evaluations of released weights
        out.mkdir(parents=True, exist_ok=True)
        path = out / f'{table.name}.md'
        path.write_text(f'# {table.title}\n\n{released}', encoding='utf-8')
        return 0, warnings, [path]
    kept, profile, profile_warnings = select_profile(frame, profile)
    warnings = profile_warnings + warnings
    frame = frame.assign(in_report=frame.index.isin(kept.index))
    cells = summarize(kept, table)
    complexity, complexity_warnings = _complexity(table, out, no_complexity)
    warnings += complexity_warnings
    marks, notes = footnote_marks(table)
    started = _distinct(kept['started'])
    reduction = reduction_of(profile)
    context = ReportContext(
        profile=profile, pick=pick, generated=datetime.now().isoformat(timespec='seconds'),
        reporter_commit=git_commit(), data_roots=_distinct(kept['data_root']),
        run_commits=_distinct(kept['commit']),
        started=(started[0], started[-1]) if started else None,
        reduced_caveats=[reduced_run_caveat(table)] if reduction.reduced else [])
    for what, values in (('data roots', context.data_roots), ('commits', context.run_commits)):
        if len(values) > 1:
            warnings.append(f'the reported runs used {len(values)} {what}: {", ".join(values)}')
    records = fidelity_records(work_dir, table, kept)
    footnotes, deviation_marks = deviation_footnotes(records)
    layout = mark_cells(paper_layout(cells, table, complexity, marks), table, deviation_marks)
    claims = claim_check(cells, table)
    if profile == 'smoke':
        claims = withhold_verdicts(claims)
    elif reduction.reduced:  # a verdict on reduced runs, never on the paper's runs
        claims = claims.assign(verdict=[f'{v} at {reduction.label}' for v in claims['verdict']])
    markdown = render_markdown(table, layout, notes, pair_agreement(cells, table),
                               claims, context, warnings,
                               recipe_lines=fidelity_section(records, title=None))
    rounds = read_rounds(rounds_file(work_dir, table.name, profile))
    if rounds:  # --seeds auto: how each claim was decided, and why the rounds stopped
        markdown = markdown.rstrip('\n') + '\n\n' + '\n'.join(
            rounds_section(rounds, smoke=profile == 'smoke'))
    if released:  # released weights in a section of their own, never as our cells
        markdown = markdown.rstrip('\n') + '\n\n' + released
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f'{table.name}{suffix}'
               for suffix in ('.md', '.csv', '_steps.csv', '.png', '_absolute.png')]
    written[0].write_text(markdown, encoding='utf-8')
    write_csv(frame, table, written[1])
    from_baseline = baseline_steps(cells, table)
    steps = pd.concat([claim_steps(cells, table), from_baseline], ignore_index=True)
    write_steps_csv(withhold_verdicts(steps) if profile == 'smoke' else steps, table, written[2])
    render_png(table, from_baseline, profile, written[3])
    render_absolute_png(table, cells, profile, written[4])
    # Rows that are the released model: our curves over the official run's.
    against, plots = reference_sections(table, work_dir, kept, out, profile)
    if against:
        text = written[0].read_text(encoding='utf-8').rstrip('\n') + '\n' + '\n'.join(against)
        written[0].write_text(text + '\n', encoding='utf-8')
        written += plots
    if not (kept['status'] == 'ok').any():
        warnings.append(f'nothing could be read: no {profile!r} run gave a value')
        return 1, warnings, written
    return 0, warnings, written
