"""The SLURM executor (launcher slurm): one ``sbatch`` per run, its batch script written into the
run dir (resubmittable by hand), dependencies as ``afterok``, then a report job after all of
them whatever their outcome. Returns once everything is queued; ``./run_all.sh status`` follows
the runs through ``slurm_queue``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from pathlib import Path
from typing import Optional, Sequence

import runs
from ablations import AblationTable
from runs import REPO, now
from runs.devices import BASE_PORT
from runs.graph import Run, job_command

GPUS_PER_NODE = int(os.environ.get('GPUS_PER_NODE', 8))

SLURM_OPTIONS = ('partition', 'account', 'qos', 'time', 'mem')


def slurm_queue(strict: bool = False) -> Optional[dict[str, tuple[str, str]]]:
    """job id -> (state, reason) of every job SLURM still lists; empty when SLURM is absent.
    ``strict``: None instead when squeue fails, so that a caller that must not take a job for
    gone (``status --wait``) can ask again."""
    try:
        out = subprocess.run(['squeue', '-h', '-o', '%i|%T|%r'], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None if strict else {}
    if strict and out.returncode != 0:
        return None
    jobs = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split('|')
        if len(parts) == 3:
            jobs[parts[0]] = (parts[1], parts[2])
    return jobs


def uses_gpus(run: Run, args: argparse.Namespace) -> bool:
    """Whether the run's processes take GPUs: full runs on a partition with GPUs. Smoke runs and
    runs on a CPU partition use CPU processes (gloo) in their place."""
    return run.key.profile == 'full' and getattr(args, 'slurm_gpus', True)


def sbatch_script(run: Run, args: argparse.Namespace) -> str:
    """The batch script of one run: resubmittable by hand with ``sbatch <run dir>/job.sbatch``."""
    lines = ['#!/bin/bash', f'#SBATCH --job-name={run.key.table}-{run.key.row}-{run.key.task}'
             f'-s{run.key.seed}', f'#SBATCH --output={run.dir}/slurm-%j.out',
             '#SBATCH --open-mode=append',
             # Preempted or out of time: back in the queue, resuming from the last checkpoint.
             '#SBATCH --requeue', f'#SBATCH --signal=B:USR1@{args.requeue_before}']
    # smoke: a CPU pipeline check, one core per process; full: the cores asked for per GPU.
    cpus = args.cpus_per_gpu if run.key.profile == 'full' else 1
    if run.gpus == 1 and not uses_gpus(run, args):
        lines += ['#SBATCH --ntasks=1', f'#SBATCH --cpus-per-task={cpus}']
    else:
        per_node = min(run.gpus, args.gpus_per_node)
        nodes = -(-run.gpus // per_node)
        lines += [f'#SBATCH --nodes={nodes}', f'#SBATCH --ntasks-per-node={per_node}']
        if uses_gpus(run, args):
            lines.append(f'#SBATCH --gres=gpu:{per_node}')
        lines.append(f'#SBATCH --cpus-per-task={cpus}')
    for option in SLURM_OPTIONS:
        value = getattr(args, option)
        if value:
            lines.append(f'#SBATCH --{option}={value}')
    lines += ['', '# Written by ./run_all.sh; runs/job.py records the run and trains it.',
              f'cd {shlex.quote(str(REPO))}',
              f'export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}',
              'export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}',
              # A port per job: two multi-process jobs sharing a node must not collide.
              f'export MASTER_PORT=$(({BASE_PORT} + SLURM_JOB_ID % 2000))',
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
              every: list[Run], report: Optional[Sequence[str]] = None) -> None:
    """Queue ``todo``; then, when ``report`` (the reporter's command) is given, a job that runs
    it once every run of ``every`` has ended."""
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
    if report is not None:
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
            f'exec {shlex.join(report)}', '']))
        # afterany: the report runs once every run has ended, whatever its outcome.
        report_id = sbatch(script, args, f'afterany:{":".join(ids)}' if ids else None)
        where = Path(args.report_dir).resolve() if args.report_dir else REPO / 'reports'
        print(f'  report: queued as SLURM job {report_id} (after all runs end); '
              f'writes {where / table.name}/', flush=True)
    print(f'{table.name}: {len([r for r in todo if r.job_id])} job(s) queued. Follow them with: '
          f'./run_all.sh status {table.name} --work-dir {work_dir}', flush=True)
