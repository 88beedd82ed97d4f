"""``./run_all.sh status <table> [--work-dir DIR] [--profile P]``: where each run of a table is.

One line per run: state (``runs.STATES``), SLURM job id, progress from the mmengine log,
elapsed, ETA; then a summary. Exit 0 only when every run has finished (and none is stale), 1
otherwise, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

import runs
from ablations import TABLES, get_table
from ablations.compose import PROFILES
from runs import REPO, RunKey
from runs.identity import stale_reason
from runs.slurm import slurm_queue

EPOCH_LINE = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]')
ITER_LINE = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')
_TAIL_BYTES = 256 * 1024


def progress(run_dir: Path, record: dict) -> Optional[float]:
    """Fraction of the schedule done, from the last training line of the newest mmengine log."""
    schedule = record.get('schedule') or {}
    logs = sorted(run_dir.glob('*/[0-9]*_[0-9]*.log'))
    if not logs:
        return None
    with open(logs[-1], 'rb') as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - _TAIL_BYTES))
        text = f.read().decode('utf-8', 'replace')
    epochs = EPOCH_LINE.findall(text)
    if epochs and schedule.get('total'):
        epoch, it, per_epoch = (int(x) for x in epochs[-1])
        return min(1.0, (epoch - 1 + it / per_epoch) / schedule['total'])
    iters = ITER_LINE.findall(text)
    if iters:
        it, total = (int(x) for x in iters[-1])
        return min(1.0, it / total)
    return None


def _seconds(text: Optional[str]) -> Optional[float]:
    try:
        return dt.datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def _duration(seconds: Optional[float]) -> str:
    if seconds is None or seconds < 0:
        return '-'
    hours, rest = divmod(int(seconds), 3600)
    return f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'


def run_state(key: RunKey, run_dir: Path, record: Optional[dict], queue: dict) -> tuple[str, str]:
    """(state, note): the record and lock, corrected by what SLURM says and by staleness."""
    state = runs.run_state(record, run_dir)
    note = 'its cls run did not finish' if state == 'blocked' else ''
    if state == 'failed' and record and record.get('error'):
        note = record['error']  # e.g. 'loss became nan at iter 12 (epoch 2)'
    job = (record or {}).get('slurm_job_id')
    if job and state in ('queued', 'running', 'interrupted'):
        slurm_state, reason = queue.get(job, (None, None))
        if slurm_state == 'PENDING':
            state = 'blocked' if 'DependencyNeverSatisfied' in (reason or '') else 'queued'
            note = reason or ''
        elif slurm_state in ('RUNNING', 'COMPLETING', 'CONFIGURING'):
            state = 'running'
        elif slurm_state is None and state in ('queued', 'running'):
            state = 'interrupted'  # SLURM no longer has it and it never recorded an end
            note = f'SLURM job {job} is gone'
    if state == 'finished' and record.get('config_hash'):
        reason = stale_reason(key, run_dir, record)
        if reason:
            state, note = 'stale', reason
    return state, note


def expected_keys(table, profile: str, seeds: int) -> list[RunKey]:
    return [RunKey.train(table.name, profile, row.slug, task, seed)
            for row in table.rows for seed in range(seeds) for task in table.tasks]


def status(table_name: str, work_dir: Path, profile: Optional[str]) -> int:
    table = get_table(table_name)
    found = {key: path for key, path, why in runs.iter_run_dirs(work_dir, table.name)
             if key is not None and key.kind == 'train'}
    profiles = [profile] if profile else sorted({k.profile for k in found}) or ['smoke']
    keys = set(k for k in found if k.profile in profiles)
    for prof in profiles:
        seeds = 1 + max([k.seed for k in keys if k.profile == prof] or [0])
        keys.update(expected_keys(table, prof, seeds))
    order = {row.slug: i for i, row in enumerate(table.rows)}
    queue = slurm_queue()
    counts: dict[str, int] = {}
    now = dt.datetime.now().timestamp()
    print(f'{"state":<12} {"job":>8}  {"progress":>8}  {"elapsed":>8}  {"eta":>8}  run')
    for key in sorted(keys, key=lambda k: (k.profile, order.get(k.row, 99), k.seed,
                                           ('cls', 'det', 'seg').index(k.task))):
        run_dir = key.dir(work_dir)
        try:
            record = runs.read_record(run_dir)
        except runs.RecordError as err:
            record, state, note = None, 'failed', f'unreadable record: {err}'
        else:
            state, note = run_state(key, run_dir, record, queue)
        record = record or {}
        done = progress(run_dir, record) if record else None
        started, ended = _seconds(record.get('started')), _seconds(record.get('ended'))
        elapsed = ((ended if ended and state != 'running' else now) - started) if started else None
        eta = elapsed * (1 - done) / done if state == 'running' and done and elapsed else None
        counts[state] = counts.get(state, 0) + 1
        print(f'{state:<12} {record.get("slurm_job_id") or "-":>8}  '
              f'{f"{100 * done:.0f}%" if done is not None else "-":>8}  {_duration(elapsed):>8}  '
              f'{_duration(eta):>8}  {key.name}{f"  ({note})" if note else ""}')
    summary = ', '.join(f'{counts[s]} {s}' for s in runs.STATES if s in counts)
    total = sum(counts.values())
    print(f'{table.name}: {total} run(s): {summary}')
    if counts.get('stale'):
        print('stale: finished under a config the table no longer generates; rerun with '
              f'./run_all.sh {table.name} --rerun-stale (old results are kept)')
    return 0 if counts.get('finished', 0) == total else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='run_all.sh status',
                                     description='Where each run of a table is.')
    parser.add_argument('table', help='one of: ' + ', '.join(TABLES))
    parser.add_argument('--work-dir', default=str(REPO / 'work_dirs'))
    parser.add_argument('--profile', choices=PROFILES, help='only this profile')
    args = parser.parse_args(argv)
    try:
        return status(args.table, Path(args.work_dir).resolve(), args.profile)
    except ValueError as err:
        print(f'run_all.sh status: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
