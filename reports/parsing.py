"""mmengine run folders -> one record per (row, task, seed, metric).

A record holds either a number read from one line of one log file (``status == 'ok'``, with that
file and line) or the reason there is none (``missing``, ``running``, ``interrupted``,
``failed``, ``corrupt``, ``partial``, ``nan``), never a guess.

Folder layout, record and run states: ``runs/`` (shared with the runner). Each training run
dir holds mmengine's ``<YYYYmmdd_HHMMSS>/`` folders, each with ``vis_data/scalars.json`` (train
and validation lines) and, for a test-mode run, ``<timestamp>.json`` (the test metrics). A folder
without a usable scalars.json is read from its text log ``<timestamp>.log`` (``runs.logs.log_formats``), the
same way an official run's mmengine log is read.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import pandas as pd

from ablations import METRICS, AblationTable
from runs import rundir
from runs.logs.log_formats import LogFormatError, parse_mmengine
from runs.rundir import TIMESTAMP

PICKS = ('paper', 'last', 'best')
# mmengine prefixes metric names with the mode when LogProcessor.log_with_hierarchy is on.
_MODE_PREFIXES = ('', 'val/', 'test/')
COLUMNS = ['row', 'task', 'metric', 'seed', 'value', 'status', 'detail', 'profile', 'log_path',
           'log_line', 'step', 'timestamp', 'pick', 'run_status', 'started', 'commit', 'data_root']


def show_path(path: Path | str) -> str:
    """A path as a reader types it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class Evaluation:
    """One evaluation: a validation line of scalars.json or a test-mode JSON file."""
    values: dict[str, float]  # log key -> logged value (raw units, NaN kept)
    file: Path
    line: int                 # 1-based line number in ``file``
    step: Optional[int]       # mmengine's "step": the epoch or iteration of the evaluation


@dataclass
class FolderLog:
    """What one mmengine timestamp folder holds for a task's metrics."""
    path: Path
    evaluations: list[Evaluation] = field(default_factory=list)
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # ('file:line', why)
    train_lines: int = 0
    scalars: Optional[Path] = None

    @property
    def kind(self) -> str:
        """'corrupt', 'complete' (an evaluation, nothing corrupt), 'partial' (lines, no
        evaluation) or 'empty' (no scalars file and no test JSON)."""
        if self.corrupt:
            return 'corrupt'
        if self.evaluations:
            return 'complete'
        return 'partial' if self.train_lines else 'empty'


def _metric_values(obj: dict, log_keys: tuple[str, ...]) -> tuple[dict[str, float], list[str]]:
    """The task's metrics in one JSON object, and the keys whose value is not a number."""
    values, bad = {}, []
    for key in log_keys:
        for prefix in _MODE_PREFIXES:
            if prefix + key in obj:
                value = obj[prefix + key]
                # bool is an int in Python; a metric logged as true/false is not a number.
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[key] = float(value)
                else:
                    bad.append(prefix + key)
                break
    return values, bad


def _read_scalars(path: Path, log_keys: tuple[str, ...], log: FolderLog) -> None:
    """Add the evaluation lines of a scalars.json to ``log``; flag lines that do not parse."""
    with open(path, encoding='utf-8', errors='replace') as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                # NaN/Infinity parse: mmengine writes them that way.
                obj = json.loads(text.rstrip('\r\n'))
            except json.JSONDecodeError as err:
                log.corrupt.append((f'{show_path(path)}:{number}', err.msg))
                continue
            if not isinstance(obj, dict):
                log.corrupt.append((f'{show_path(path)}:{number}', 'not a JSON object'))
                continue
            # Train lines always carry "iter" (LogProcessor.get_log_after_iter); validation
            # lines (LoggerHook.after_val_epoch) carry the metrics and "step" only.
            if 'iter' in obj:
                log.train_lines += 1
                continue
            values, bad = _metric_values(obj, log_keys)
            if bad:
                log.corrupt.append((f'{show_path(path)}:{number}',
                                    'not a number: ' + ', '.join(bad)))
            elif values:
                step = obj.get('step')
                log.evaluations.append(Evaluation(values, path, number,
                                                  step if isinstance(step, int) else None))


def _read_test_json(path: Path, log_keys: tuple[str, ...], log: FolderLog) -> None:
    """Add the one evaluation of a test-mode ``<timestamp>.json`` to ``log``."""
    try:
        obj = json.loads(path.read_text(encoding='utf-8', errors='replace'))
    except json.JSONDecodeError as err:
        log.corrupt.append((f'{show_path(path)}:{err.lineno}', err.msg))
        return
    if not isinstance(obj, dict):
        log.corrupt.append((f'{show_path(path)}:1', 'not a JSON object'))
        return
    values, bad = _metric_values(obj, log_keys)
    if bad:
        log.corrupt.append((f'{show_path(path)}:1', 'not a number: ' + ', '.join(bad)))
    elif values:
        log.evaluations.append(Evaluation(values, path, 1, None))


def read_text_log(path: Path, log_keys: tuple[str, ...], log: FolderLog) -> None:
    """Add the evaluations of an mmengine text log (``<timestamp>.log``, ours or an official
    run's) to ``log``; the parsing is ``runs.logs.log_formats`` (the same code ``status`` reads with)."""
    try:
        parsed = parse_mmengine(path.read_text(encoding='utf-8', errors='replace'), str(path))
    except LogFormatError:
        return  # nothing logged yet by mmengine (or not its log): no lines to count
    log.train_lines += len(parsed.train)
    for evaluation in parsed.evaluations:
        values = {key: evaluation.metrics[key] for key in log_keys if key in evaluation.metrics}
        if values:
            log.evaluations.append(Evaluation(values, path, evaluation.line, evaluation.step))


def read_folder(folder: Path, log_keys: tuple[str, ...]) -> FolderLog:
    """Read one mmengine timestamp folder for the given metric log keys: its
    ``vis_data/scalars.json``, else (no such file, or one with no line) its text log."""
    log = FolderLog(folder)
    scalars = folder / 'vis_data' / 'scalars.json'
    if scalars.is_file():
        log.scalars = scalars
        _read_scalars(scalars, log_keys, log)
    text_log = folder / f'{folder.name}.log'
    if not log.train_lines and not log.evaluations and not log.corrupt and text_log.is_file():
        read_text_log(text_log, log_keys, log)
        if log.train_lines or log.evaluations:
            log.scalars = text_log
    test_json = folder / f'{folder.name}.json'
    if test_json.is_file():
        # A test run writes no validation lines; its JSON is the run's last evaluation.
        _read_test_json(test_json, log_keys, log)
    return log


def _started(run: Optional[dict], folders: list[Path]) -> Optional[float]:
    """When the run started (POSIX seconds), from run.json or the newest timestamp folder."""
    if run and isinstance(run.get('started'), str):
        try:
            return datetime.fromisoformat(run['started']).timestamp()
        except ValueError:
            pass
    if folders:
        return datetime.strptime(folders[-1].name, '%Y%m%d_%H%M%S').timestamp()
    return None


def _text_log(run: Optional[dict], seed_dir: Path, folders: list[Path]) -> str:
    """The log a reader should open for a failed or unfinished run."""
    if run and run.get('console_log'):
        console = Path(run['console_log'])
        return show_path(console if console.is_absolute() or console.exists()
                         else seed_dir / console)
    for folder in reversed(folders):
        text = folder / f'{folder.name}.log'
        if text.is_file():
            return show_path(text)
    return show_path(seed_dir / 'run.json')


@dataclass
class SeedRun:
    """All we know about one (row, task, seed) folder."""
    records: list[dict]
    warnings: list[str]


UNHASHED = ('some finished runs have no config hash in their record (made before runs were '
            'hashed): whether they match today\'s configs is unknown')


def reported_pick(record: dict) -> str:
    """'best' or 'last': the evaluation the paper reports for this run's recipe
    (ablations/recipes.py), 'last' when the record names no recipe."""
    from ablations.recipes import RECIPES
    recipe = RECIPES.get(((record.get('fidelity') or {}).get('recipe')) or '')
    return recipe.reported if recipe else 'last'


def read_seed(seed_dir: Path, table: AblationTable, row: str, task: str, seed: int,
              pick: str = 'last', profile: str = 'unknown') -> SeedRun:
    """Records (one per metric of ``task``) for one seed folder."""
    metrics = table.metrics_of(task)
    warnings: list[str] = []
    base = dict(row=row, task=task, seed=seed, pick=pick, profile=profile, run_status=None,
                started=None, commit=None, data_root=None, value=math.nan, log_path=None,
                log_line=None, step=None, timestamp=None)
    folders = sorted(p for p in seed_dir.iterdir() if p.is_dir() and TIMESTAMP.fullmatch(p.name))
    where = show_path(seed_dir)

    def every_metric(status: str, detail: str) -> SeedRun:
        return SeedRun([dict(base, metric=m, status=status, detail=detail) for m in metrics],
                       warnings)

    try:
        run = rundir.read_record(seed_dir)
    except rundir.RecordError as err:
        warnings.append(f'{where}: run.json unreadable ({err})')
        return every_metric('corrupt', show_path(seed_dir / rundir.RECORD))
    if pick == 'paper':  # the recipe's choice; no record, no recipe: the final evaluation
        pick = base['pick'] = reported_pick(run) if run is not None else 'last'
    if run is None:
        warnings.append(f'{where}: no run.json; profile unknown, status read from the logs')
        state = 'finished'
    else:
        key = rundir.RunKey.train(table.name, profile, row, task, seed)
        state, stale = _recorded_state(run, seed_dir, key, where, warnings)
        base['run_status'] = state
        if stale:
            return every_metric('stale', stale)
        base.update(commit=run.get('commit'), data_root=run.get('data_root'))
        _warn_misfiled(run, dict(table=table.name, row=row, task=task, seed=seed,
                                 profile=profile), where, warnings)
    started = _started(run, folders)
    base['started'] = datetime.fromtimestamp(started).isoformat(timespec='seconds') \
        if started is not None else None
    if state != 'finished':
        detail = _unfinished_detail(state, run, seed_dir, folders)
        warnings.append(f'{where}: {state} ({detail})')
        return every_metric(state, detail if state == 'failed' else '')
    chosen, partial = _newest_log(folders, tuple(METRICS[m].log_key for m in metrics), warnings)
    unusable = _unusable_log(chosen, partial, where, warnings)
    if unusable:
        return every_metric(*unusable)
    base['timestamp'] = chosen.path.name
    return SeedRun([_metric_record(base, chosen, metric, pick, where, warnings)
                    for metric in metrics], warnings)


def _recorded_state(run: dict, seed_dir: Path, key: rundir.RunKey, where: str,
                    warnings: list[str]) -> tuple[str, Optional[str]]:
    """The run's state by its record, and the reason when it is stale: a finished run whose
    configs changed since is not today's result, so it must not be reported as current."""
    state = rundir.run_state(run, seed_dir)
    if state == 'finished' and run.get('config_hash'):
        from runs.rundir.identity import stale_reason
        stale = stale_reason(key, seed_dir, run)
        if stale:
            warnings.append(f'{where}: stale, {stale}; not reported as current (rerun it '
                            'with --rerun-stale)')
            return 'stale', stale
    elif state == 'finished':
        warnings.append(UNHASHED)
    return state, None


def _warn_misfiled(run: dict, expected: dict, where: str, warnings: list[str]) -> None:
    """Flag a record that disagrees with the folder it sits in: the folder is what the table
    reads, so a copied or moved record must not go unnoticed."""
    for key, value in expected.items():
        if key in run and run[key] != value:
            warnings.append(f'{where}: run.json says {key}={run[key]!r}, the folder says '
                            f'{value!r}; the folder is used')


def _unfinished_detail(state: str, run: Optional[dict], seed_dir: Path,
                       folders: list[Path]) -> str:
    """Where a reader finds out why there is no result yet: the log to open, led by the
    training's own reason when it failed with one."""
    detail = _text_log(run, seed_dir, folders)
    if state == 'failed' and run and run.get('failure'):
        detail = f'{run["failure"]}, see {detail}'
    return detail


def _newest_log(folders: list[Path], log_keys: tuple[str, ...], warnings: list[str]
                ) -> tuple[Optional[FolderLog], list[FolderLog]]:
    """The newest folder log with an evaluation or damage, and the newer partial ones passed
    over: a session cut short before evaluating leaves the older result standing."""
    chosen: Optional[FolderLog] = None
    skipped: list[FolderLog] = []
    for folder in reversed(folders):  # newest first
        log = read_folder(folder, log_keys)
        if log.kind in ('complete', 'corrupt'):
            chosen = log
            break
        skipped.append(log)
    partial = [log for log in skipped if log.kind == 'partial']
    if chosen is not None:
        for log in partial:
            warnings.append(f'{show_path(log.path)}: no evaluation (partial); an older folder '
                            f'{chosen.path.name} is used')
    return chosen, partial


def _unusable_log(chosen: Optional[FolderLog], partial: list[FolderLog], where: str,
                  warnings: list[str]) -> Optional[tuple[str, str]]:
    """(status, detail) for every metric when no value may be read from the logs; None when
    the chosen log can be read."""
    if chosen is None:
        if partial:
            detail = show_path(partial[0].scalars)
            warnings.append(f'{where}: partial, no evaluation in {detail}')
            return 'partial', detail
        warnings.append(f'{where}: missing, no mmengine log folder with a scalars.json or a '
                        'test JSON')
        return 'missing', ''
    if chosen.kind == 'corrupt':
        # The newest log with content is damaged: an older folder would be a different (earlier)
        # result, so nothing is reported rather than something silently stale.
        warnings.append(f'{where}: corrupt lines in the newest log: '
                        + '; '.join(f'{at} ({why})' for at, why in chosen.corrupt))
        return 'corrupt', chosen.corrupt[0][0]
    return None


def _metric_record(base: dict, log: FolderLog, metric: str, pick: str, where: str,
                   warnings: list[str]) -> dict:
    """One metric's record from the chosen log: the picked value with the line it comes from,
    or why there is none."""
    key = METRICS[metric].log_key
    record = dict(base, metric=metric, status='ok', detail='')
    found = [e for e in log.evaluations if key in e.values]
    if not found:
        where_log = show_path(log.evaluations[-1].file)
        warnings.append(f'{where}: no {key} in {where_log}')
        return dict(record, status='missing', detail=where_log)
    evaluation = _picked_evaluation(found, key, pick, where, warnings)
    raw = evaluation.values[key]
    record.update(log_path=show_path(evaluation.file), log_line=evaluation.line,
                  step=evaluation.step, value=raw * METRICS[metric].scale)
    if not math.isfinite(raw):
        record.update(status='nan', detail=f'{record["log_path"]}:{evaluation.line}',
                      value=math.nan)
        warnings.append(f'{where}: {key} is {raw} at {record["detail"]}')
    return record


def _picked_evaluation(found: list[Evaluation], key: str, pick: str, where: str,
                       warnings: list[str]) -> Evaluation:
    """The evaluation ``pick`` reports: a NaN is never the best, but it is the last when the
    run ended on one."""
    finite = [e for e in found if math.isfinite(e.values[key])]
    if pick == 'best' and finite:
        # All the paper's metrics are higher-is-better; ties go to the earliest evaluation.
        evaluation = max(finite, key=lambda e: e.values[key])
        if len(finite) < len(found):
            warnings.append(f'{where}: {key} was not finite in some evaluations; best of '
                            'the finite ones')
        return evaluation
    return found[-1]


def collect(work_dir: Path, table: AblationTable, pick: str = 'last'
            ) -> tuple[pd.DataFrame, list[str]]:
    """Every record under ``<work_dir>/<table>/`` (or ``work_dir`` itself if it is that folder)
    as a DataFrame with :data:`COLUMNS`, and the warnings met on the way."""
    if pick not in PICKS:
        raise ValueError(f'pick must be one of {PICKS}, not {pick!r}')
    root = rundir.table_root(work_dir, table.name)
    warnings: list[str] = []
    records: list[dict] = []
    if not root.is_dir():
        return pd.DataFrame(columns=COLUMNS), [f'no run folder {show_path(root)}']
    for key, run_dir, why in rundir.iter_run_dirs(work_dir, table.name,
                                                  rows={r.slug for r in table.rows},
                                                  tasks=table.tasks):
        if key is None:
            warnings.append(f'{show_path(run_dir)}: {why}; ignored')
            continue
        if key.kind != 'train':
            continue  # evaluations of released weights are reported on their own
        run = read_seed(run_dir, table, key.row, key.task, key.seed, pick, key.profile)
        records.extend(run.records)
        warnings.extend(w for w in run.warnings if w not in warnings or w != UNHASHED)
    # Nullable integers: a line number must not print as 4.0 because another record has none.
    frame = pd.DataFrame(records, columns=COLUMNS).astype(
        {'seed': 'int64', 'log_line': 'Int64', 'step': 'Int64'})
    return frame, warnings
