"""The SLURM executor (launcher slurm): one ``sbatch`` per run, its batch script written into the
run dir (resubmittable by hand), dependencies as ``afterok``, then the follow-up job (the report,
or the --seeds auto decision) after all of them whatever their outcome. Returns once everything
is queued; ``./run_all.sh status`` follows the runs through :func:`slurm_queue`.
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ablations.reduction import base_profile
from engine.process_group import BASE_PORT
from runs import rundir
from runs.executors.devices import slurm_has_gpus
from runs.executors.follow_up import FollowUp
from runs.executors.process_layout import GPUS_PER_NODE, ProcessLayout, process_layout
from runs.provenance import REPO
from runs.table.graph import Run, job_command

# sbatch options passed through as they are given.
SLURM_OPTIONS = ('partition', 'account', 'qos', 'time', 'mem')


@dataclass(frozen=True)
class SlurmOptions:
    """What only the SLURM executor understands (``--partition`` ... ``--sbatch-args``)."""
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    time: Optional[str] = None
    mem: Optional[str] = None
    gpus_per_node: int = GPUS_PER_NODE
    cpus_per_gpu: int = 5
    requeue_before: int = 300  # seconds before the time limit at which a job requeues itself
    sbatch_args: Optional[str] = None

    def passed_through(self, names: Sequence[str] = SLURM_OPTIONS) -> list[str]:
        """``--partition=P``, ... for the options given, as sbatch directives take them."""
        return [f'--{name}={getattr(self, name)}' for name in names if getattr(self, name)]


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


def sbatch_directives(name: str, layout: ProcessLayout, profile: str,
                      options: SlurmOptions) -> list[str]:
    """The ``#SBATCH`` lines of a job shaped like ``layout`` (after its name and output)."""
    # smoke: a CPU pipeline check, one core per process; full: the cores asked for per GPU.
    cpus = options.cpus_per_gpu if base_profile(profile) == 'full' else 1
    lines = [f'#SBATCH --job-name={name}']
    if layout.world_size == 1 and layout.device == 'cpu':
        lines += ['#SBATCH --ntasks=1', f'#SBATCH --cpus-per-task={cpus}']
    else:
        lines += [f'#SBATCH --nodes={layout.nodes}',
                  f'#SBATCH --ntasks-per-node={layout.tasks_per_node}']
        if layout.device == 'gpu':
            lines.append(f'#SBATCH --gres=gpu:{layout.tasks_per_node}')
        lines.append(f'#SBATCH --cpus-per-task={cpus}')
    return lines + [f'#SBATCH {d}' for d in options.passed_through()]


def sbatch_script(run: Run, options: SlurmOptions) -> str:
    """The batch script of one run: resubmittable by hand with ``sbatch <run dir>/job.sbatch``."""
    name = f'{run.key.table}-{run.key.row}-{run.key.task}-s{run.key.seed}'
    head, *shape = sbatch_directives(name, run.layout, run.key.profile, options)
    lines = ['#!/bin/bash', head, f'#SBATCH --output={run.dir}/slurm-%j.out',
             '#SBATCH --open-mode=append',
             # Preempted or out of time: back in the queue, resuming from the last checkpoint.
             '#SBATCH --requeue', f'#SBATCH --signal=B:USR1@{options.requeue_before}', *shape]
    lines += ['', '# Written by ./run_all.sh; runs/executors/job.py records the run and trains it.',
              f'cd {shlex.quote(str(REPO))}',
              f'export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}',
              'export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}',
              # A port per job: two multi-process jobs sharing a node must not collide.
              f'export MASTER_PORT=$(({BASE_PORT} + SLURM_JOB_ID % 2000))',
              f'exec {shlex.join(job_command(run.dir))}', '']
    return '\n'.join(lines)


def sbatch(script: Path, options: SlurmOptions, dependency: Optional[str] = None) -> str:
    command = ['sbatch', '--parsable']
    if dependency:
        command += [f'--dependency={dependency}', '--kill-on-invalid-dep=yes']
    command += shlex.split(options.sbatch_args or '') + [str(script)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    except FileNotFoundError:
        raise ValueError('--launcher slurm needs sbatch on PATH (run on a SLURM login node)')
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f'{shlex.join(command)} failed: {err.stderr.strip()}') from err
    return out.stdout.strip().split(';')[0]


class SlurmExecutor:
    """One sbatch job per run (see the module docstring); returns once they are queued."""

    name = 'slurm'
    follows_queued = True  # a run can wait on a queued upstream job (afterok)

    def __init__(self, options: SlurmOptions, work_dir: Path,
                 partition_has_gpus: Optional[bool] = None):
        self.options, self.work_dir = options, work_dir
        # Whether the partition's nodes have GPUs (sinfo, unless told): full runs take them;
        # smoke runs and runs on a CPU partition use CPU processes (gloo) in their place.
        self.partition_has_gpus = slurm_has_gpus(options.partition) \
            if partition_has_gpus is None else partition_has_gpus

    def device(self, profile: str) -> str:
        return 'gpu' if base_profile(profile) == 'full' and self.partition_has_gpus else 'cpu'

    def layout(self, gpus: int, profile: str) -> ProcessLayout:
        return process_layout(gpus, 'slurm', self.device(profile), self.options.gpus_per_node)

    def preflight(self, planned: list[Run], dry_run: bool = False) -> None:
        if not self.partition_has_gpus and any(r.layout.world_size > 1 for r in planned):
            print(f'SLURM partition {self.options.partition or "(default)"}: no GPU on its '
                  f'nodes; each GPU of a run is a CPU process (gloo backend)', flush=True)

    def queued(self) -> dict:
        return slurm_queue()

    def describe(self, run: Run) -> list[str]:
        directives = [line.split(None, 1)[1] for line in
                      sbatch_script(run, self.options).splitlines()
                      if line.startswith('#SBATCH')]
        return ['sbatch ' + ' '.join(d for d in directives if not d.startswith(
            ('--job-name', '--output', '--open-mode')))]

    def execute(self, todo: list[Run], every: list[Run],
                follow_up: Optional[FollowUp] = None) -> None:
        """Queue ``todo``; then, when ``follow_up`` is given, a job that runs its command once
        every run of ``every`` has ended."""
        for run in todo:
            script = run.dir / 'job.sbatch'
            script.write_text(sbatch_script(run, self.options))
            dep = run.depends_on
            dependency = f'afterok:{dep.job_id}' if dep is not None and dep.job_id and \
                dep.action in ('run', 'queued') else None
            if dep is not None and dep.action == 'run' and dep.outcome == 'failed':
                run.outcome = 'blocked'
                rundir.write_record(run.dir, status='blocked', ended=rundir.now(),
                                    error=f'its cls run {dep.name} failed to start')
                print(f'  {run.name}: blocked ({dep.name} failed)', flush=True)
                continue
            run.job_id = sbatch(script, self.options, dependency)
            run.outcome = 'queued'
            rundir.write_record(run.dir, slurm_job_id=run.job_id, executor='slurm',
                                job_script=str(script))
            print(f'  {run.name}: queued as SLURM job {run.job_id}'
                  f'{f" (after {dependency})" if dependency else ""}', flush=True)
        table = every[0].key.table if every else (todo[0].key.table if todo else '?')
        profile = every[0].key.profile if every else 'smoke'
        if follow_up is not None and every:
            self._queue_follow_up(table, profile, [r.job_id for r in every if r.job_id],
                                  follow_up)
        print(f'{table}: {len([r for r in todo if r.job_id])} job(s) queued. Follow them with: '
              f'./run_all.sh status {table} --work-dir {self.work_dir}', flush=True)

    def _queue_follow_up(self, table: str, profile: str, ids: list[str],
                         follow_up: FollowUp) -> None:
        name = follow_up.name
        script = rundir.table_root(self.work_dir, table) / profile / f'{name}.sbatch'
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text('\n'.join([
            '#!/bin/bash', f'#SBATCH --job-name={table}-{name}',
            f'#SBATCH --output={script.parent}/{name}-%j.out', '#SBATCH --ntasks=1',
            '#SBATCH --cpus-per-task=1',
            *(f'#SBATCH {d}' for d in self.options.passed_through(
                ('partition', 'account', 'qos'))),
            f'cd {shlex.quote(str(REPO))}',
            f'export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}',
            f'exec {shlex.join(follow_up.command)}', '']))
        # afterany: it runs once every run has ended, whatever its outcome.
        job_id = sbatch(script, self.options, f'afterany:{":".join(ids)}' if ids else None)
        print(f'  {name}: queued as SLURM job {job_id} (after all runs end); {follow_up.does}',
              flush=True)
