"""The official runs beside ours: extracting their logs (``tools/extract_reference_runs.py``) and
comparing a run of ours with its reference at matched points (``status``, the report).

The catalog (which log backs which config or row) and the committed extractions are data in
``ablations/reference_catalog.py``; the log parsing is :mod:`runs.logs.log_formats`.

Matched points. The lr is a function of the optimizer step, so lr curves are matched at equal
optimizer steps (our iteration / gradient accumulation). Evaluations are matched at equal
``step``: the epoch for epoch-based recipes, the optimizer step for iteration-based ones.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ablations import METRICS
from ablations.reference_catalog import (
    SCHEMA,
    SOURCES,
    ReferenceRun,
    ReferenceSource,
    reference_path,
)

from .log_formats import RunLog, agrees_to_print, parse_text

LEGEND = {
    'source': 'the original log: GitHub repository, path, commit of the fetched snapshot, git '
              'blob id, sha256 and size of its bytes',
    'meta.gpus': 'GPUs of the official run (gpus_source says how the log tells)',
    'meta.per_gpu_batch': 'training images per GPU per iteration (the config dump, or the '
                          'trainer\'s config table)',
    'meta.global_batch': 'images per optimizer step: gpus x per_gpu_batch',
    'meta.iters_per_epoch': 'iterations per epoch (epoch-based recipes)',
    'meta.max_iters': 'the schedule\'s iterations (optimizer steps)',
    'meta.s_per_iter': 'median of the logged seconds per iteration (mmengine: "time", a window '
                       'mean; MobileMamba trainer: batch_t\'s average), validation excluded',
    'meta.memory_mb': 'median of mmengine\'s logged "memory" (MB, max allocated on rank 0 '
                      'since the previous line); memory_peak_mb: its maximum',
    'meta.wall_seconds': 'first to last line of each session of the log, summed (gaps between '
                         'sessions left out); total_time_printed_seconds: the trainer\'s own '
                         '"Total time" where it prints one',
    'meta.lr_format': 'how the log prints the lr (".4e": mmengine, ".6f": MobileMamba): its '
                      'precision',
    'train.iter': 'iterations done at each logged line (a resumed session replaces the lines it '
                  'repeats)',
    'train.lr': 'the lr of that iteration as printed (the lr after iter - 1 scheduler steps)',
    'train.loss': 'the logged total loss (mmengine: window mean of "loss"; MobileMamba: the CE '
                  'term\'s average since the last reset, the value in parentheses)',
    'evaluations': 'step: the epoch (unit "epoch") or iteration (unit "iter") it followed, null '
                   'for a test run; iter: iterations done at the last training line before it; '
                   'metrics: as logged (mmengine keys and units; in the MobileMamba trainer\'s '
                   'logs accuracy/top1 is the EMA model\'s, net/accuracy/top1 the raw model\'s)',
}
_LOSS_DIGITS = 4


# --- extraction -----------------------------------------------------------------------------------
def extract(source: ReferenceSource, data: bytes, commit: str, blob: Optional[str] = None
            ) -> dict:
    """The compact extraction of one official log's bytes (a JSON-ready dict)."""
    log = parse_text(data.decode('utf-8', errors='replace'), source.path)
    meta = {k: v for k, v in log.meta.items() if v is not None}
    return dict(
        schema=SCHEMA, id=source.id, task=source.task, kind=source.kind, what=source.what,
        source=dict(repository=source.repository, path=source.path, commit=commit, blob=blob,
                    sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                    url=f'https://github.com/{source.repository}/blob/{commit}/{source.path}'),
        format=log.format,
        meta=meta,
        train=dict(iter=[p.iter for p in log.train],
                   lr=[p.lr for p in log.train],
                   loss=[None if p.loss is None else round(p.loss, _LOSS_DIGITS)
                         for p in log.train]),
        evaluations=[dict(step=e.step, unit=e.unit, iter=e.iter, metrics=e.metrics)
                     for e in log.evaluations],
        legend=LEGEND,
        extracted=dict(by='tools/extract_reference_runs.py',
                       parser=f'runs/logs/log_formats.py ({log.format})'),
    )


def write_extraction(record: dict, data_dir: Optional[Path] = None) -> Path:
    """Write one extraction as gzip'd JSON, byte-stable (no timestamp in the gzip header)."""
    path = reference_path(record['id'], data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, sort_keys=True, separators=(',', ':')).encode('utf-8')
    with open(path, 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb', mtime=0,
                                                filename='') as f:
        f.write(text)
    return path


class SourceError(RuntimeError):
    """A repository or a file in it that cannot be read."""


def git_read(repo: Path, path: str) -> tuple[bytes, str, str]:
    """(bytes, commit, blob id) of ``path`` at HEAD of a git repository (see :func:`git_dir`)."""
    def git(*args: str) -> bytes:
        done = subprocess.run(['git', *repo_args(repo), *args], capture_output=True)
        if done.returncode:
            raise SourceError(f'{repo}: git {" ".join(args)}: '
                              + ' '.join(done.stderr.decode(errors='replace').split()))
        return done.stdout
    commit = git('rev-parse', 'HEAD').decode().strip()
    blob = git('rev-parse', f'HEAD:{path}').decode().strip()
    return git('cat-file', 'blob', blob), commit, blob


def repo_args(repo: Path) -> list[str]:
    """git's options to read ``repo``: a checkout (``-C``) or a bare snapshot (``--git-dir``)."""
    return ['-C', str(repo)] if (repo / '.git').exists() else [f'--git-dir={repo}']


def git_dir(path: Path) -> Path:
    """``path`` if it is a git checkout (its ``.git`` a folder or a worktree's file) or a bare
    snapshot (``fetch``'s ``.../repo``); SourceError otherwise."""
    path = Path(path)
    if (path / '.git').exists() or ((path / 'HEAD').is_file() and (path / 'objects').is_dir()):
        return path
    raise SourceError(f'{path} is not a git repository (a checkout or a bare snapshot)')


def extract_all(repos: dict[str, Path], ids: Optional[Sequence[str]] = None,
                data_dir: Optional[Path] = None) -> list[tuple[str, Optional[Path], str]]:
    """Extract every catalogued log whose repository is given: (id, file or None, note)."""
    done = []
    for ref_id in ids or list(SOURCES):
        source = SOURCES[ref_id]
        if source.repository not in repos:
            done.append((ref_id, None, f'skipped: no checkout of {source.repository} given'))
            continue
        data, commit, blob = git_read(git_dir(repos[source.repository]), source.path)
        record = extract(source, data, commit, blob)
        path = write_extraction(record, data_dir)
        done.append((ref_id, path, f'{len(record["train"]["iter"])} training lines, '
                                   f'{len(record["evaluations"])} evaluation(s), '
                                   f'{path.stat().st_size:,} bytes'))
    return done


# --- comparison -----------------------------------------------------------------------------------
def ref_unit(ref: ReferenceRun) -> str:
    """'epoch' or 'iter': how the reference's evaluations are counted."""
    units = {e['unit'] for e in ref.evaluations}
    return 'epoch' if 'epoch' in units else 'iter'


def unit_word(unit: str) -> str:
    return 'epoch' if unit == 'epoch' else 'iteration'


def our_steps(log: RunLog, accumulation: int = 1) -> dict[int, dict[str, float]]:
    """Our evaluations by step, in the reference's counting: epochs stay epochs; iterations
    become optimizer steps (iterations / gradient accumulation)."""
    found = {}
    for e in log.evaluations:
        if e.step is None:
            continue
        step = e.step if e.unit == 'epoch' else e.step // max(1, accumulation)
        found[step] = e.metrics
    return found


def our_lr_points(log: RunLog, accumulation: int = 1) -> list[tuple[float, float]]:
    """(optimizer step, lr) of our logged training lines."""
    return [(p.iter / max(1, accumulation), p.lr) for p in log.train if p.lr is not None]


def our_x(log: RunLog, unit: str, accumulation: int = 1) -> list[float]:
    """Each logged training line's position in the reference's unit (epochs or optimizer
    steps)."""
    if unit == 'epoch':
        return [p.epoch if p.epoch is not None else math.nan for p in log.train]
    return [p.iter / max(1, accumulation) for p in log.train]


def ref_x(ref: ReferenceRun) -> list[float]:
    """The reference's logged training lines in its own unit (epochs or iterations)."""
    per_epoch = ref.meta.get('iters_per_epoch')
    if ref_unit(ref) == 'epoch' and per_epoch:
        return [i / per_epoch for i in ref.train['iter']]
    return [float(i) for i in ref.train['iter']]


@dataclass
class LrCheck:
    """How our logged lr matches the reference's at equal optimizer steps."""
    matched: int
    differing: int
    worst: Optional[tuple[float, float, float]]  # (step, ours, official) of the largest gap
    accumulation: int = 1

    def text(self) -> str:
        if not self.matched:
            return 'lr: no logged step in common with the official run'
        if not self.differing:
            return (f'lr: equals the official at all {self.matched} common logged steps (to the '
                    'official log\'s printed precision)')
        step, ours, official = self.worst
        text = (f'lr: differs from the official at {self.differing} of {self.matched} common '
                f'logged steps (largest at step {step:,.0f}: ours {ours:.4e}, official '
                f'{official:.4e})')
        if self.accumulation > 1:
            text += (f'; with gradient accumulation x{self.accumulation} our schedulers step '
                     'every iteration over a stretched schedule, so gaps of under one step\'s '
                     'lr change are expected')
        return text


def lr_check(log: RunLog, ref: ReferenceRun, accumulation: int = 1) -> LrCheck:
    """Compare our logged lr with the official at every optimizer step both logged."""
    official = dict(zip(ref.train['iter'], ref.train['lr']))
    spec = ref.meta.get('lr_format') or '.4e'
    matched = differing = 0
    worst, worst_gap = None, -1.0
    for step, lr in our_lr_points(log, accumulation):
        if not float(step).is_integer() or int(step) not in official:
            continue
        theirs = official[int(step)]
        if theirs is None:
            continue
        matched += 1
        if not agrees_to_print(lr, theirs, spec):
            differing += 1
            gap = abs(lr - theirs) / max(abs(theirs), 1e-30)
            if gap > worst_gap:
                worst, worst_gap = (step, lr, theirs), gap
    return LrCheck(matched, differing, worst, max(1, accumulation))


@dataclass
class Gap:
    """Ours (over seeds) against the official at one evaluation step."""
    step: int
    unit: str
    values: list[float]      # ours, one per seed that evaluated at this step
    official: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> Optional[float]:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def text(self, label: str) -> str:
        ours = f'{self.mean:.1f}' + (f' ± {self.sd:.1f}' if self.sd is not None else '')
        return (f'{label} at {unit_word(self.unit)} {self.step:,}: ours {ours} '
                f'(n={len(self.values)}), official {self.official:.1f} '
                f'({self.mean - self.official:+.1f})')


def metric_key(metric: str) -> str:
    return METRICS[metric].log_key


def gaps(logs: dict[int, RunLog], ref: ReferenceRun, metric: str,
         accumulation: dict[int, int] | int = 1) -> list[Gap]:
    """Ours against the official at every evaluation step the official run and at least one of
    our seeds share, in paper units."""
    key, scale = metric_key(metric), METRICS[metric].scale
    unit = ref_unit(ref)
    official = {e['step']: e['metrics'][key] * scale for e in ref.evaluations
                if e['step'] is not None and key in e['metrics']}
    per_step: dict[int, list[float]] = {}
    for seed, log in sorted(logs.items()):
        acc = accumulation.get(seed, 1) if isinstance(accumulation, dict) else accumulation
        for step, metrics in our_steps(log, acc).items():
            if step in official and key in metrics and math.isfinite(metrics[key]):
                per_step.setdefault(step, []).append(metrics[key] * scale)
    return [Gap(step, unit, values, official[step]) for step, values in sorted(per_step.items())]


def milestones(found: list[Gap], ref: ReferenceRun, count: int = 4) -> list[Gap]:
    """A few matched points to state: the last one and those nearest each quarter of the
    official schedule."""
    if not found:
        return []
    unit = ref_unit(ref)
    total = ref.meta.get('max_epochs') if unit == 'epoch' else ref.meta.get('max_iters')
    chosen = {found[-1].step}
    if total:
        for k in range(1, count):
            target = total * k / count
            near = min(found, key=lambda g: abs(g.step - target))
            if near.step <= target * 1.25:
                chosen.add(near.step)
    return [g for g in found if g.step in chosen]


def tracking_line(log: RunLog, ref: ReferenceRun, metric: str, accumulation: int = 1) -> str:
    """For ``status``: our last evaluation and our lr now, each against the official's."""
    key, scale, label = metric_key(metric), METRICS[metric].scale, METRICS[metric].label
    unit = ref_unit(ref)
    parts = [f'reference {ref.id}']
    ours = our_steps(log, accumulation)
    evaluated = [s for s, m in ours.items() if key in m]
    if evaluated:
        step = max(evaluated)
        value = ours[step][key] * scale
        official = [e for e in ref.evaluations if e['step'] is not None and e['step'] <= step
                    and key in e['metrics']]
        if official:
            theirs = official[-1]
            at = '' if theirs['step'] == step else f' (its {unit_word(unit)} {theirs["step"]:,})'
            off = theirs['metrics'][key] * scale
            parts.append(f'{short_label(label)} at {unit_word(unit)} {step:,}: ours {value:.1f}, '
                         f'official {off:.1f}{at} ({value - off:+.1f})')
        else:
            parts.append(f'{short_label(label)} at {unit_word(unit)} {step:,}: ours {value:.1f}, '
                         f'no official evaluation yet')
    else:
        parts.append('no evaluation yet')
    points = our_lr_points(log, accumulation)
    if points:
        step, lr = points[-1]
        theirs = ref.lr_at(round(step))
        if theirs is not None:
            spec = ref.meta.get('lr_format') or '.4e'
            exact = round(step) in set(ref.train['iter'])
            verdict = ('equal to the official\'s printed precision' if exact and
                       agrees_to_print(lr, theirs, spec) else
                       'differs' if exact else 'official at the nearest logged step')
            parts.append(f'lr at step {step:,.0f}: ours {lr:.4e}, official {theirs:.4e} '
                         f'({verdict})')
    return '; '.join(parts)


def short_label(label: str) -> str:
    """'ImageNet top-1 (%)' -> 'top-1'; 'ADE20K mIoU' -> 'mIoU'; 'COCO AP box' -> 'AP box'."""
    words = label.replace('(%)', '').split()
    return ' '.join(words[1:]) if len(words) > 1 else label


def hours_text(seconds: Optional[float]) -> str:
    if not seconds:
        return '-'
    return str(dt.timedelta(seconds=round(seconds)))


# --- the plan's anchor ----------------------------------------------------------------------------
def official_anchor(config: str) -> Optional[dict]:
    """What the official run of ``config``'s recipe measured (for ``plan``): its s/iter, GPUs,
    global batch, wall hours and GPU-hours; None when no official training log backs it."""
    from ablations.reference_catalog import config_reference
    ref = config_reference(config)
    if ref is None or ref.kind != 'train':
        return None
    meta = ref.meta
    hours = ref.hours
    first = ref.train['iter'][0] if ref.train['iter'] else None
    resumed = first is not None and meta.get('resumed_from_iters')
    return dict(id=ref.id, s_per_iter=meta.get('s_per_iter'), gpus=meta.get('gpus'),
                global_batch=meta.get('global_batch'), gpu_model=meta.get('gpu_model'),
                max_iters=meta.get('max_iters'), hours=hours,
                gpu_hours=hours * meta['gpus'] if hours and meta.get('gpus') else None,
                from_iter=meta['resumed_from_iters'][0] if resumed else None)


def anchor_text(anchor: Optional[dict]) -> str:
    """One cell: '0.170 s/iter, 16 GPUs, 8.0 h (mambavision-t-upernet-ade20k)'."""
    if not anchor:
        return '-'
    parts = [f'{anchor["s_per_iter"]:.3f} s/iter' if anchor.get('s_per_iter') else None,
             f'{anchor["gpus"]} GPUs' + (f' ({anchor["gpu_model"]})' if anchor.get('gpu_model')
                                          else '') if anchor.get('gpus') else None,
             f'{anchor["hours"]:.1f} h' + (f' from iteration {anchor["from_iter"]:,}'
                                            if anchor.get('from_iter') else '')
             if anchor.get('hours') else None]
    return ', '.join(p for p in parts if p) + f' ({anchor["id"]})'
