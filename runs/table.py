"""Run an ablation table as a job graph: every (row, task, seed) through mmengine, then the report.

The steps, each in its own module: plan the runs (``runs.graph``), decide what each needs and
write its config and record (``runs.decide``), then start them with the local executor
(``runs.local``: launcher none or pytorch, ``--jobs`` at once, returns when all have ended) or
the SLURM executor (``runs.slurm``: one ``sbatch`` per run, returns once queued). The command
line is ``tools/run_table.py``; it hands in the reporter's command, so this layer never calls
up into ``reports``.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

import runs
from ablations import AblationTable, get_table
from ablations.compose import DEFAULT_SMOKE_DATA, check_data_root, describe_fidelity
from runs import REPO, split_csv
from runs.decide import decide, footprint_of, prepare, recipe_as_run, warn_if_short_of_disk
from runs.devices import describe_local, slurm_has_gpus
from runs.footprint import format_bytes, table_footprint
from runs.graph import Run, plan_runs, train_command
from runs.identity import run_config
from runs.launch import python_env
from runs.local import elapsed, run_local
from runs.planner import estimate_at, load_plan
from runs.references import anchor_text, official_anchor
from runs.slurm import run_slurm, sbatch_script, slurm_queue
from runs.tiny_datasets import make_tiny_datasets


def dry_run(planned: list[Run], args: argparse.Namespace, data_root: Path,
            work_dir: Path) -> None:
    """Every run: its resources, recipe as run (effective batch, lr), checkpoint footprint,
    the plan's estimate where ``./run_all.sh plan`` measured one, what the official run of its
    recipe measured where its log is published (``ablations/references.py``), and its command."""
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
        fidelity = recipe_as_run(cfg, run, args)
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
        anchor = official_anchor(get_table(run.key.table).base_configs[run.key.task])
        if anchor:  # what the official run of this recipe measured
            print(f'    official run: {anchor_text(anchor)}')
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


def run_table(table: AblationTable, args: argparse.Namespace,
              report: Optional[Sequence[str]] = None) -> int:
    """Run (or, with ``args.dry_run``, describe) every run of ``table`` that ``args`` selects;
    then ``report``, the reporter's command, when given. The exit status: 0 when nothing failed
    or was blocked."""
    work_dir = Path(args.work_dir).resolve()
    planned = plan_runs(table, split_csv(args.rows), split_csv(args.tasks), args.seeds, work_dir,
                        args.profile, args.gpus_per_task)
    if args.profile == 'full' and not args.data_root and not args.dry_run:
        raise ValueError('the full profile needs --data-root DIR (imagenet/, coco/, ade/ under '
                         'it); see README.md')
    data_root = Path(args.data_root or DEFAULT_SMOKE_DATA).expanduser().resolve()
    most = max((r.gpus for r in planned), default=1)
    if args.launcher == 'slurm':
        args.slurm_gpus = slurm_has_gpus(args.partition)
        if not args.slurm_gpus and most > 1:
            print(f'SLURM partition {args.partition or "(default)"}: no GPU on its nodes; each '
                  f'GPU of a run is a CPU process (gloo backend)', flush=True)
    elif not args.dry_run:  # a dry run may plan for GPUs this machine lacks
        line = describe_local({r.key.task: r.gpus for r in planned} or {'cls': 1}, args.jobs)
        if most > 1:
            print(line, flush=True)
    if args.dry_run:
        with runs.quiet_toolkits():  # its own lines only; the toolkits' notes go to run logs
            dry_run(planned, args, data_root, work_dir)
        return 0
    if args.profile == 'smoke' and not args.data_root:
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
        run_slurm(todo, args, table, work_dir, planned, report)
        return 1 if any(r.outcome == 'failed' for r in planned) else 0

    run_local(todo, args, start)
    outcome: dict[str, list[str]] = {}
    for run in planned:
        outcome.setdefault(run.outcome or run.action, []).append(run.name)
    print(f'{table.name}: ' + ', '.join(f'{len(v)} {k}' for k, v in outcome.items())
          + f' in {elapsed(time.monotonic() - start)}', flush=True)
    for name in outcome.get('failed', []):
        print(f'  failed: {name} (see {work_dir / name / runs.CONSOLE})')
    for name in outcome.get('locked', []) + outcome.get('live', []):
        print(f'  a live training of {name} is running elsewhere; not started again')
    if stale:
        print(f'  {len(stale)} stale run(s): finished under a config the table no longer '
              f'generates; rerun them with --rerun-stale (old results are kept)')
    if report is not None:
        print('$ ' + shlex.join(report), flush=True)
        subprocess.run(list(report), cwd=REPO, check=False, env=python_env())
    return 1 if outcome.get('failed') or outcome.get('blocked') else 0
