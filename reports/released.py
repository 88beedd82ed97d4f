"""The 'Released weights' section of a report: evaluations of checkpoints (``./run_all.sh eval``)
beside the published numbers, kept apart from the training reproductions.

An eval run dir (``<work_dir>/<table>/<profile>/<row>/<task>/eval-<sha12>/``, runs.RunKey.eval)
holds a run.json with the metrics mmengine's test loop returned; this module reads them back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ablations import METRICS, AblationTable, get_table
from ablations.reference_catalog import ROW_REFERENCES, load_reference
from runs.rundir import RecordError, iter_run_dirs, read_record

MARK = 'released weights'


def released_rows(work_dir: Union[str, Path], table: Union[str, AblationTable],
                  profile: Optional[str] = None) -> list[dict]:
    """One dict per (eval run, metric of its task): the row, the value in the paper's unit, the
    published value, the checkpoint's name and sha12, where its weights came from and the
    run's status. ``profile``: only evals of that profile (None: all)."""
    table = get_table(table) if isinstance(table, str) else table
    slugs = {r.slug for r in table.rows}
    rows = []
    for key, run_dir, _ in iter_run_dirs(work_dir, table.name):
        if key is None or key.kind != 'eval' or key.row not in slugs:
            continue
        if profile is not None and key.profile != profile:
            continue
        try:
            record = read_record(run_dir) or {}
        except RecordError as err:
            record = dict(status='unreadable', error=str(err))
        metrics = record.get('metrics') or {}
        row = table.row(key.row)
        for name in table.metrics_of(key.task):
            metric = METRICS[name]
            value = metrics.get(metric.log_key)
            rows.append(dict(
                row=key.row, row_name=row.name, task=key.task, profile=key.profile,
                metric=name, label=metric.label,
                value=value * metric.scale if isinstance(value, (int, float)) else None,
                published=row.published.get(name),
                checkpoint=Path(record.get('checkpoint') or '?').name,
                sha12=(record.get('checkpoint_sha256') or key.tag[len('eval-'):])[:12],
                converted_from=record.get('converted_from'), ema=record.get('ema'),
                fuse_bn=record.get('fuse_bn'), model=record.get('model'),
                status=record.get('status', 'pending'), kind=MARK, run_dir=str(run_dir),
                official=official_text(table.name, key.row, key.task, name)))
    return rows


def official_text(table: str, row: str, task: str, metric: str) -> str:
    """What the official run of this row's model logged (``ablations/reference_catalog.py``): its best
    and its final evaluation, the values its released weights should give; '-' without one."""
    ref_id = ROW_REFERENCES.get((table, row, task))
    if not ref_id:
        return '-'
    ref, metric_ = load_reference(ref_id), METRICS[metric]
    best, last = ref.best(metric_.log_key), ref.last(metric_.log_key)
    if not best:
        return '-'
    unit = 'epoch' if best['unit'] == 'epoch' else 'iteration'
    value = lambda e: e['metrics'][metric_.log_key] * metric_.scale  # noqa: E731
    return (f'best {value(best):.2f} ({unit} {best["step"]:,}), final {value(last):.2f} '
            f'({ref_id})')


def _cell(value: Optional[float]) -> str:
    return 'n/p' if value is None else f'{value:.1f}'


def render_released(rows: list[dict]) -> str:
    """The markdown section for ``released_rows``; '' when there are none."""
    if not rows:
        return ''
    lines = ['## Released weights', '',
             'Released checkpoints evaluated in the rows\' configs (`./run_all.sh eval`): the '
             'papers\' own weights, **not a training reproduction** by this suite.', '',
             '| row | metric | released weights | published | official log | checkpoint | '
             'weights | profile | status |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        value = '-' if r['value'] is None else f'{r["value"]:.2f}'
        weights = ', '.join(filter(None, [r['converted_from'], 'EMA' if r['ema'] else None,
                                          'BN fused' if r['fuse_bn'] else None]))
        lines.append(f'| {r["row_name"]} | {r["label"]} | {value} | {_cell(r["published"])} | '
                     f'{r.get("official", "-")} | `{r["checkpoint"]}` ({r["sha12"]}) | '
                     f'{weights} | {r["profile"]} | {r["status"]} |')
    if any(r.get('official', '-') != '-' for r in rows):
        lines += ['', 'Official log: the best and the final evaluation in the official run\'s '
                      'published training log (`ablations/reference_catalog.py`); released weights '
                      'evaluated here should give one of them.']
    if any(r['profile'] == 'smoke' for r in rows):
        lines += ['', 'Smoke-profile evals run on the generated tiny data: they show that the '
                      'weights load and run in the row\'s model, their numbers mean nothing.']
    return '\n'.join(lines) + '\n'
