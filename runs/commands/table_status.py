"""Where each run of a table is: the engine of ``./run_all.sh status`` (its front, options and
exit codes: ``tools/status.py``).

A run's state is what its record and lock tell (``runs.rundir``), corrected by what SLURM still
holds and by staleness; its progress and ETA come from the newest mmengine log; a running
full-profile run that is an official run's released model is followed against that run
(``runs.logs.official_runs.tracking_line``). :func:`wait` polls until every selected run has
ended (:data:`ENDED`).
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Optional, Sequence

from ablations import get_table
from ablations.reduction import base_profile
from ablations.reference_catalog import ROW_REFERENCES, load_reference
from ablations.table_files import table_reference
from runs import rundir
from runs.executors.process_layout import ProcessLayout
from runs.executors.slurm import slurm_queue
from runs.logs.log_formats import run_log
from runs.logs.official_runs import tracking_line
from runs.rundir import RunKey
from runs.rundir.identity import stale_reason
from runs.table.graph import plan_runs

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


# SLURM states in which a job is still in the queue without running (a requeued job passes
# through them): its run has not ended, whatever the record last said.
SLURM_WAITING = frozenset({'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'SUSPENDED', 'PREEMPTED',
                           'STOPPED', 'RESIZING', 'SPECIAL_EXIT'})
# States after which nothing more happens to a run without a new command: what --wait waits for.
ENDED = ('finished', 'failed', 'interrupted', 'blocked', 'stale')


def run_state(key: RunKey, run_dir: Path, record: Optional[dict], queue: dict,
              stale_cache: Optional[dict] = None) -> tuple[str, str]:
    """(state, note): the record and lock, corrected by what SLURM says and by staleness.
    ``stale_cache`` keeps the staleness of finished runs between calls (it rebuilds a config)."""
    state = rundir.run_state(record, run_dir)
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
        elif slurm_state in SLURM_WAITING:
            state, note = 'queued', f'SLURM: {slurm_state.lower()}'
        elif slurm_state is None and state in ('queued', 'running'):
            state = 'interrupted'  # SLURM no longer has it and it never recorded an end
            note = f'SLURM job {job} is gone'
    if state == 'finished' and record.get('config_hash'):
        cache = {} if stale_cache is None else stale_cache
        token = (key, record.get('config_hash'), record.get('ended'))
        if token not in cache:
            cache[token] = stale_reason(key, run_dir, record)
        if cache[token]:
            state, note = 'stale', cache[token]
    return state, note


def tracking(table, key: RunKey, run_dir: Path, record: dict) -> Optional[str]:
    """How a running run tracks the official run of its row (``ablations/reference_catalog.py``):
    its last evaluation and its lr now, each against the official's at the same point."""
    ref_id = ROW_REFERENCES.get((table.name, key.row, key.task))
    if not ref_id:
        return None
    log = run_log(run_dir)
    if log is None:
        return f'reference {ref_id}; no log line yet'
    accumulation = int((record.get('fidelity') or {}).get('accumulation') or 1)
    return tracking_line(log, load_reference(ref_id), table.metrics_of(key.task)[0],
                         accumulation)


def select_keys(table, work_dir: Path, profile: Optional[str], rows: Sequence[str] = (),
                tasks: Sequence[str] = (), seeds: Optional[int] = None) -> list[RunKey]:
    """The training runs to show: every run of the table on disk and every run the table has
    (up to the highest seed on disk), narrowed to ``rows``, ``tasks`` and seeds ``0..seeds-1``
    as the table command selects them (``runs.table.graph.plan_runs``: the same checks, the same
    one-line errors). In the table's order: profile, row, seed, task."""
    found = {key for key, path, why in rundir.iter_run_dirs(work_dir, table.name)
             if key is not None and key.kind == 'train'}
    profiles = [profile] if profile else sorted({k.profile for k in found}) or ['smoke']
    keys = {k for k in found if k.profile in profiles}
    for prof in profiles:
        count = seeds if seeds is not None else \
            1 + max([k.seed for k in keys if k.profile == prof] or [0])
        # plan_runs validates the selection (unknown row or task, seeds < 1) as the table does
        keys.update(run.key for run in plan_runs(table, rows, tasks, count, work_dir, prof))
    row_slugs = {table.row(r).slug for r in rows}
    keys = {k for k in keys
            if (not rows or k.row in row_slugs) and (not tasks or k.task in tasks)
            and (seeds is None or k.seed < seeds)}
    order = {row.slug: i for i, row in enumerate(table.rows)}
    return sorted(keys, key=lambda k: (k.profile, order.get(k.row, 99), k.seed,
                                       ('cls', 'det', 'seg').index(k.task)))


def snapshot(table, keys: Sequence[RunKey], work_dir: Path, queue: dict,
             stale_cache: Optional[dict] = None) -> list[tuple[RunKey, str, str, dict]]:
    """(key, state, note, record) of every run in ``keys``, as of now."""
    rows = []
    for key in keys:
        run_dir = key.dir(work_dir)
        try:
            record = rundir.read_record(run_dir)
        except rundir.RecordError as err:
            record, state, note = None, 'failed', f'unreadable record: {err}'
        else:
            state, note = run_state(key, run_dir, record, queue, stale_cache)
        rows.append((key, state, note, record or {}))
    return rows


def processes(record: dict) -> str:
    """'  [12 GPUs: 2 nodes x 6]' for a run of several processes, as its record's layout (the one
    the executor started: ``runs.executors.process_layout``) says; '' for one process."""
    layout = record.get('layout')
    if not layout or layout.get('world_size', 1) <= 1:
        return ''
    return '  [' + ProcessLayout(layout['launcher'], layout['device'], layout['nodes'],
                                 layout['tasks_per_node']).describe() + ']'


def listing(table, work_dir: Path, states: list[tuple[RunKey, str, str, dict]]) -> int:
    """Print one line per run and the summary; 0 when every run has finished, else 1."""
    counts: dict[str, int] = {}
    now = dt.datetime.now().timestamp()
    print(f'{"state":<12} {"job":>8}  {"progress":>8}  {"elapsed":>8}  {"eta":>8}  run')
    for key, state, note, record in states:
        run_dir = key.dir(work_dir)
        done = progress(run_dir, record) if record else None
        started, ended = _seconds(record.get('started')), _seconds(record.get('ended'))
        elapsed = ((ended if ended and state != 'running' else now) - started) if started else None
        eta = elapsed * (1 - done) / done if state == 'running' and done and elapsed else None
        counts[state] = counts.get(state, 0) + 1
        print(f'{state:<12} {record.get("slurm_job_id") or "-":>8}  '
              f'{f"{100 * done:.0f}%" if done is not None else "-":>8}  {_duration(elapsed):>8}  '
              f'{_duration(eta):>8}  {key.name}{processes(record)}'
              f'{f"  ({note})" if note else ""}')
        if state == 'running' and base_profile(key.profile) == 'full':
            line = tracking(table, key, run_dir, record)
            if line:
                print(f'{"":<12} {"":>8}  tracking: {line}')
    summary = ', '.join(f'{counts[s]} {s}' for s in rundir.STATES if s in counts)
    total = sum(counts.values())
    print(f'{table.name}: {total} run(s): {summary}', flush=True)
    for profile in sorted({key.profile for key, *_ in states}):
        seed_rounds(table, work_dir, profile)
    if counts.get('stale'):
        print('stale: finished under a config the table no longer generates; rerun with '
              f'./run_all.sh {table_reference(table)} --rerun-stale (old results are kept)',
              flush=True)
    return 0 if counts.get('finished', 0) == total else 1


def seed_rounds(table, work_dir: Path, profile: str) -> None:
    """Where --seeds auto left each claim (the file its last decision wrote)."""
    path = rundir.table_root(work_dir, table.name) / profile / rundir.SEED_ROUNDS
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    print(f'--seeds auto ({profile}, at most {state["max_seeds"]} seeds): round '
          f'{state["round"]}', flush=True)
    for pair in state['pairs']:
        print(f'  {pair["claim"]} [{pair["metric"]}]: {pair["decision"]} '
              f'({pair["seeds"]} seeds/row)', flush=True)


def wait(table, keys: Sequence[RunKey], work_dir: Path, poll: float,
         timeout: Optional[float]) -> Optional[list[tuple[RunKey, str, str, dict]]]:
    """Poll until every run in ``keys`` has ended, printing each change of state; the final
    snapshot, or None when a run was never queued (it would be waited on forever) or the
    timeout passed (both said on stdout)."""
    cache: dict = {}
    seen: dict[RunKey, str] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    first = True
    while True:
        asks_slurm = any((rundir.readable_record(k.dir(work_dir)) or {}).get('slurm_job_id')
                         for k in keys)
        queue = slurm_queue(strict=asks_slurm)
        if queue is None:  # squeue did not answer: no run can be judged gone; ask again
            print(f'{_clock()}  squeue did not answer; asking again in {poll:g} s', flush=True)
        else:
            states = snapshot(table, keys, work_dir, queue, cache)
            if first:
                pending = [key.name for key, state, _, _ in states if state == 'pending']
                if pending:
                    print(f'--wait: {len(pending)} selected run(s) were never queued (pending), '
                          f'e.g. {pending[0]}: queue them with ./run_all.sh '
                          f'{table_reference(table)} ..., or select only the queued runs '
                          '(--rows, --tasks, --seeds)', flush=True)
                    return None
                first = False
            for key, state, note, _ in states:
                if seen.get(key) != state:
                    seen[key] = state
                    print(f'{_clock()}  {state:<12} {key.name}{f"  ({note})" if note else ""}',
                          flush=True)
            if all(state in ENDED for _, state, _, _ in states):
                return states
        if deadline is not None and time.monotonic() >= deadline:
            print(f'--wait: gave up after {timeout:g} s; the runs go on', flush=True)
            return None
        time.sleep(poll)


def _clock() -> str:
    return dt.datetime.now().strftime('%H:%M:%S')


def status(table_name: str, work_dir: Path, profile: Optional[str],
           rows: Sequence[str] = (), tasks: Sequence[str] = (), seeds: Optional[int] = None,
           wait_poll: Optional[float] = None, timeout: Optional[float] = None) -> int:
    """List the selected runs (``wait_poll``: first wait, polling that often, until they have
    all ended). 0 only when every selected run has finished."""
    table = get_table(table_name)
    keys = select_keys(table, work_dir, profile, rows, tasks, seeds)
    if wait_poll is not None:
        states = wait(table, keys, work_dir, wait_poll, timeout)
        if states is None:
            return 1
    else:
        states = snapshot(table, keys, work_dir, slurm_queue())
    return listing(table, work_dir, states)
