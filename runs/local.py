"""The local executor (launcher none or pytorch): up to ``--jobs`` runs at once on this machine,
each started as ``python -m runs.job RUN_DIR``; on a GPU machine each gets its own devices, on
CPU the cores are split between them. Returns when every run has ended.
"""
from __future__ import annotations

import argparse
import subprocess
import time

import runs
from runs import REPO, now
from runs.devices import threads_per_process, visible_gpus
from runs.graph import Run, job_command
from runs.job import EXIT_LOCKED, die_with_parent
from runs.launch import python_env

POLL_SECONDS = 0.5


def run_local(todo: list[Run], args: argparse.Namespace, start: float) -> None:
    """Up to args.jobs runs at once, each with its own devices (GPU) or share of cores (CPU)."""
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
                env = python_env()
                if devices:
                    env['CUDA_VISIBLE_DEVICES'] = ','.join(devices)
                elif args.jobs > 1 or run.gpus > 1:
                    # The cores are split between the runs at once and each run's processes.
                    threads = threads_per_process(run.gpus, args.jobs)
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
                print(f'[{done}/{total}] {run.name}: {run.outcome} in {elapsed(time.monotonic() - t0)}'
                      f' (table elapsed {elapsed(time.monotonic() - start)})', flush=True)
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



def elapsed(seconds: float) -> str:
    """``3m07s``: how long a run or the table took, in the executors' progress lines."""
    return f'{int(seconds // 60)}m{int(seconds % 60):02d}s'
