"""What each run of an invocation needs: run it, skip it (finished and current), leave it (live,
queued, stale); then its config and record written before an executor starts it.

A finished run is skipped while its config hash matches what the table generates today; one
that no longer does is ``stale``: never skipped silently, rerun with ``--rerun-stale`` (its old
dir is kept under ``<work_dir>/<table>/.superseded/``).
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Optional

from ablations.table_files import dump_config, table_file_record
from runs import rundir
from runs.options import TableOptions
from runs.provenance import REPO, git_commit
from runs.rundir import handover_checkpoint, now
from runs.rundir.identity import run_config, stale_reason
from runs.table.footprint import checkpoint_footprint, format_bytes, table_footprint
from runs.table.graph import Run, train_command
from runs.tracking.tracker_runs import add_trackers, open_tracker_runs


def pretrained_for(run: Run) -> Optional[Path]:
    """The checkpoint a det/seg run starts from: its row's cls hand-over, when that cls run is
    part of this invocation or has finished; None (random backbone) otherwise."""
    if run.key.task == 'cls':
        return None
    cls_dir = rundir.cls_run_dir(run.dir)
    if run.depends_on is not None and run.depends_on.action in ('run', 'queued', 'live'):
        return cls_dir / rundir.HANDOVER
    record = rundir.readable_record(cls_dir)
    if record and rundir.recorded_state(record, cls_dir) == 'finished':
        handover = cls_dir / rundir.HANDOVER
        # (a run finished before hand-over links existed has none: pick its file the same way)
        return handover if handover.exists() else handover_checkpoint(cls_dir)
    return None


def supersede(run: Run, why: str) -> Path:
    """Move a run dir aside (never delete a result) so that the run starts afresh."""
    stamp = dt.datetime.now().strftime('%Y%m%d_%H%M%S')
    dest = (rundir.table_root(run.dir.parents[4], run.key.table) / '.superseded' / run.key.profile
            / run.key.row / run.key.task / f'{run.key.tag}-{stamp}')
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run.dir), str(dest))
    print(f'  {run.name}: {why}; its old dir is kept at {dest}', flush=True)
    return dest


def decide(run: Run, options: TableOptions, data_root: Path, queue: dict,
           follows_queued: bool) -> None:
    """Set run.action: run it, skip it (finished and current), leave it (live, queued, stale).
    ``queue``: what the executor's scheduler still holds; ``follows_queued``: whether the
    executor can start a run after an upstream run queued or running elsewhere."""
    try:
        record = rundir.read_record(run.dir)
    except rundir.RecordError as err:
        supersede(run, f'unreadable record ({err})')
        record = None
    state = rundir.recorded_state(record, run.dir)
    if record and record.get('slurm_job_id') in queue and state in ('queued', 'running',
                                                                     'interrupted'):
        run.action, run.job_id = 'queued', record['slurm_job_id']
        run.why = f'already in SLURM as job {run.job_id}'
        return
    if state == 'running':
        run.action, run.why = 'live', f'a live training holds it ({rundir.lock_holder(run.dir)})'
        return
    upstream = run.depends_on
    if upstream is not None and upstream.action in ('live', 'queued') and (
            not follows_queued or upstream.action == 'live'):
        run.action = 'deferred'
        run.why = f'its cls run is {upstream.why}; run the table again once that has finished'
        return
    if state == 'finished':
        reason = stale_reason(run.key, run.dir, record)
        if reason is None and not (upstream is not None and upstream.action == 'run'):
            run.action, run.why, run.config_hash = 'skip', 'finished', record['config_hash']
            return
        reason = reason or 'the classification run it starts from runs again'
        if not options.rerun_stale:
            run.action, run.why = 'stale', reason
            return
        supersede(run, f'stale ({reason}); rerunning')
    elif record and record.get('config_hash'):
        # A failed or interrupted run resumes in place only with the config it started with.
        pretrained = pretrained_for(run)
        _, today = run_config(run.key, data_root=data_root, work_dir=run.dir,
                              gpus=run.layout.world_size,
                              pretrained=pretrained, upstream=upstream.config_hash
                              if upstream is not None else None)
        if today != record['config_hash']:
            supersede(run, f'{state} under an older config; starting afresh')
    run.action = 'run'


def prepare(run: Run, options: TableOptions, data_root: Path) -> bool:
    """Write the run's config and record (status queued); False when the config does not build."""
    run.dir.mkdir(parents=True, exist_ok=True)
    pretrained = pretrained_for(run)
    if run.key.task != 'cls' and pretrained is None:
        print(f'  warning: {run.name} starts from random backbone weights (no cls run of this '
              'row finished or in this invocation)', flush=True)
    upstream = run.depends_on.config_hash if run.depends_on is not None and pretrained else None
    identity = dict(kind='train', table=run.key.table, profile=run.key.profile, row=run.key.row,
                    task=run.key.task, seed=run.key.seed, data_root=str(data_root),
                    commit=git_commit(), gpus=run.layout.world_size,
                    launcher=run.layout.launcher, layout=run.layout.as_record(),
                    pretrained=str(pretrained) if pretrained else None, upstream_hash=upstream,
                    depends_on=str(run.depends_on.dir) if run.depends_on is not None else None,
                    table_file=table_file_record(run.key.table))
    config_path = run.dir / rundir.CONFIG
    try:
        cfg, run.config_hash = run_config(run.key, data_root=data_root, work_dir=run.dir,
                                          gpus=run.layout.world_size, pretrained=pretrained,
                                          upstream=upstream)
        fidelity = recipe_as_run(cfg, run)
    except Exception as exc:  # a broken row must not stop the others
        return _failed_before_start(run, identity, 'config', 'to build its config', exc)
    try:  # a resumed attempt continues its tracker runs; trackers are not part of the hash
        previous = (rundir.readable_record(run.dir) or {}).get('tracker_runs')
        tracker_runs = open_tracker_runs(run.key, options.trackers, run.dir,
                                         options.work_dir, previous, run.config_hash,
                                         fidelity)
        add_trackers(cfg, run.dir, run.key, tracker_runs)
    except Exception as exc:
        return _failed_before_start(run, identity, 'trackers', 'to open its tracker runs', exc)
    dump_config(cfg, config_path)  # a table file's config puts the file's folder on the path
    run.footprint = footprint_of(cfg, run)
    train_cfg = cfg.get('train_cfg', {}) or {}
    by_epoch = bool(train_cfg.get('by_epoch', 'max_epochs' in train_cfg))
    run.command = train_command(config_path, run.dir, run.layout)
    rundir.write_record(run.dir, **identity, status='queued', returncode=None,
                        config_hash=run.config_hash, command=run.command, cwd=str(REPO),
                        config=str(config_path), console_log=str(run.dir / rundir.CONSOLE),
                        queued=now(), ended=None,
                        schedule=dict(by_epoch=by_epoch, total=train_cfg.get(
                            'max_epochs' if by_epoch else 'max_iters')),
                        fidelity=fidelity, footprint=run.footprint,
                        trackers=list(tracker_runs), tracker_runs=tracker_runs,
                        slurm_job_id=None, error=None)
    return True


def _failed_before_start(run: Run, identity: dict, stage: str, what: str,
                         exc: Exception) -> bool:
    """Record a run that could not be prepared as failed (the others go on); False."""
    rundir.write_record(run.dir, **identity, status='failed', returncode=None,
                        error=f'{stage}: {exc!r}', ended=now(), config_hash=None)
    print(f'  {run.name}: FAILED {what}: {exc}', flush=True)
    run.outcome = 'failed'
    return False


def recipe_as_run(cfg, run: Run) -> Optional[dict]:
    """The config's fidelity record with the device the run's processes use (its layout): the
    world size and batch the report states are the ones this run trains with."""
    fidelity = cfg.to_dict().get('fidelity')
    return None if fidelity is None else dict(fidelity, device=run.layout.device)


# --- what a table will cost -----------------------------------------------------------------

_FOOTPRINTS: dict[tuple, dict] = {}


def footprint_of(cfg, run: Run) -> Optional[dict]:
    """The run's expected checkpoint footprint, once per (table, profile, row, task, GPUs): the
    model has to be built to count it."""
    key = (run.key.table, run.key.profile, run.key.row, run.key.task, run.layout.world_size)
    if key not in _FOOTPRINTS:
        try:
            _FOOTPRINTS[key] = checkpoint_footprint(cfg)
        except Exception as err:  # counting must never stop a table
            print(f'  {run.name}: checkpoint footprint unknown ({err})', flush=True)
            return None
    return _FOOTPRINTS[key]


def warn_if_short_of_disk(work_dir: Path, footprints: list[Optional[dict]]) -> None:
    """Warn, with the numbers, when the work dir's filesystem cannot hold the table's
    checkpoints: a scratch quota running out fails runs late."""
    known = [f for f in footprints if f]
    if not known:
        return
    need = table_footprint(known)
    probe = work_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need['peak_bytes'] is None:
        print('warning: some runs keep every checkpoint (no max_keep_ckpts): their footprint '
              'is unbounded', flush=True)
    elif free < need['peak_bytes']:
        print(f'warning: {probe} has {format_bytes(free)} free, but these runs\' checkpoints '
              f'need up to {format_bytes(need["peak_bytes"])} '
              f'({format_bytes(need["total_bytes"])} kept at the end)', flush=True)
