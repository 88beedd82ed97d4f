"""The local executor (launcher none or pytorch): up to ``--jobs`` runs at once on this machine,
each started as ``python -m runs.executors.job RUN_DIR``; on a GPU machine each gets its own
devices, on CPU the cores are split between them. Returns when every run has ended, having
said how each ended, and runs the report.
"""
from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from runs import rundir
from runs.console import elapsed
from runs.executors.devices import describe_local, threads_per_process, visible_gpus
from runs.executors.follow_up import FollowUp
from runs.executors.job import EXIT_LOCKED, die_with_parent
from runs.executors.launch import python_env
from runs.executors.process_layout import ProcessLayout, process_layout
from runs.provenance import REPO
from runs.rundir import now
from runs.table.graph import Run, job_command

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class LocalOptions:
    """What only the local executor understands."""
    launcher: str = 'none'  # none (one process) or pytorch (torchrun)
    jobs: int = 1           # runs at once; the GPUs or the CPU cores are split between them


class LocalExecutor:
    """Runs on this machine (see the module docstring)."""

    name = 'local'
    follows_queued = False  # it cannot wait on a run queued or running elsewhere

    def __init__(self, options: LocalOptions, work_dir: Path):
        self.options, self.work_dir = options, work_dir
        self.start = time.monotonic()

    def device(self, profile: str) -> str:
        return 'gpu' if visible_gpus() else 'cpu'

    def layout(self, gpus: int, profile: str) -> ProcessLayout:
        return process_layout(gpus, self.options.launcher, self.device(profile))

    def preflight(self, planned: list[Run], dry_run: bool = False) -> None:
        """ValueError (one line) when this machine cannot give a run what it asks for; not for
        a dry run, which may plan for GPUs this machine lacks."""
        if dry_run:
            return
        line = describe_local({r.key.task: r.gpus for r in planned} or {'cls': 1},
                              self.options.jobs)
        if max((r.gpus for r in planned), default=1) > 1:
            print(line, flush=True)

    def queued(self) -> dict:
        return {}

    def describe(self, run: Run) -> list[str]:
        return []

    def execute(self, todo: list[Run], every: list[Run],
                follow_up: Optional[FollowUp] = None) -> None:
        """Run ``todo``, say how every run of ``every`` ended, then run ``follow_up``."""
        run_local(todo, self.options.jobs, self.start)
        outcome: dict[str, list[str]] = {}
        for run in every:
            outcome.setdefault(run.outcome or run.action, []).append(run.name)
        table = every[0].key.table if every else '?'
        print(f'{table}: ' + ', '.join(f'{len(v)} {k}' for k, v in outcome.items())
              + f' in {elapsed(time.monotonic() - self.start)}', flush=True)
        for name in outcome.get('failed', []):
            print(f'  failed: {name} (see {self.work_dir / name / rundir.CONSOLE})')
        for name in outcome.get('locked', []) + outcome.get('live', []):
            print(f'  a live training of {name} is running elsewhere; not started again')
        stale = outcome.get('stale', [])
        if stale:
            print(f'  {len(stale)} stale run(s): finished under a config the table no longer '
                  f'generates; rerun them with --rerun-stale (old results are kept)')
        if follow_up is not None:
            print('$ ' + shlex.join(follow_up.command), flush=True)
            subprocess.run(list(follow_up.command), cwd=REPO, check=False, env=python_env())


def run_local(todo: list[Run], jobs: int, start: float) -> None:
    """Up to ``jobs`` runs at once, each with its own devices (GPU) or share of cores (CPU)."""
    free = visible_gpus()
    has_gpus = bool(free)
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
                    rundir.write_record(
                        run.dir, status='blocked', ended=now(),
                        error=f'its cls run {dep.name} did not finish ({dep.outcome})')
                    done += 1
                    print(f'[{done}/{total}] {run.name}: blocked ({dep.name} {dep.outcome})',
                          flush=True)
                    continue
                if len(running) >= jobs:
                    break
                if has_gpus and len(free) < run.gpus:
                    continue  # not enough GPUs free yet
                devices = [free.pop(0) for _ in range(run.gpus)] if has_gpus else []
                env = python_env()
                if devices:
                    env['CUDA_VISIBLE_DEVICES'] = ','.join(devices)
                elif jobs > 1 or run.gpus > 1:
                    # The cores are split between the runs at once and each run's processes.
                    threads = threads_per_process(run.gpus, jobs)
                    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
                        env[var] = str(threads)
                proc = subprocess.Popen(job_command(run.dir), cwd=REPO, env=env,
                                        preexec_fn=die_with_parent)
                waiting.remove(run)
                running[proc.pid] = (run, proc, devices, time.monotonic())
                print(f'[start] {run.name} ({run.key.profile}'
                      f'{", GPUs " + ",".join(devices) if devices else ""}) '
                      f'log: {run.dir / rundir.CONSOLE}', flush=True)
            for pid, (run, proc, devices, t0) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[pid]
                free.extend(devices)
                if code == EXIT_LOCKED:
                    run.outcome = 'locked'
                else:
                    record = rundir.read_record(run.dir) or {}
                    run.outcome = rundir.recorded_state(record, run.dir)
                done += 1
                print(f'[{done}/{total}] {run.name}: {run.outcome} in '
                      f'{elapsed(time.monotonic() - t0)} '
                      f'(table elapsed {elapsed(time.monotonic() - start)})', flush=True)
                if run.outcome == 'failed':
                    print(f'  log: {run.dir / rundir.CONSOLE}', flush=True)
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
