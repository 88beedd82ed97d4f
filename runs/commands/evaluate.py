"""Evaluate a checkpoint in an ablation row's config: the engine of ``./run_all.sh eval``
(command line: ``tools/eval_checkpoint.py``).

FILE may be an official checkpoint of either family (ImageNet, or an mmdet/mmseg downstream
one) or one of this suite's own: the family is read from its keys and must be the table's, an
official one is converted with the family's ``convert_official_state_dict``
(``backbones.convert``) and ours goes in unchanged. The EMA weights are taken when the
file has them (the papers report the EMA model; ``--no-ema``: the plain ones). Every key is then
checked against the model the row's config builds: a checkpoint of the wrong family, variant or
task is a one-line error with a summary of the missing and unexpected keys (exit 2), never a
silently half-loaded model.

The row's config gives the test data, pipeline (the variant's test crop) and metric. With
``--profile smoke`` the data is the generated tiny data; the model is the smoke config's
reduced-width one when the checkpoint fits it, else the row's real (full-profile) model, so a
released checkpoint can be tried end to end without ImageNet (its number there means nothing).
``--fuse-bn`` folds MobileMamba's BatchNorms before the loop (its official inference protocol).

The result goes to its own run dir, ``<work-dir>/<table>/<profile>/<row>/<task>/eval-<sha12>/``
(runs.RunKey.eval): ``run.json`` (kind ``eval``, the checkpoint's path and sha256, where its
weights came from), ``config.py`` and mmengine's ``<timestamp>/<timestamp>.json`` with the
metrics. A finished eval of the same file with the same options is not run again (``--force``).
"""
from __future__ import annotations

import hashlib
import os
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ablations import METRICS, AblationTable, get_table
from ablations.compose import DEFAULT_SMOKE_DATA, build_row_config
from ablations.table_files import dump_config, table_file_record
from backbones import MODEL_TYPES as FAMILY_NAMES
from backbones.build import build_model_from_config
from backbones.convert import (
    EMA_KEYS,
    compare_keys,
    convert,
    detect_family,
    read_checkpoint,
    summarize_keys,
    unwrap,
)
from engine.tester import run_test
from runs.datasets.tiny_datasets import make_tiny_datasets
from runs.executors.devices import visible_gpus
from runs.executors.launch import distributed_command, python_env
from runs.executors.process_layout import ProcessLayout, process_layout
from runs.options import DEFAULT_WORK_DIR
from runs.provenance import REPO, git_commit
from runs.rundir import RunKey, RunLock, now, read_record, write_record
from runs.tracking.tracker_runs import (
    add_trackers,
    check_accounts,
    ensure_installed,
    open_tracker_runs,
)

# Where the weights came from (run.json's converted_from). 'ours': already in this suite's
# layout, loaded unchanged (the official MambaVision mmdet/mmseg files share that layout).
CONVERTED_FROM = ('official-mambavision', 'official-mobilemamba', 'ours')
# Keys only a detector's / segmentor's checkpoint has, and a classifier's heads.
TASK_KEYS = dict(det=('rpn_head.', 'roi_head.', 'bbox_head.'),
                 seg=('decode_head.', 'auxiliary_head.'),
                 cls=('head.fc.', 'head.l.'))


@dataclass(frozen=True)
class EvalOptions:
    """What ``./run_all.sh eval`` was asked to do, parsed once by ``tools/eval_checkpoint.py``."""
    table: str
    rows: tuple[str, ...]
    checkpoint: Path
    tasks: tuple[str, ...] = ()
    profile: str = 'smoke'
    data_root: Optional[Path] = None
    work_dir: Path = DEFAULT_WORK_DIR
    fuse_bn: bool = False
    no_ema: bool = False
    launcher: str = 'none'
    gpus: int = 1
    partition: Optional[str] = None
    force: bool = False
    trackers: tuple[str, ...] = ()


class EvalError(ValueError):
    """A user mistake the command reports in one line (exit 2)."""


@dataclass
class Weights:
    """A checkpoint's weights in our names, and what they were."""
    state_dict: dict
    family: str
    converted_from: str
    weights_key: Optional[str]  # where in the file: 'state_dict', 'net_E', ... (None: the file)
    ema: bool
    task: Optional[str]         # the task its keys say it is for (None: a bare backbone)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def task_of(state_dict: dict) -> Optional[str]:
    """cls, det or seg, from the heads a (converted) state dict has; None for a bare backbone."""
    for task, prefixes in TASK_KEYS.items():
        if any(k.startswith(prefixes) for k in state_dict):
            return task
    return None


def read_weights(path: Path, family: str, ema: bool = True) -> Weights:
    """The weights of ``path`` in our names; EvalError when they are not ``family``'s."""
    ckpt = read_checkpoint(path)
    weights, where = unwrap(ckpt, ema)
    tensors = {k: v for k, v in weights.items() if torch.is_tensor(v)}
    if not tensors:
        raise EvalError(f'{path}: holds no tensors, not a checkpoint of weights')
    found = detect_family(tensors)
    if found is None:
        raise EvalError(f'{path}: no MambaVision or MobileMamba backbone in it (keys like '
                        f'{", ".join(list(tensors)[:2])})')
    if found != family:
        raise EvalError(f'{path} holds {FAMILY_NAMES[found]} weights; this table evaluates '
                        f'{FAMILY_NAMES[family]} models')
    converted = convert(family, tensors)
    unchanged = converted.keys() == tensors.keys()
    # mmengine's EMAHook saves the averaged weights as "state_dict" (the raw ones aside).
    is_ema = where in EMA_KEYS or (where == 'state_dict' and 'ema_state_dict' in ckpt)
    return Weights(converted, family, 'ours' if unchanged else f'official-{family}', where,
                   is_ema, task_of(converted))


def _candidates(table: AblationTable, row: str, task: str, profile: str, data_root: Path):
    """(label, config) of the models a checkpoint may be evaluated in, in the order tried."""
    cfg = build_row_config(table, row, task, profile=profile, data_root=data_root,
                           check_data=True)
    if profile != 'smoke':
        return [(f'{profile} model', cfg)]
    full = build_row_config(table, row, task, profile='full', data_root=data_root)
    real = cfg.copy()
    real.model = full.model
    return [('smoke model (reduced widths)', cfg),
            (f'full model ({table.model}-{table.arch}, real widths)', real)]


def fit_model(weights: Weights, table: AblationTable, row: str, task: str, profile: str,
              data_root: Path, path: Path):
    """The first candidate config whose model the weights fit exactly; EvalError otherwise."""
    problems = []
    for label, cfg in _candidates(table, row, task, profile, data_root):
        reference = build_model_from_config(cfg).state_dict()
        report = compare_keys(weights.state_dict, reference)
        if not (report['missing'] or report['unexpected'] or report['shape_mismatch']):
            return label, cfg
        size = len(report['missing']) + len(report['unexpected']) + len(report['shape_mismatch'])
        problems.append((size, label, report))
    _, label, report = min(problems, key=lambda p: p[0])
    what = f'a {weights.task} checkpoint' if weights.task and weights.task != task else \
        'the checkpoint'
    raise EvalError(f'{path.name}: {what} does not fit {table.name}/{row} {task} '
                    f'({label}): {summarize_keys(report)}')


def launch_command(module_args: list[str], layout: ProcessLayout, partition: Optional[str],
                   job_name: str, port_key: str) -> list[str]:
    """``python -m engine.tester ARGS`` on the layout's processes; srun asks for its own
    resources (the layout's nodes, tasks and GPUs)."""
    srun = [f'--job-name={job_name}', f'--nodes={layout.nodes}',
            f'--ntasks-per-node={layout.tasks_per_node}', f'--ntasks={layout.world_size}',
            f'--gres=gpu:{layout.tasks_per_node}', '--cpus-per-task=5']
    if partition:
        srun.insert(0, f'--partition={partition}')
    return distributed_command('engine.tester', module_args, layout, port_key, srun)


def test_json(run_dir: Path) -> Optional[Path]:
    """mmengine's newest ``<timestamp>/<timestamp>.json`` in a run dir."""
    for folder in sorted((p for p in run_dir.iterdir() if p.is_dir()), reverse=True):
        for path in (folder / f'{folder.name}.json', folder / 'vis_data' / f'{folder.name}.json'):
            if path.is_file():
                return path
    return None


def read_metrics(path: Path) -> dict:
    """The last metrics line of an mmengine JSON log."""
    import json
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines[-1] if lines else {}


def evaluate(table: AblationTable, row: str, task: str, checkpoint: Path, weights: Weights,
             sha256: str, options: EvalOptions, data_root: Path) -> tuple[str, Path]:
    """One (row, task) eval; ('finished' | 'skipped' | 'locked' | 'failed', run dir)."""
    row = table.row(row).slug
    label, cfg = fit_model(weights, table, row, task, options.profile, data_root, checkpoint)
    key = RunKey.eval(table.name, options.profile, row, task, sha256)
    run_dir = key.dir(options.work_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = dict(fuse_bn=options.fuse_bn, ema=weights.ema, model=label,
                    data_root=str(data_root))
    with RunLock(run_dir) as locked:
        if not locked:
            return 'locked', run_dir
        previous = read_record(run_dir) or {}
        if previous.get('status') == 'finished' and not options.force and \
                all(previous.get(k) == v for k, v in settings.items()):
            return 'skipped', run_dir
        cfg.work_dir = str(run_dir)
        # mmengine names its logger and visualizer instances by experiment and second: two
        # evals of one table in one process and second would otherwise share them.
        cfg.experiment_name = key.name.replace('/', '-')
        # an interrupted eval continues its tracker runs; a new evaluation opens new ones
        unfinished = previous.get('status') != 'finished' and previous.get('tracker_runs')
        tracker_runs = open_tracker_runs(key, options.trackers, run_dir,
                                         options.work_dir, unfinished or None, None, None)
        add_trackers(cfg, run_dir, key, tracker_runs)
        config_path = run_dir / 'config.py'
        dump_config(cfg, config_path)
        write_record(run_dir, kind='eval', status='running', table=table.name, row=row,
                     table_file=table_file_record(table),
                     task=task, profile=options.profile, checkpoint=str(checkpoint),
                     checkpoint_sha256=sha256, converted_from=weights.converted_from,
                     weights_key=weights.weights_key, **settings, config=str(config_path),
                     launcher=options.launcher, gpus=options.gpus, host=socket.gethostname(),
                     pid=os.getpid(), commit=git_commit(), started=now(), ended=None,
                     returncode=None, error=None, metrics=None, test_json=None,
                     trackers=list(tracker_runs), tracker_runs=tracker_runs)
        try:
            if options.launcher == 'none':
                run_test(cfg, weights.state_dict, options.fuse_bn)
            else:
                weights_path = run_dir / 'weights.pth'
                torch.save(dict(state_dict=weights.state_dict,
                                meta=dict(checkpoint=str(checkpoint), sha256=sha256)),
                           weights_path)
                command = launch_command(
                    [str(config_path), '--work-dir', str(run_dir), '--weights',
                     str(weights_path)] + (['--fuse-bn'] if options.fuse_bn else []),
                    process_layout(options.gpus, options.launcher,
                                   'gpu' if options.launcher == 'slurm' or visible_gpus()
                                   else 'cpu'),
                    options.partition, f'eval-{table.name}-{row}', str(run_dir))
                print('$ ' + shlex.join(command), flush=True)
                subprocess.run(command, cwd=REPO, env=python_env(), check=True)
        except KeyboardInterrupt:
            write_record(run_dir, status='interrupted', ended=now())
            raise
        except Exception as err:  # noqa: BLE001  (recorded; the next (row, task) goes on)
            write_record(run_dir, status='failed', returncode=1, ended=now(),
                         error=f'{type(err).__name__}: {err}'.splitlines()[0])
            print(f'  FAILED: {type(err).__name__}: {err}', flush=True)
            return 'failed', run_dir
        log = test_json(run_dir)
        metrics = read_metrics(log) if log else {}
        write_record(run_dir, status='finished', returncode=0, ended=now(), metrics=metrics,
                     test_json=str(log) if log else None)
        return 'finished', run_dir


def published_line(table: AblationTable, row: str, task: str, metrics: dict) -> str:
    """'top1 80.12 (published 82.3)' for each of the table's metrics of this task."""
    parts = []
    for name in table.metrics_of(task):
        metric = METRICS[name]
        value = metrics.get(metric.log_key)
        shown = f'{value * metric.scale:.2f}' if isinstance(value, (int, float)) else 'n/a'
        published = table.row(row).published.get(name)
        parts.append(f'{name} {shown} (published {published if published is not None else "n/p"})')
    return ', '.join(parts)


def run(options: EvalOptions) -> int:
    table = get_table(options.table)
    rows = [table.row(r).slug for r in options.rows]
    if not rows:
        raise EvalError(f'--rows is empty; valid rows: {", ".join(r.slug for r in table.rows)}')
    tasks = list(options.tasks)
    if len(tasks) > 1 or (tasks and tasks[0] not in table.tasks):
        raise EvalError(f'--tasks {",".join(options.tasks)!r}: give one of {table.name}\'s '
                        f'tasks: '
                        f'{", ".join(table.tasks)}')
    if options.fuse_bn and table.model != 'mobilemamba':
        raise EvalError(f'--fuse-bn folds MobileMamba\'s BatchNorms; {table.name} evaluates '
                        f'{FAMILY_NAMES[table.model]} models')
    if options.profile == 'full' and not options.data_root:
        raise EvalError('the full profile needs --data-root DIR (imagenet/, coco/, ade/ under '
                        'it); see README.md')
    checkpoint = Path(options.checkpoint).expanduser().resolve()
    weights = read_weights(checkpoint, table.model, ema=not options.no_ema)
    task = tasks[0] if tasks else weights.task
    if task is None:
        raise EvalError(f'{checkpoint.name} holds a bare backbone (no classifier, detector or '
                        f'segmentor heads): nothing to evaluate')
    if task not in table.tasks:
        raise EvalError(f'{checkpoint.name} is a {task} checkpoint; {table.name}\'s tasks: '
                        f'{", ".join(table.tasks)}')
    if weights.task is not None and weights.task != task:
        raise EvalError(f'{checkpoint.name} is a {weights.task} checkpoint (its heads: '
                        f'{", ".join(TASK_KEYS[weights.task])}), not {task}')
    check_accounts(options.trackers)
    ensure_installed(options.trackers)
    data_root = Path(options.data_root or DEFAULT_SMOKE_DATA).expanduser().resolve()
    if options.profile == 'smoke' and not options.data_root:
        make_tiny_datasets(data_root)
    sha256 = sha256_of(checkpoint)
    print(f'{checkpoint.name} (sha256 {sha256[:12]}): {FAMILY_NAMES[weights.family]} '
          f'{task} weights from "{weights.weights_key or "the file itself"}"'
          f'{" (EMA)" if weights.ema else ""}, {weights.converted_from}', flush=True)
    status = 0
    for row in rows:
        outcome, run_dir = evaluate(table, row, task, checkpoint, weights, sha256, options,
                                    data_root)
        record = read_record(run_dir) or {}
        line = published_line(table, row, task, record.get('metrics') or {})
        print(f'{table.name}/{options.profile}/{row}/{task}: {outcome}'
              + (f': {line}' if outcome in ('finished', 'skipped') else '')
              + f' ({run_dir})', flush=True)
        if outcome in ('failed', 'locked'):
            status = 1
    return status
