"""A table's runs as a graph: every (row, task, seed) of one invocation, what it depends on and
the commands that train it. The det/seg runs of a (row, seed) start from that row's cls
checkpoint, so they depend on its cls run; all else is independent.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ablations import TASKS, AblationTable
from runs.executors.launch import distributed_command
from runs.executors.process_layout import ProcessLayout
from runs.rundir import RunKey


@dataclass
class Run:
    """One (row, task, seed) of this invocation and what the runner decided for it."""
    key: RunKey
    dir: Path
    gpus: int
    depends_on: Optional['Run'] = None
    layout: Optional[ProcessLayout] = None  # set by the executor that starts it
    action: str = 'run'            # run | skip | stale | live | queued
    why: str = ''
    config_hash: Optional[str] = None
    command: list[str] = field(default_factory=list)
    job_id: Optional[str] = None
    outcome: Optional[str] = None  # finished | failed | blocked | locked | interrupted
    footprint: Optional[dict] = None  # expected checkpoint bytes (runs.table.footprint)

    @property
    def name(self) -> str:
        return self.key.name


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

def train_command(config: Path, run_dir: Path, layout: ProcessLayout) -> list[str]:
    """The command that trains one run on its layout's processes (what ``runs.executors.job``
    starts; under SLURM it runs inside the run's own allocation)."""
    return distributed_command('engine.trainer',
                               [str(config), '--work-dir', str(run_dir), '--resume'],
                               layout, port_key=str(run_dir))


def job_command(run_dir: Path) -> list[str]:
    """The process that owns one run from start to end (``runs.executors.job``)."""
    return [sys.executable, '-m', 'runs.executors.job', str(run_dir)]
