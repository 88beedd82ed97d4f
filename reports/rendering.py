"""The report's files: ``<table>.md`` (the paper's layout and the claim check), ``<table>.csv``
(every value with its log file and line), ``<table>_steps.csv`` (the steps between rows computed
from those values), ``<table>.png`` (per metric, each row's step from the first row, ours with
its 95% interval beside the paper's) and ``<table>_absolute.png`` (the values themselves)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ablations import METRICS, AblationTable
from ablations.reduction import SUBSETS, Reduction, split_profile
from ablations.table_files import table_file_of

from . import stats
from .tabulation import Cell

SMOKE_BANNER = ('> **Smoke profile: pipeline checks, not reproductions.** These runs train on '
                'tiny data for a few iterations to prove that building, training, evaluating and '
                'logging work end to end. Their numbers say nothing about the paper\'s results '
                'or claims.')
REDUCED_BANNER = ('> **Reduced runs ({label}): not reproductions.** The official recipes on '
                  'real data at a fraction of their cost ({what}). The gap to a published '
                  'number is shown, never judged: a shorter schedule or fewer classes land '
                  'lower by design. The claim check compares our steps between rows with the '
                  'paper\'s steps.')
# What a smoke claim check says in place of a verdict: priors of full runs on generated data
# would give confident, meaningless verdicts.
PIPELINE_CHECK = 'pipeline check (smoke): no verdict'
UNKNOWN_BANNER = ('> **Profile unknown:** these runs have no readable run.json, so how they were '
                  'run (data, schedule) is not recorded. Treat the numbers as unverified.')
PICK_TEXT = {
    'paper': 'the evaluation each paper reports: the best one where its recipe keeps the best '
             'epoch (both ImageNet recipes: the best EMA top-1), else the final one (the CSV\'s '
             'pick column says which)',
    'last': 'the final evaluation of each run (in the newest mmengine log folder of the run '
            'that holds an evaluation)',
    'best': 'the BEST evaluation of each run (--pick best), not the final one: an optimistic '
            'choice the paper\'s numbers may not share',
}


@dataclass
class ReportContext:
    """What the header says about where the numbers come from."""
    profile: str
    pick: str
    generated: str                      # when the report was written
    reporter_commit: str
    data_roots: list[str] = field(default_factory=list)
    run_commits: list[str] = field(default_factory=list)
    started: tuple[str, str] | None = None  # first and last run start
    # reduced runs: what the official curves say about early rankings (runs.logs.early_ranking)
    reduced_caveats: list[str] = field(default_factory=list)


def reduction_of(profile: str) -> Reduction:
    """The reduction a report's profile names (none for smoke, full, unknown)."""
    try:
        return split_profile(profile)[1]
    except ValueError:
        return Reduction()


def reduction_text(reduction: Reduction) -> str:
    parts = []
    if reduction.schedule_scale != 1.0:
        parts.append(f'every schedule x {reduction.schedule_scale:g}')
    if reduction.subset:
        parts.append(f'ImageNet on {SUBSETS[reduction.subset][1]}')
    return '; '.join(parts)


def withhold_verdicts(steps: pd.DataFrame) -> pd.DataFrame:
    """A smoke report's steps with :data:`PIPELINE_CHECK` where a verdict would be (a step
    not checked still says why)."""
    verdicts = (stats.REPRODUCED, stats.CONTRADICTED, stats.INCONCLUSIVE)
    return steps.assign(verdict=[PIPELINE_CHECK if v in verdicts else v
                                 for v in steps['verdict']])


CLAIM_HEADERS = {'paper': 'paper (better - worse)', 'ours': 'ours: mean step [95% CI]',
                 'medians': 'ours: median step', 'seeds': "seeds/row for the paper's step"}
CLAIM_TEXT = (
    'Each step is better - worse. Ours: the difference of the means over seeds, its 95% '
    'interval and two-sided p-value: Welch\'s t when both rows have two or more seeds; one '
    'row\'s sd for both when only it has; else (one seed per row, or no spread at all) the '
    'prior noise below, taken as known ("prior noise" in the noise column). Verdict: '
    f'{stats.REPRODUCED} when the interval lies above 0, {stats.CONTRADICTED} when below, else '
    f'{stats.INCONCLUSIVE}. Seeds/row: how many seeds per row a two-sided t-test (alpha '
    f'{stats.ALPHA}, power {stats.POWER}) needs to detect the paper\'s step at the noise '
    'column\'s sd. The numbers are in {table}_steps.csv, computed from the per-seed values of '
    '{table}.csv (in_report True, status ok).')

PLOT_TEXT = ('{table}.png: per metric, each row\'s step from the table\'s first row ({baseline}, '
             'the paper\'s starting point): the paper\'s step beside ours with its 95% interval '
             '(as above; hatched where it rests on prior noise), over the band that prior noise '
             'alone fills with one seed per row. {table}_absolute.png shows the values.')


def _escape(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of the frame's strings, one row per line."""
    lines = ['| ' + ' | '.join(_escape(c) for c in frame.columns) + ' |',
             '|' + '---|' * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append('| ' + ' | '.join(_escape(v) for v in row) + ' |')
    return '\n'.join(lines)


def footnote_marks(table: AblationTable) -> tuple[dict[str, str], list[str]]:
    """Marks like ' [1]' for rows with notes, and the numbered notes they point to."""
    marks, notes = {}, []
    for row in table.rows:
        numbers = []
        for note in row.notes:
            notes.append(f'[{len(notes) + 1}] {row.name}: {note}')
            numbers.append(str(len(notes)))
        if numbers:
            marks[row.slug] = ' [' + ', '.join(numbers) + ']'
    return marks, notes


def render_markdown(table: AblationTable, layout: pd.DataFrame, notes: list[str],
                    agreement: pd.DataFrame, claims: pd.DataFrame, context: ReportContext,
                    warnings: list[str], recipe_lines: Sequence[str] = ()) -> str:
    """The whole ``<table>.md``."""
    out = [f'# {table.source.table}: {table.title}', '']
    reduction = reduction_of(context.profile)
    if context.profile == 'smoke':
        out += [SMOKE_BANNER, '']
    elif reduction.reduced:
        out += [REDUCED_BANNER.format(label=f'ours {reduction.label}',
                                      what=reduction_text(reduction)), '']
    elif context.profile == 'unknown':
        out += [UNKNOWN_BANNER, '']
    started = (f'{context.started[0]} to {context.started[1]}' if context.started
               else 'unknown')
    out += [f'- Source: {table.source}']
    own = table_file_of(table)
    if own is not None:  # a table of your own: its rows not in the paper say so in the notes
        out += [f'- Table file: {own.path} (sha256 {own.sha256[:12]}), module {own.module}']
    out += [
        f'- Profile: {context.profile} (runs of other profiles are left out, see Warnings)',
        f'- Data: {", ".join(context.data_roots) or "unknown"}',
        f'- Runs started: {started}; commit of the runs: '
        f'{", ".join(context.run_commits) or "unknown"}',
        f'- Report written: {context.generated} (reporter at commit {context.reporter_commit})',
        f'- Values: {PICK_TEXT[context.pick]}',
        f'- Cells: ours{" " + reduction.label if reduction.reduced else ""} (published, ours - '
        'published). Ours is the mean ± sample std over n '
        'seeds; n/p: the paper does not publish it; -: no run. Every value is in the CSV beside '
        'this file with the log file and line it was read from.',
        '', markdown_table(layout), '']
    caveats = [f'- {c}' for c in table.caveats] + [f'- {n}' for n in notes]
    caveats += [f'- {line}' for line in context.reduced_caveats]
    if context.pick == 'best':
        caveats.append('- Values are the best evaluation of each run, not the final one.')
    if caveats:
        out += ['Notes:', ''] + caveats + ['']
    if recipe_lines:  # the recipe as the runs trained; cells marked [rN] deviate as noted
        out += ['Recipe as run:', ''] + [f'- {line}' if line and not line.endswith(':')
                                         else line for line in recipe_lines] + ['']
    out += ['## Claim check', '']
    if context.profile == 'smoke':
        out += ['Smoke runs: the checks below exercise the pipeline; they are not evidence (the '
                'prior noise levels are those of full runs on the real benchmarks).', '']
    ordered = agreement.assign(
        metric=[METRICS[m].label for m in agreement['metric']],
        **{'pairs in the paper\'s order': [f'{a}/{p}' for a, p in
                                            zip(agreement['agree'], agreement['pairs'])]},
    ).rename(columns={'rows': 'rows compared'})[
        ['metric', 'pairs in the paper\'s order', 'rows compared']]
    out += [markdown_table(ordered.astype(str)), '']
    if not claims.empty:
        shown = claims.assign(metric=[METRICS[m].label for m in claims['metric']]).rename(
            columns=CLAIM_HEADERS)
        out += [CLAIM_TEXT.format(table=table.name), '', markdown_table(shown), '']
    out += [PLOT_TEXT.format(table=table.name, baseline=table.rows[0].name), '',
            f'![steps from the first row]({table.name}.png)', '']
    if not claims.empty:
        priors: dict[tuple[float, str], list[str]] = {}  # metrics sharing a source: one line
        for m in (METRICS[k] for k in table.metrics):
            if m.prior_sd is not None:
                priors.setdefault((m.prior_sd, m.prior_source), []).append(m.label)
        if priors:
            out += ['Prior noise (the sd assumed when the seeds give no spread):', '']
            out += [f'- {", ".join(labels)}: sd {sd} ({source})'
                    for (sd, source), labels in priors.items()] + ['']
    out += ['## Warnings', '']
    out += [f'- {_escape(w)}' for w in warnings] or ['None.']
    return '\n'.join(out) + '\n'


def write_csv(frame: pd.DataFrame, table: AblationTable, path: Path) -> None:
    """Every record (all profiles; ``in_report`` says which the markdown uses)."""
    names = {r.slug: r.name for r in table.rows}
    frame = frame.assign(table=table.name, row_name=frame['row'].map(names))
    first = ['table', 'row', 'row_name', 'task', 'metric', 'seed', 'value', 'status', 'detail',
             'profile', 'in_report']
    frame[first + [c for c in frame.columns if c not in first]].to_csv(path, index=False)


def write_steps_csv(steps: pd.DataFrame, table: AblationTable, path: Path) -> None:
    """The claimed steps and the steps from the first row, as numbers."""
    names = {r.slug: r.name for r in table.rows}
    steps.assign(table=table.name, better_name=steps['better'].map(names),
                 worse_name=steps['worse'].map(names)).to_csv(path, index=False)


def _subplots(table: AblationTable, width: float):
    import matplotlib
    matplotlib.use('Agg')  # files only: no display on the training machines
    import matplotlib.pyplot as plt

    ncols = min(2, len(table.metrics))
    nrows = math.ceil(len(table.metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(table.metrics):]:
        ax.set_visible(False)
    return plt, fig, axes


def _legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    first = {label: handle for handle, label in zip(handles, labels)}  # one entry each
    if first:
        ax.legend(first.values(), first.keys(), fontsize=7, loc='best')


def render_png(table: AblationTable, steps: pd.DataFrame, profile: str, path: Path) -> None:
    """Per metric, each row's step from the table's first row: the paper's (grey) and ours
    (blue, 95% interval; hatched where the interval rests on prior noise), over the band that
    one seed per row of prior noise alone would fill 95% of the time."""
    base = table.rows[0]
    others = table.rows[1:]
    plt, fig, axes = _subplots(table, max(4.5, 1.0 * len(others) + 2.0))
    for ax, metric in zip(axes.flat, table.metrics):
        if not others:
            ax.annotate('one row: no steps', (0.5, 0.5), xycoords='axes fraction', ha='center')
            continue
        mine = steps[steps['metric'] == metric].set_index('better')
        prior = METRICS[metric].prior_sd
        if prior is not None:
            band = 1.96 * prior * math.sqrt(2)
            ax.axhspan(-band, band, color='0.92', zorder=0, label='prior noise, 1 seed/row')
        ax.axhline(0, color='0.3', linewidth=0.8)
        ticks = []
        for i, row in enumerate(others):
            r = mine.loc[row.slug]
            if not math.isnan(r['paper_step']):
                ax.bar(i - 0.2, r['paper_step'], 0.4, color='0.55', label='published step')
            else:
                ax.annotate('n/p', (i - 0.2, 0), ha='center', va='bottom', fontsize=7)
            if not math.isnan(r['diff']):
                has_ci = not math.isnan(r['ci_low'])
                err = ([[r['diff'] - r['ci_low']], [r['ci_high'] - r['diff']]] if has_ci
                       else None)
                from_prior = r['noise'] == stats.PRIOR
                ax.bar(i + 0.2, r['diff'], 0.4, color='tab:blue', yerr=err, capsize=4,
                       hatch='//' if from_prior else None, edgecolor='white',
                       error_kw=dict(ecolor='black', elinewidth=1.2),
                       label='ours, 95% CI from prior noise' if from_prior
                       else 'ours, 95% CI from seeds')
            else:
                ax.annotate('no result', (i + 0.2, 0), ha='center', va='bottom', rotation=90,
                            fontsize=7)
            ticks.append(f'{row.slug}\nn={r["n_better"]} vs {r["n_worse"]}')
        ax.set_xticks(range(len(others)), ticks, fontsize=7)
        ax.set_xlim(-0.6, len(others) - 0.4)
        ax.set_ylabel(f'step from {base.slug}', fontsize=8)
        ax.set_title(METRICS[metric].label, fontsize=10)
    entries = {}  # one legend for the figure: the same four kinds of marks in every panel
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            key = 'prior noise band' if label == 'prior noise, 1 seed/row' else label
            entries.setdefault(key, (handle, label))
    fig.suptitle(f'{table.source.table}: steps from "{base.name}" (profile: {profile})',
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    if entries:
        handles, labels = zip(*entries.values())
        labels = tuple('±1.96·sd·√2: prior noise alone, 1 seed/row' if key == 'prior noise band'
                       else label for key, label in zip(entries, labels))
        fig.legend(handles, labels, loc='upper center', bbox_to_anchor=(0.5, 0.965),
                   ncol=len(handles), fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_absolute_png(table: AblationTable, cells: dict[tuple[str, str], Cell], profile: str,
                        path: Path) -> None:
    """Per metric, grouped bars: published and ours (mean, std whiskers) per row."""
    slugs = [r.slug for r in table.rows]
    plt, fig, axes = _subplots(table, max(4.0, 0.9 * len(slugs) + 1.5))
    for ax, metric in zip(axes.flat, table.metrics):
        for i, slug in enumerate(slugs):
            cell = cells[slug, metric]
            if cell.published is not None:
                ax.bar(i - 0.2, cell.published, 0.4, color='0.6', label='published')
            else:
                ax.annotate('n/p', (i - 0.2, 0), ha='center', va='bottom', fontsize=7)
            if cell.n:
                ax.bar(i + 0.2, cell.mean, 0.4, color='tab:blue', capsize=3, label='ours',
                       yerr=None if math.isnan(cell.std) else cell.std)
            else:
                ax.annotate('no result', (i + 0.2, 0), ha='center', va='bottom', rotation=90,
                            fontsize=7)
        _legend(ax)
        ax.set_xticks(range(len(slugs)), slugs, rotation=30, ha='right', fontsize=8)
        ax.set_xlim(-0.6, len(slugs) - 0.4)  # keep rows without bars (and their notes) in view
        ax.set_title(METRICS[metric].label, fontsize=10)
    fig.suptitle(f'{table.source.table}: {table.title} (profile: {profile})', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
