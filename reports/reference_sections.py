"""Our runs over the official run of the same model (``ablations/reference_catalog.py``): a plot of the
lr, the loss and the reported metric, seeds apart, and the gaps at matched points.

For each (row, task) of the table that has a reference run and a reported full-profile run of
ours (smoke runs are pipeline checks, never held against a real run):

- ``<table>_reference_<row>_<task>.png``: three panels sharing the x axis (epochs for an
  epoch-based recipe, optimizer steps for an iteration-based one): lr, training loss, the
  reported metric at each evaluation. The official run in black, each seed of ours in its own
  colour.
- ``<table>_reference_<row>_<task>.csv``: the plotted points (series, panel, x, y), exactly the
  data of the plot.
- in ``<table>.md``: the official run (source, GPUs, batch, s/iter, hours), the metric at a few
  matched points ("top-1 at epoch 200: ours 75.1 ± 0.2 (n=3), official 75.4 (-0.3)") and whether
  the lr equals the official at every common logged step.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations import METRICS, AblationTable
from ablations.reference_catalog import ROW_REFERENCES, ReferenceRun, load_reference
from runs.logs.log_formats import RunLog, run_log
from runs.logs.official_runs import (
    gaps,
    lr_check,
    metric_key,
    milestones,
    our_steps,
    our_x,
    ref_unit,
    ref_x,
    short_label,
    unit_word,
)
from runs.rundir import RecordError, RunKey, read_record

PANELS = ('lr', 'loss', 'metric')
OFFICIAL = 'official'


def _seed_logs(work_dir: Path, table: AblationTable, row: str, task: str, profile: str,
               seeds: list[int]) -> tuple[dict[int, RunLog], dict[int, int]]:
    """Each seed's newest log and its gradient accumulation (from run.json's fidelity record)."""
    logs, accumulation = {}, {}
    for seed in seeds:
        run_dir = RunKey.train(table.name, profile, row, task, seed).dir(work_dir)
        log = run_log(run_dir)
        if log is None:
            continue
        logs[seed] = log
        try:
            fidelity = (read_record(run_dir) or {}).get('fidelity') or {}
        except RecordError:
            fidelity = {}
        accumulation[seed] = int(fidelity.get('accumulation') or 1)
    return logs, accumulation


def curves(ref: ReferenceRun, logs: dict[int, RunLog], accumulation: dict[int, int],
           metric: str) -> pd.DataFrame:
    """The plotted points: official and each seed's lr, loss and metric, in the reference's
    unit (series, panel, x, y)."""
    key, scale = metric_key(metric), METRICS[metric].scale
    unit = ref_unit(ref)
    rows = []
    xs = ref_x(ref)
    for panel in ('lr', 'loss'):
        rows += [(OFFICIAL, panel, x, y) for x, y in zip(xs, ref.train[panel]) if y is not None]
    rows += [(OFFICIAL, 'metric', float(e['step']), e['metrics'][key] * scale)
             for e in ref.evaluations if e['step'] is not None and key in e['metrics']]
    for seed, log in sorted(logs.items()):
        acc = accumulation.get(seed, 1)
        series = f'seed{seed}'
        for x, point in zip(our_x(log, unit, acc), log.train):
            for panel in ('lr', 'loss'):
                value = getattr(point, panel)
                if value is not None and x == x:
                    rows.append((series, panel, x, value))
        rows += [(series, 'metric', float(step), metrics[key] * scale)
                 for step, metrics in sorted(our_steps(log, acc).items()) if key in metrics]
    return pd.DataFrame(rows, columns=['series', 'panel', 'x', 'y'])


def render_reference_png(points: pd.DataFrame, ref: ReferenceRun, title: str, metric: str,
                         path: Path):
    """Draw the three panels from ``points`` (the CSV's rows); returns the figure (closed)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    seeds = sorted(s for s in points['series'].unique() if s != OFFICIAL)
    colours = {s: plt.get_cmap('tab10')(i % 10) for i, s in enumerate(seeds)}
    labels = dict(lr='lr', loss='training loss', metric=METRICS[metric].label)
    for ax, panel in zip(axes, PANELS):
        mine = points[points['panel'] == panel]
        for series in [OFFICIAL] + seeds:
            data = mine[mine['series'] == series]
            if data.empty:
                continue
            official = series == OFFICIAL
            # The official run wide and underneath: where ours coincides, ours shows on it.
            ax.plot(data['x'], data['y'], color='black' if official else colours[series],
                    linewidth=2.6 if official else 1.0, alpha=0.55 if official else 1.0,
                    label=f'official ({ref.id})' if official else f'ours, {series}',
                    marker='o' if panel == 'metric' else None,
                    markersize=4 if official else 2.5, zorder=1 if official else 2,
                    gid=f'{series}/{panel}')
        ax.set_ylabel(labels[panel], fontsize=9)
        if panel == 'lr':
            ax.ticklabel_format(axis='y', style='sci', scilimits=(-2, 2))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc='best')
    axes[-1].set_xlabel('epoch' if ref_unit(ref) == 'epoch' else 'iteration (optimizer step)',
                        fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig


def reference_sections(table: AblationTable, work_dir: Path, kept: pd.DataFrame, out: Path,
                       profile: str) -> tuple[list[str], list[Path]]:
    """The markdown lines of the "Against the official run" section and the files written."""
    lines: list[str] = []
    written: list[Path] = []
    if profile != 'full':  # smoke runs are pipeline checks: nothing to hold against a real run
        return [], []
    for (name, row, task), ref_id in ROW_REFERENCES.items():
        if name != table.name or task not in table.tasks:
            continue
        mine = kept[(kept['row'] == row) & (kept['task'] == task)]
        if mine.empty:
            continue
        ref = load_reference(ref_id)
        metric = table.metrics_of(task)[0]
        seeds = sorted(int(s) for s in mine['seed'].unique())
        logs, accumulation = _seed_logs(work_dir, table, row, task, profile, seeds)
        stem = f'{table.name}_reference_{row}_{task}'
        lines += ['', f'### `{row}` {task}: {ref.what}', '',
                  _source_line(ref)]
        if not logs:
            lines.append(f'No log of ours yet for `{row}` {task}.')
            continue
        points = curves(ref, logs, accumulation, metric)
        csv, png = out / f'{stem}.csv', out / f'{stem}.png'
        points.to_csv(csv, index=False)
        render_reference_png(points, ref, f'{table.name} {row} {task}: ours over the official '
                                          f'run ({profile} profile)', metric, png)
        written += [png, csv]
        label = short_label(METRICS[metric].label)
        found = gaps(logs, ref, metric, accumulation)
        if found:
            lines += [f'- {g.text(label)}' for g in milestones(found, ref)]
        else:
            lines.append(f'- {label}: no evaluation of ours at an official evaluation '
                         f'{unit_word(ref_unit(ref))} yet')
        for seed, log in sorted(logs.items()):
            lines.append(f'- seed{seed} {lr_check(log, ref, accumulation.get(seed, 1)).text()}')
        lines.append(f'- plot: `{png.name}` (its points: `{csv.name}`)')
    if not lines:
        return [], []
    head = ['', '## Against the official run', '',
            'The official repositories publish the training logs of their own runs '
            '(`ablations/reference_catalog.py`). Where a row is the released model, its runs are '
            'plotted over the official one: lr, training loss and the reported metric, the '
            'official run in black, each seed of ours in its own colour, x in epochs '
            '(epoch-based recipes) or optimizer steps (iteration-based ones). The lr curves '
            'must coincide: a gap there is a recipe difference, and it shows in the loss and '
            'the metric long before the last evaluation. Gaps are ours minus official at '
            'evaluations both runs made (mean ± sd over seeds).']
    return head + lines, written


def _source_line(ref: ReferenceRun) -> str:
    meta, src = ref.meta, ref.source
    parts = [f'Official run: {src["repository"]} `{src["path"]}` (commit {src["commit"][:7]}, '
             f'sha256 {src["sha256"][:12]})']
    if meta.get('gpus'):
        parts.append(f'{meta["gpus"]} GPUs x {meta.get("per_gpu_batch", "?")} = '
                     f'{meta.get("global_batch", "?")} images per step')
    if meta.get('s_per_iter'):
        parts.append(f'{meta["s_per_iter"]:.3f} s/iter')
    if ref.hours:
        parts.append(f'{ref.hours:.1f} h')
    return ', '.join(parts) + '.'

