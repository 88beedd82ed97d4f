"""Run an ablation table as a job graph: every (row, task, seed) through mmengine, then the report.

The steps: plan the runs (``runs.table.graph``) and lay out each run's processes with the
executor chosen once (``runs.executors.base.executor_for``: local or SLURM); decide what each
needs and write its config and record (``runs.table.decide``); then hand them to the executor.
The command line is ``tools/run_table.py``; it hands in the reporter's command, so this layer
never calls up into ``reports``.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from ablations import AblationTable, get_table
from ablations.compose import DEFAULT_SMOKE_DATA, check_data_root, describe_fidelity
from ablations.row_check import check_rows
from runs import console, rundir
from runs.commands.planner import load_plan, plan_line
from runs.datasets.tiny_datasets import make_tiny_datasets
from runs.executors.base import Executor, executor_for
from runs.executors.follow_up import FollowUp
from runs.logs.official_runs import anchor_text, official_anchor
from runs.options import TableOptions
from runs.rundir.identity import run_config
from runs.table.decide import (
    decide,
    footprint_of,
    prepare,
    recipe_as_run,
    warn_if_short_of_disk,
)
from runs.table.footprint import format_bytes, table_footprint
from runs.table.graph import Run, plan_runs, train_command


def dry_run(planned: list[Run], options: TableOptions, executor: Executor,
            data_root: Path) -> None:
    """Every run: its resources, recipe as run (effective batch, lr), checkpoint footprint,
    the plan's estimate where ``./run_all.sh plan`` measured one, what the official run of its
    recipe measured where its log is published (``ablations/reference_catalog.py``), and its command."""
    plans = {}
    footprints = []
    for i, run in enumerate(planned, 1):
        print(f'[{i}/{len(planned)}] {run.name} (GPUs {run.gpus}'
              f'{", after " + run.depends_on.name if run.depends_on else ""})')
        if run.layout.nodes > 1:
            print(f'    layout: {run.layout.describe()}')
        try:
            cfg, _ = run_config(run.key, data_root=data_root, work_dir=run.dir,
                                gpus=run.layout.world_size,
                                pretrained=rundir.cls_run_dir(run.dir) / rundir.HANDOVER
                                if run.depends_on else None)
        except Exception as err:
            print(f'    config does not build: {err}')
            continue
        fidelity = recipe_as_run(cfg, run)
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
        if run.key.table not in plans:  # a plan's runs are full-profile: none for a smoke run
            plans[run.key.table] = load_plan(run.key.table, options.report_dir, run.key.profile)
        line = plan_line(plans[run.key.table].get(f'{run.key.row}/{run.key.task}'), run.gpus)
        if line:
            print(f'    {line}')
        anchor = official_anchor(get_table(run.key.table).base_configs[run.key.task])
        if anchor:  # what the official run of this recipe measured
            print(f'    official run: {anchor_text(anchor)}')
        for line in executor.describe(run):
            print('  ' + line)
        print('  ' + shlex.join(train_command(run.dir / rundir.CONFIG, run.dir, run.layout)))
    known = [f for f in footprints if f]
    if known:
        total = table_footprint(known)
        print(f'checkpoints of these {len(known)} runs: {format_bytes(total["total_bytes"])} '
              f'kept, {format_bytes(total["peak_bytes"])} at peak')


def run_table(table: AblationTable, options: TableOptions,
              follow_up: Optional[FollowUp] = None) -> int:
    """Run (or, with ``options.dry_run``, describe) every run of ``table`` that ``options``
    selects; then ``follow_up`` (the report, or the --seeds auto decision), when given. The exit
    status: 0 when nothing failed or was blocked. A process layout that cannot be started is a
    ValueError before anything is written."""
    work_dir = options.work_dir
    planned = plan_runs(table, options.rows, options.tasks, options.seeds, work_dir,
                        options.run_profile, dict(options.gpus))
    if options.profile == 'full' and not options.data_root and not options.dry_run:
        raise ValueError('the full profile needs --data-root DIR (imagenet/, coco/, ade/ under '
                         'it); see README.md')
    data_root = (options.data_root or Path(DEFAULT_SMOKE_DATA)).expanduser().resolve()
    executor = executor_for(options.executor, work_dir)
    for run in planned:
        run.layout = executor.layout(run.gpus, run.key.profile)
    # Before anything is queued or written (and after the cheap layout check): each selected
    # row's model built at smoke size and run once, so that a mistyped row fails here in one
    # line (RowError), not in its training job.
    with console.quiet_toolkits():
        check_rows(table, [(run.key.row, run.key.task) for run in planned])
    executor.preflight(planned, options.dry_run)
    if options.dry_run:
        with console.quiet_toolkits():  # its own lines only; the toolkits' notes go to run logs
            dry_run(planned, options, executor, data_root)
        return 0
    if options.profile == 'smoke' and not options.data_root:
        make_tiny_datasets(data_root)
    for task in sorted({r.key.task for r in planned}):  # before any run starts
        check_data_root(task, data_root)

    queue = executor.queued()
    footprints = []
    for run in planned:
        decide(run, options, data_root, queue, executor.follows_queued)
        if run.action != 'run':
            print(f'  {run.name}: {run.action} ({run.why})', flush=True)
        if run.action == 'run' and prepare(run, options, data_root):
            footprints.append(run.footprint)
    warn_if_short_of_disk(work_dir, footprints)
    todo = [r for r in planned if r.action == 'run' and r.outcome is None]
    stale = [r for r in planned if r.action == 'stale']
    print(f'{table.name} ({options.run_profile}): {len(todo)} to run, '
          f'{sum(r.action == "skip" for r in planned)} finished, {len(stale)} stale, '
          f'{sum(r.action in ("live", "queued") for r in planned)} already running or queued',
          flush=True)
    executor.execute(todo, planned, follow_up)
    return 1 if any(r.outcome in ('failed', 'blocked') for r in planned) else 0
