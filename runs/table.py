"""Run an ablation table as a job graph: every (row, task, seed) through mmengine, then the report.

    python -m tools.run_table table4 [--profile smoke|full] [--rows R1,R2] [--tasks cls,det,seg]
        [--seeds N] [--gpus N | --gpus cls=32,det=8,seg=8] [--launcher none|pytorch|slurm]
        [--jobs N] [--rerun-stale] [--data-root DIR] [--work-dir DIR] [--dry-run] [--no-report]
        [SLURM: --partition --account --qos --time --gpus-per-node --cpus-per-gpu --mem
         --sbatch-args "..."]

Each run has its own dir (layout, record and states: ``runs/``). The det/seg runs of a (row, seed)
start from that row's cls checkpoint, so they depend on its cls run; all else is independent.

- local executor (launcher none or pytorch): up to ``--jobs`` runs at once, each started as
  ``python -m tools.job RUN_DIR``; on a GPU machine each gets its own devices, on CPU the cores
  are split between them. The command returns when every run has ended.
- slurm executor (launcher slurm): one ``sbatch`` per run, its batch script written into the run
  dir, dependencies as ``afterok``, then a report job after all of them whatever their outcome.
  Returns once everything is queued; ``./run_all.sh status`` follows the runs.

A finished run is skipped while its config hash matches what the table generates today; one
that no longer does is ``stale``: never skipped silently, rerun with ``--rerun-stale`` (its old
dir is kept under ``<work_dir>/<table>/.superseded/``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import runs
from ablations import TABLES, TASKS, AblationTable, get_table
from runs import RunKey
from runs.identity import run_config, stale_reason
from tools.job import EXIT_LOCKED, die_with_parent, now
from tools.launch import LAUNCHERS, distributed_command
from tools.row_config import (DEFAULT_SMOKE_DATA, PROFILES, REPO, check_data_root,
                              describe_fidelity, handover_checkpoint)

GPUS_PER_NODE = int(os.environ.get('GPUS_PER_NODE', 8))
POLL_SECONDS = 0.5


@dataclass
class Run:
    """One (row, task, seed) of this invocation and what the runner decided for it."""
    key: RunKey
    dir: Path
    gpus: int
    depends_on: Optional['Run'] = None
    action: str = 'run'            # run | skip | stale | live | queued
    why: str = ''
    config_hash: Optional[str] = None
    command: list[str] = field(default_factory=list)
    job_id: Optional[str] = None
    outcome: Optional[str] = None  # finished | failed | blocked | locked | interrupted
    footprint: Optional[dict] = None  # expected checkpoint bytes (tools/footprint.py)

    @property
    def name(self) -> str:
        return self.key.name


def parse_gpus(value: str) -> dict[str, int]:
    """``8`` (every task) or ``cls=32,det=8,seg=8`` (tasks not named get 1)."""
    try:
        if '=' not in value:
            count = int(value)
            per_task = {t: count for t in TASKS}
        else:
            per_task = {t: 1 for t in TASKS}
            for part in value.split(','):
                task, _, count = part.partition('=')
                task = task.strip()
                if task not in TASKS:
                    raise ValueError(f'unknown task {task!r} in --gpus {value}; valid: '
                                     + ', '.join(TASKS))
                per_task[task] = int(count)
    except ValueError as err:
        if 'unknown task' in str(err):
            raise
        raise ValueError(f'--gpus {value!r} is neither N nor task=N,...; e.g. 8 or '
                         'cls=32,det=8,seg=8') from None
    bad = {t: n for t, n in per_task.items() if n < 1}
    if bad:
        raise ValueError(f'--gpus must be at least 1 per task, got {bad}')
    return per_task


def plan_runs(table: AblationTable, rows: Optional[Sequence[str]], tasks: Optional[Sequence[str]],
              seeds: int, work_dir: Path, profile: str = 'smoke',
              gpus: Optional[dict[str, int]] = None) -> list[Run]:
    """Every (row, task, seed) to run, cls first within a (row, seed); det/seg depend on it."""
    slugs = [table.row(r).slug for r in rows] if rows else [r.slug for r in table.rows]
    if tasks:
        bad = [t for t in tasks if t not in table.tasks]
        if bad:
            raise ValueError(f'unknown task(s) {", ".join(bad)} for {table.name}; its tasks: '
                             f'{", ".join(table.tasks)}')
        tasks = [t for t in table.tasks if t in tasks]
    else:
        tasks = list(table.tasks)
    if seeds < 1:
        raise ValueError(f'--seeds must be at least 1, got {seeds}')
    gpus = gpus or {t: 1 for t in TASKS}
    planned = []
    for slug in slugs:
        for seed in range(seeds):
            cls_run = None
            for task in tasks:
                key = RunKey.train(table.name, profile, slug, task, seed)
                run = Run(key, key.dir(work_dir), gpus[task],
                          depends_on=cls_run if task != 'cls' else None)
                if task == 'cls':
                    cls_run = run
                planned.append(run)
    return planned


# --- commands -------------------------------------------------------------------------------

def train_command(config: Path, run_dir: Path, launcher: str, gpus: int) -> list[str]:
    """The command that trains one run (what tools/job.py starts; under SLURM it runs inside
    the run's own allocation)."""
    return distributed_command(REPO / 'tools' / 'train.py',
                               [str(config), '--work-dir', str(run_dir), '--resume'],
                               launcher, gpus, port_key=str(run_dir))


def job_command(run_dir: Path) -> list[str]:
    return [sys.executable, '-m', 'tools.job', str(run_dir)]


def _python_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get('PYTHONPATH')) if p))


# --- deciding what each run needs -----------------------------------------------------------

def pretrained_for(run: Run) -> Optional[Path]:
    """The checkpoint a det/seg run starts from: its row's cls hand-over, when that cls run is
    part of this invocation or has finished; None (random backbone) otherwise."""
    if run.key.task == 'cls':
        return None
    cls_dir = runs.cls_run_dir(run.dir)
    if run.depends_on is not None and run.depends_on.action in ('run', 'queued', 'live'):
        return cls_dir / runs.HANDOVER
    record = runs.readable_record(cls_dir)
    if record and runs.recorded_state(record, cls_dir) == 'finished':
        handover = cls_dir / runs.HANDOVER
        # (a run finished before hand-over links existed has none: pick its file the same way)
        return handover if handover.exists() else handover_checkpoint(cls_dir)
    return None


def supersede(run: Run, why: str) -> Path:
    """Move a run dir aside (never delete a result) so that the run starts afresh."""
    stamp = dt.datetime.now().strftime('%Y%m%d_%H%M%S')
    dest = (runs.table_root(run.dir.parents[4], run.key.table) / '.superseded' / run.key.profile
            / run.key.row / run.key.task / f'{run.key.tag}-{stamp}')
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run.dir), str(dest))
    print(f'  {run.name}: {why}; its old dir is kept at {dest}', flush=True)
    return dest


def slurm_queue() -> dict[str, tuple[str, str]]:
    """job id -> (state, reason) of every job SLURM still lists; empty when SLURM is absent."""
    try:
        out = subprocess.run(['squeue', '-h', '-o', '%i|%T|%r'], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    jobs = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split('|')
        if len(parts) == 3:
            jobs[parts[0]] = (parts[1], parts[2])
    return jobs


def decide(run: Run, args: argparse.Namespace, data_root: Path, queue: dict) -> None:
    """Set run.action: run it, skip it (finished and current), leave it (live, queued, stale)."""
    try:
        record = runs.read_record(run.dir)
    except runs.RecordError as err:
        supersede(run, f'unreadable record ({err})')
        record = None
    state = runs.recorded_state(record, run.dir)
    if record and record.get('slurm_job_id') in queue and state in ('queued', 'running',
                                                                     'interrupted'):
        run.action, run.job_id = 'queued', record['slurm_job_id']
        run.why = f'already in SLURM as job {run.job_id}'
        return
    if state == 'running':
        run.action, run.why = 'live', f'a live training holds it ({runs.lock_holder(run.dir)})'
        return
    upstream = run.depends_on
    if upstream is not None and upstream.action in ('live', 'queued') and (
            args.launcher != 'slurm' or upstream.action == 'live'):
        run.action = 'deferred'
        run.why = f'its cls run is {upstream.why}; run the table again once that has finished'
        return
    if state == 'finished':
        reason = stale_reason(run.key, run.dir, record)
        if reason is None and not (upstream is not None and upstream.action == 'run'):
            run.action, run.why, run.config_hash = 'skip', 'finished', record['config_hash']
            return
        reason = reason or 'the classification run it starts from runs again'
        if not args.rerun_stale:
            run.action, run.why = 'stale', reason
            return
        supersede(run, f'stale ({reason}); rerunning')
    elif record and record.get('config_hash'):
        # A failed or interrupted run resumes in place only with the config it started with.
        pretrained = pretrained_for(run)
        _, today = run_config(run.key, data_root=data_root, work_dir=run.dir, gpus=run.gpus,
                              pretrained=pretrained, upstream=upstream.config_hash
                              if upstream is not None else None)
        if today != record['config_hash']:
            supersede(run, f'{state} under an older config; starting afresh')
    run.action = 'run'


def prepare(run: Run, args: argparse.Namespace, data_root: Path) -> bool:
    """Write the run's config and record (status queued); False when the config does not build."""
    run.dir.mkdir(parents=True, exist_ok=True)
    pretrained = pretrained_for(run)
    if run.key.task != 'cls' and pretrained is None:
        print(f'  warning: {run.name} starts from random backbone weights (no cls run of this '
              'row finished or in this invocation)', flush=True)
    upstream = run.depends_on.config_hash if run.depends_on is not None and pretrained else None
    identity = dict(kind='train', table=run.key.table, profile=run.key.profile, row=run.key.row,
                    task=run.key.task, seed=run.key.seed, data_root=str(data_root),
                    commit=git_commit(), gpus=run.gpus, launcher=args.launcher,
                    pretrained=str(pretrained) if pretrained else None, upstream_hash=upstream,
                    depends_on=str(run.depends_on.dir) if run.depends_on is not None else None)
    try:
        cfg, run.config_hash = run_config(run.key, data_root=data_root, work_dir=run.dir,
                                          gpus=run.gpus, pretrained=pretrained, upstream=upstream)
        config_path = run.dir / runs.CONFIG
        cfg.dump(str(config_path))
    except Exception as exc:  # a broken row must not stop the others
        runs.write_record(run.dir, **identity, status='failed', returncode=None,
                          error=f'config: {exc!r}', ended=now(), config_hash=None)
        print(f'  {run.name}: FAILED to build its config: {exc}', flush=True)
        run.outcome = 'failed'
        return False
    run.footprint = footprint_of(cfg, run)
    train_cfg = cfg.get('train_cfg', {}) or {}
    by_epoch = bool(train_cfg.get('by_epoch', 'max_epochs' in train_cfg))
    run.command = train_command(config_path, run.dir, args.launcher, run.gpus)
    runs.write_record(run.dir, **identity, status='queued', returncode=None, config_hash=run.config_hash,
                      command=run.command, cwd=str(REPO), config=str(config_path),
                      console_log=str(run.dir / runs.CONSOLE), queued=now(), ended=None,
                      schedule=dict(by_epoch=by_epoch, total=train_cfg.get(
                          'max_epochs' if by_epoch else 'max_iters')),
                      fidelity=cfg.to_dict().get('fidelity'), footprint=run.footprint,
                      slurm_job_id=None, error=None)
    return True


# --- what a table will cost -----------------------------------------------------------------

_FOOTPRINTS: dict[tuple, dict] = {}


def footprint_of(cfg, run: Run) -> Optional[dict]:
    """The run's expected checkpoint footprint, once per (table, profile, row, task, GPUs): the
    model has to be built to count it."""
    from tools.footprint import checkpoint_footprint
    key = (run.key.table, run.key.profile, run.key.row, run.key.task, run.gpus)
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
    from tools.footprint import format_bytes, table_footprint
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


def dry_run(planned: list[Run], args: argparse.Namespace, data_root: Path,
            work_dir: Path) -> None:
    """Every run: its resources, recipe as run (effective batch, lr), checkpoint footprint,
    the plan's estimate where ``./run_all.sh plan`` measured one, and its command."""
    from tools.footprint import format_bytes, table_footprint
    from tools.plan import estimate_at, load_plan
    plans = {}
    footprints = []
    for i, run in enumerate(planned, 1):
        print(f'[{i}/{len(planned)}] {run.name} (GPUs {run.gpus}'
              f'{", after " + run.depends_on.name if run.depends_on else ""})')
        try:
            cfg, _ = run_config(run.key, data_root=data_root, work_dir=run.dir, gpus=run.gpus,
                                pretrained=runs.cls_run_dir(run.dir) / runs.HANDOVER
                                if run.depends_on else None)
        except Exception as err:
            print(f'    config does not build: {err}')
            continue
        fidelity = cfg.to_dict().get('fidelity')
        if fidelity:
            print(f'    recipe: {describe_fidelity(fidelity)}')
            for deviation in fidelity.get('deviations') or []:
                print(f'    deviation: {deviation}')
        footprint = footprint_of(cfg, run)
        footprints.append(footprint)
        if footprint:
            print(f'    checkpoints: {footprint["kept"]} kept'
                  f'{" + best" if footprint.get("best") else ""}, '
                  f'{format_bytes(footprint["total_bytes"])} at the end, '
                  f'{format_bytes(footprint["peak_bytes"])} at peak')
        if run.key.table not in plans:
            plans[run.key.table] = load_plan(run.key.table, args.report_dir)
        entry = plans[run.key.table].get(f'{run.key.row}/{run.key.task}')
        estimate = estimate_at(entry, run.gpus) if entry and entry.get('status') == 'ok' else None
        if estimate:
            print(f'    plan: {entry["s_per_iter"]:.3f} s/iter on {entry["device"]}, peak '
                  f'{entry["peak_mem_gib"]:.1f} GiB, {estimate["total_iters"]:,} iters: '
                  f'{estimate["wall_hours"]:.1f} h, {estimate["gpu_hours"]:.0f} device-hours on '
                  f'{run.gpus} GPUs' + (f' ({"; ".join(entry["flags"])})'
                                          if entry.get('flags') else ''))
        elif entry:
            print(f'    plan: the pilot FAILED: {entry.get("error")} (log: {entry.get("log")})')
        if args.launcher == 'slurm':
            directives = [line.split(None, 1)[1] for line in
                          sbatch_script(run, args).splitlines() if line.startswith('#SBATCH')]
            print('  sbatch ' + ' '.join(d for d in directives if not d.startswith(
                ('--job-name', '--output', '--open-mode'))))
        print('  ' + shlex.join(train_command(run.dir / runs.CONFIG, run.dir, args.launcher,
                                              run.gpus)))
    known = [f for f in footprints if f]
    if known:
        total = table_footprint(known)
        print(f'checkpoints of these {len(known)} runs: {format_bytes(total["total_bytes"])} '
              f'kept, {format_bytes(total["peak_bytes"])} at peak')


# --- the local executor ---------------------------------------------------------------------

def _devices() -> list[str]:
    """The GPUs this machine offers, as CUDA_VISIBLE_DEVICES entries ([] on CPU)."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    try:
        import torch
        count = torch.cuda.device_count()
    except Exception:
        count = 0
    if visible:
        return [d for d in visible.split(',') if d.strip()][:count]
    return [str(i) for i in range(count)]


def run_local(todo: list[Run], args: argparse.Namespace, start: float) -> None:
    """Up to args.jobs runs at once, each with its own devices (GPU) or share of cores (CPU)."""
    free = _devices()
    has_gpus = bool(free)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    waiting = list(todo)
    running: dict[int, tuple[Run, subprocess.Popen, list[str], float]] = {}
    total = len(todo)
    done = 0
    try:
        while waiting or running:
            for run in list(waiting):
                dep = run.depends_on
                if dep is not None and dep.action == 'run' and dep.outcome is None:
                    continue  # its cls run has not ended yet
                if dep is not None and dep.action == 'run' and dep.outcome != 'finished':
                    waiting.remove(run)
                    run.outcome = 'blocked'
                    runs.write_record(run.dir, status='blocked', ended=now(),
                                      error=f'its cls run {dep.name} did not finish ({dep.outcome})')
                    done += 1
                    print(f'[{done}/{total}] {run.name}: blocked ({dep.name} {dep.outcome})',
                          flush=True)
                    continue
                if len(running) >= args.jobs:
                    break
                if has_gpus and len(free) < run.gpus:
                    continue  # not enough GPUs free yet
                devices = [free.pop(0) for _ in range(run.gpus)] if has_gpus else []
                env = _python_env()
                if devices:
                    env['CUDA_VISIBLE_DEVICES'] = ','.join(devices)
                elif args.jobs > 1:
                    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
                        env[var] = str(threads)
                proc = subprocess.Popen(job_command(run.dir), cwd=REPO, env=env,
                                        preexec_fn=die_with_parent)
                waiting.remove(run)
                running[proc.pid] = (run, proc, devices, time.monotonic())
                print(f'[start] {run.name} ({run.key.profile}'
                      f'{", GPUs " + ",".join(devices) if devices else ""}) '
                      f'log: {run.dir / runs.CONSOLE}', flush=True)
            for pid, (run, proc, devices, t0) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[pid]
                free.extend(devices)
                if code == EXIT_LOCKED:
                    run.outcome = 'locked'
                else:
                    record = runs.read_record(run.dir) or {}
                    run.outcome = runs.recorded_state(record, run.dir)
                done += 1
                print(f'[{done}/{total}] {run.name}: {run.outcome} in {_elapsed(time.monotonic() - t0)}'
                      f' (table elapsed {_elapsed(time.monotonic() - start)})', flush=True)
                if run.outcome == 'failed':
                    print(f'  log: {run.dir / runs.CONSOLE}', flush=True)
            if waiting or running:
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        # Each job records itself interrupted when stopped; never leave one running alone.
        for run, proc, _, _ in running.values():
            if proc.poll() is None:
                proc.terminate()
        for run, proc, _, _ in running.values():
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


# --- the slurm executor ---------------------------------------------------------------------

SLURM_OPTIONS = ('partition', 'account', 'qos', 'time', 'mem')


def sbatch_script(run: Run, args: argparse.Namespace) -> str:
    """The batch script of one run: resubmittable by hand with ``sbatch <run dir>/job.sbatch``."""
    lines = ['#!/bin/bash', f'#SBATCH --job-name={run.key.table}-{run.key.row}-{run.key.task}'
             f'-s{run.key.seed}', f'#SBATCH --output={run.dir}/slurm-%j.out',
             '#SBATCH --open-mode=append',
             # Preempted or out of time: back in the queue, resuming from the last checkpoint.
             '#SBATCH --requeue', f'#SBATCH --signal=B:USR1@{args.requeue_before}']
    if run.key.profile == 'full':
        per_node = min(run.gpus, args.gpus_per_node)
        nodes = -(-run.gpus // per_node)
        lines += [f'#SBATCH --nodes={nodes}', f'#SBATCH --ntasks-per-node={per_node}',
                  f'#SBATCH --gres=gpu:{per_node}', f'#SBATCH --cpus-per-task={args.cpus_per_gpu}']
    else:  # smoke: a CPU pipeline check, one core
        lines += ['#SBATCH --ntasks=1', '#SBATCH --cpus-per-task=1']
    for option in SLURM_OPTIONS:
        value = getattr(args, option)
        if value:
            lines.append(f'#SBATCH --{option}={value}')
    lines += ['', '# Written by ./run_all.sh; tools/job.py records the run and trains it.',
              f'cd {shlex.quote(str(REPO))}',
              f'export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}',
              'export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}',
              f'exec {shlex.join(job_command(run.dir))}', '']
    return '\n'.join(lines)


def sbatch(script: Path, args: argparse.Namespace, dependency: Optional[str] = None) -> str:
    command = ['sbatch', '--parsable']
    if dependency:
        command += [f'--dependency={dependency}', '--kill-on-invalid-dep=yes']
    command += shlex.split(args.sbatch_args or '') + [str(script)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    except FileNotFoundError:
        raise ValueError('--launcher slurm needs sbatch on PATH (run on a SLURM login node)')
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f'{shlex.join(command)} failed: {err.stderr.strip()}') from err
    return out.stdout.strip().split(';')[0]


def run_slurm(todo: list[Run], args: argparse.Namespace, table: AblationTable, work_dir: Path,
              every: list[Run]) -> None:
    for run in todo:
        script = run.dir / 'job.sbatch'
        script.write_text(sbatch_script(run, args))
        dep = run.depends_on
        dependency = f'afterok:{dep.job_id}' if dep is not None and dep.job_id and \
            dep.action in ('run', 'queued') else None
        if dep is not None and dep.action == 'run' and dep.outcome == 'failed':
            run.outcome = 'blocked'
            runs.write_record(run.dir, status='blocked', ended=now(),
                              error=f'its cls run {dep.name} failed to start')
            print(f'  {run.name}: blocked ({dep.name} failed)', flush=True)
            continue
        run.job_id = sbatch(script, args, dependency)
        runs.write_record(run.dir, slurm_job_id=run.job_id, executor='slurm',
                          job_script=str(script))
        print(f'  {run.name}: queued as SLURM job {run.job_id}'
              f'{f" (after {dependency})" if dependency else ""}', flush=True)
    ids = [r.job_id for r in every if r.job_id]
    if not args.no_report:
        script = runs.table_root(work_dir, table.name) / args.profile / 'report.sbatch'
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text('\n'.join([
            '#!/bin/bash', f'#SBATCH --job-name={table.name}-report',
            f'#SBATCH --output={script.parent}/report-%j.out', '#SBATCH --ntasks=1',
            '#SBATCH --cpus-per-task=1',
            *(f'#SBATCH --{o}={getattr(args, o)}' for o in ('partition', 'account', 'qos')
              if getattr(args, o)),
            f'cd {shlex.quote(str(REPO))}',
            f'export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}',
            f'exec {shlex.join(report_command(table, work_dir, args))}', '']))
        # afterany: the report runs once every run has ended, whatever its outcome.
        report_id = sbatch(script, args, f'afterany:{":".join(ids)}' if ids else None)
        where = Path(args.report_dir).resolve() if args.report_dir else REPO / 'reports'
        print(f'  report: queued as SLURM job {report_id} (after all runs end); '
              f'writes {where / table.name}/', flush=True)
    print(f'{table.name}: {len([r for r in todo if r.job_id])} job(s) queued. Follow them with: '
          f'./run_all.sh status {table.name} --work-dir {work_dir}', flush=True)


# --- the table ------------------------------------------------------------------------------

def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(REPO), 'status', '--porcelain', '-uno'],
                               capture_output=True, text=True).stdout.strip()
        return out + ('-dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return None


def report_command(table: AblationTable, work_dir: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, '-m', 'reports', table.name, '--work-dir', str(work_dir),
               '--profile', args.profile]
    if args.report_dir:
        command += ['--out', str(Path(args.report_dir).resolve() / table.name)]
    return command


def _elapsed(seconds: float) -> str:
    return f'{int(seconds // 60)}m{int(seconds % 60):02d}s'


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='run_all.sh <table>', description='Run an ablation table end to end.')
    parser.add_argument('table', help=f'one of: {", ".join(TABLES)}, all')
    parser.add_argument('--profile', default='smoke', choices=PROFILES,
                        help='smoke (default): generated tiny data on CPU; full: the papers\' recipes')
    parser.add_argument('--rows', help='comma-separated row slugs (default: every row)')
    parser.add_argument('--tasks', help=f'comma-separated subset of {",".join(TASKS)}')
    parser.add_argument('--seeds', type=int, default=1, help='seeds per (row, task), 0..N-1')
    parser.add_argument('--gpus', default='1',
                        help='GPUs per run: N for every task, or per task as cls=32,det=8,seg=8')
    parser.add_argument('--launcher', choices=LAUNCHERS,
                        help='none/pytorch: this machine (torchrun for several GPUs; the '
                             'default when --gpus > 1, else none); slurm: one sbatch job per run')
    parser.add_argument('--jobs', type=int, default=1,
                        help='local executor: runs at once (GPUs or CPU cores are split)')
    parser.add_argument('--rerun-stale', action='store_true',
                        help='rerun finished runs whose config changed (old dirs are kept)')
    parser.add_argument('--data-root', help='datasets root (full profile; smoke: generated)')
    parser.add_argument('--work-dir', default=str(REPO / 'work_dirs'))
    parser.add_argument('--dry-run', action='store_true',
                        help='print the runs and their commands; run nothing')
    parser.add_argument('--no-report', action='store_true', help='do not call the reporter')
    parser.add_argument('--report-dir', help='where reports go, as <DIR>/<table>/ '
                                             '(default: reports/<table>/)')
    parser.add_argument('--quiet', action='store_true',
                        help='accepted for compatibility: training output always goes to each '
                             'run\'s console.log')
    slurm = parser.add_argument_group('SLURM (--launcher slurm)')
    for option in SLURM_OPTIONS:
        slurm.add_argument(f'--{option}', help=f'sbatch --{option}')
    slurm.add_argument('--gpus-per-node', type=int, default=GPUS_PER_NODE,
                       help='GPUs per node (runs with more GPUs span several nodes)')
    slurm.add_argument('--cpus-per-gpu', type=int, default=5, help='CPU cores per GPU task')
    slurm.add_argument('--requeue-before', type=int, default=300,
                       help='seconds before the time limit at which a job requeues itself')
    slurm.add_argument('--sbatch-args', help='more sbatch options, e.g. "--constraint=a100"')
    args = parser.parse_args(argv)
    if args.table != 'all':
        get_table(args.table)  # unknown table: ValueError listing the known ones
    try:
        args.gpus_per_task = parse_gpus(args.gpus)
    except ValueError as err:
        parser.error(str(err))
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    several = max(args.gpus_per_task.values()) > 1
    if args.launcher is None:
        args.launcher = 'pytorch' if several else 'none'
    elif args.launcher == 'none' and several:
        parser.error('--gpus > 1 needs --launcher pytorch or slurm')
    if args.launcher == 'slurm' and args.jobs != 1:
        parser.error('--jobs is for the local executor; SLURM runs every ready job at once')
    return args


def _split(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(',') if v.strip()] if value else None


def run_table(table: AblationTable, args: argparse.Namespace) -> int:
    work_dir = Path(args.work_dir).resolve()
    planned = plan_runs(table, _split(args.rows), _split(args.tasks), args.seeds, work_dir,
                        args.profile, args.gpus_per_task)
    if args.profile == 'full' and not args.data_root and not args.dry_run:
        raise ValueError('the full profile needs --data-root DIR (imagenet/, coco/, ade/ under '
                         'it); see README.md')
    data_root = Path(args.data_root or DEFAULT_SMOKE_DATA).expanduser().resolve()
    if args.dry_run:
        dry_run(planned, args, data_root, work_dir)
        return 0
    if args.profile == 'smoke' and not args.data_root:
        from tools.make_tiny_datasets import make_tiny_datasets
        make_tiny_datasets(data_root)
    for task in sorted({r.key.task for r in planned}):  # before any run starts
        check_data_root(task, data_root)

    start = time.monotonic()
    queue = slurm_queue() if args.launcher == 'slurm' else {}
    footprints = []
    for run in planned:
        decide(run, args, data_root, queue)
        if run.action != 'run':
            print(f'  {run.name}: {run.action} ({run.why})', flush=True)
        if run.action == 'run' and prepare(run, args, data_root):
            footprints.append(run.footprint)
    warn_if_short_of_disk(work_dir, footprints)
    todo = [r for r in planned if r.action == 'run' and r.outcome is None]
    stale = [r for r in planned if r.action == 'stale']
    print(f'{table.name} ({args.profile}): {len(todo)} to run, '
          f'{sum(r.action == "skip" for r in planned)} finished, {len(stale)} stale, '
          f'{sum(r.action in ("live", "queued") for r in planned)} already running or queued',
          flush=True)
    if args.launcher == 'slurm':
        run_slurm(todo, args, table, work_dir, planned)
        return 1 if any(r.outcome == 'failed' for r in planned) else 0

    run_local(todo, args, start)
    outcome: dict[str, list[str]] = {}
    for run in planned:
        outcome.setdefault(run.outcome or run.action, []).append(run.name)
    print(f'{table.name}: ' + ', '.join(f'{len(v)} {k}' for k, v in outcome.items())
          + f' in {_elapsed(time.monotonic() - start)}', flush=True)
    for name in outcome.get('failed', []):
        print(f'  failed: {name} (see {work_dir / name / runs.CONSOLE})')
    for name in outcome.get('locked', []) + outcome.get('live', []):
        print(f'  a live training of {name} is running elsewhere; not started again')
    if stale:
        print(f'  {len(stale)} stale run(s): finished under a config the table no longer '
              f'generates; rerun them with --rerun-stale (old results are kept)')
    if not args.no_report:
        command = report_command(table, work_dir, args)
        print('$ ' + shlex.join(command), flush=True)
        subprocess.run(command, cwd=REPO, check=False, env=_python_env())
    return 1 if outcome.get('failed') or outcome.get('blocked') else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    # SIGTERM (kill, scancel) and SIGINT alike stop the runs cleanly; SIGINT is set explicitly
    # because a shell starts background jobs with it ignored.
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        args = parse_args(argv)
        tables = list(TABLES.values()) if args.table == 'all' else [get_table(args.table)]
        status = 0
        for table in tables:
            status = max(status, run_table(table, args))
        return status
    except (ValueError, FileNotFoundError) as exc:
        print(f'run_all.sh: error: {exc}', file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f'run_all.sh: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted: run the same command again to resume (finished runs are kept, '
              'interrupted ones resume from their last checkpoint)', file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == '__main__':
    sys.exit(main())
