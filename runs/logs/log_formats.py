"""Training logs as data: one parser for the text logs a run leaves, ours or an official one.

Three formats become one :class:`RunLog` (training points and evaluations):

- **mmengine text logs** (``<timestamp>/<timestamp>.log``, what every OpenMMLab runner prints,
  ours and the official downstream runs alike): ``Epoch(train) [e][i/N]`` / ``Iter(train)
  [i/N]`` lines with ``key: value`` scalars, ``Epoch(val)``, ``Iter(val)`` and ``Epoch(test)``
  lines whose final line of an evaluation carries the metrics, the environment header
  (``GPU number``) and the config dump (``train_dataloader``'s batch size).
- **mmengine's** ``vis_data/scalars.json`` (one JSON object a line; train lines carry ``iter``).
- **the official MobileMamba trainer's** ImageNet logs (``weights/MobileMamba_*/*.txt``:
  ``Train: p% [i/I] [e/E] ... [lr x] [CE v (avg)]``, ``net: top1 (top5)`` / ``net_E: ...``
  after each test, ``==> Total time: h:mm:ss``, the config table at the top).

Conventions, whatever the format:

- ``TrainPoint.iter`` is the number of iterations done when the line was written (mmengine's
  epoch-based ``[e][i/N]`` is ``(e-1) N + i``). Both runners log the lr the optimizer used in that
  iteration: the lr after ``iter - 1`` scheduler steps.
- ``Evaluation.step`` is the epoch (epoch-based training) or the iteration (iteration-based)
  after which it ran; ``None`` for a test-mode run.
- A log that holds several sessions (a run resumed after a crash or a requeue) keeps, for each
  iteration or evaluation logged twice, the newer session's line: the one the run went on from.
- Metric names are mmengine's (``accuracy/top1``, ``coco/bbox_mAP``, ``mIoU``). In the MobileMamba
  trainer's logs ``accuracy/top1`` is the EMA model's (``net_E``), as mmengine's EMAHook
  evaluates the EMA weights; the raw model's is ``net/accuracy/top1``.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

FORMATS = ('mmengine', 'scalars', 'mobilemamba')

# --- shared pieces --------------------------------------------------------------------------------
# mmengine: "2024/11/12 15:18:23 - mmengine - INFO - ..."; MobileMamba: "2024-09-30 18:41:52,705 - "
_MM_STAMP = re.compile(r'^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) - mmengine - (\w+) - ?(.*)$')
_MOBILE_STAMP = re.compile(r'^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),\d+ - (.*)$')
# "key: value" with a numeric value; "eta: 1 day, 2:03:04" and "eta: 2:03:04" are left out.
_SCALAR = re.compile(r'(?:^|\s)([A-Za-z_][\w./-]*):\s+(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?'
                     r'|nan|-?inf)(?=\s|$)')
_NOT_METRICS = frozenset(('eta', 'time', 'data_time', 'memory'))


@dataclass
class TrainPoint:
    """One logged training line."""
    iter: int                       # iterations done
    epoch: Optional[float]          # epochs done (fraction), where the log tells
    lr: Optional[float]
    loss: Optional[float]
    time: Optional[float] = None    # s/iter as logged (mmengine: window mean; MobileMamba: avg)
    memory: Optional[float] = None  # MB, mmengine's max allocated on rank 0
    line: int = 0                   # 1-based line in the file
    lr_text: Optional[str] = None   # the lr as printed (its precision is the log's)


@dataclass
class Evaluation:
    """One evaluation's metrics (the log's keys and units)."""
    step: Optional[int]             # epoch or iteration it followed; None for a test run
    unit: str                       # 'epoch', 'iter' or 'test'
    metrics: dict[str, float]
    iter: Optional[int] = None      # iterations done when it ran (where the log tells)
    line: int = 0


@dataclass
class RunLog:
    """What one log file says about its run."""
    path: str
    format: str
    train: list[TrainPoint] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def last_evaluation(self, key: str) -> Optional[Evaluation]:
        found = [e for e in self.evaluations if key in e.metrics]
        return found[-1] if found else None

    def best_evaluation(self, key: str) -> Optional[Evaluation]:
        """The highest finite value of ``key``; ties go to the earliest evaluation."""
        found = [e for e in self.evaluations if math.isfinite(e.metrics.get(key, math.nan))]
        return max(found, key=lambda e: e.metrics[key]) if found else None


class LogFormatError(ValueError):
    """A file in none of the formats, or one whose lines contradict each other."""


def _number(text: str) -> float:
    return float(text)


def _scalars(text: str) -> dict[str, str]:
    """The ``key: value`` numeric pairs of one line, as printed."""
    return {m.group(1): m.group(2) for m in _SCALAR.finditer(text)}


def _keep_newest(points: list, key) -> list:
    """One entry per key, the last one logged (a resumed session overrides the older), in order
    of the key."""
    newest = {}
    for point in points:
        newest[key(point)] = point
    return [newest[k] for k in sorted(newest, key=lambda k: (k is None, k if k is not None else 0))]


def _session_seconds(stamps: list[list[dt.datetime]]) -> float:
    """Sum over sessions of last minus first timestamp (the gaps between sessions left out)."""
    return sum((s[-1] - s[0]).total_seconds() for s in stamps if len(s) > 1)


def _median(values: Iterable[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


# --- mmengine text logs ---------------------------------------------------------------------------
_EPOCH_TRAIN = re.compile(r'^Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]\s+(.*)$')
_ITER_TRAIN = re.compile(r'^Iter\(train\)\s*\[\s*(\d+)/(\d+)\]\s+(.*)$')
_EVAL = re.compile(r'^(Epoch|Iter)\((val|test)\)\s*(?:\[(\d+)\])?\s*\[\s*(\d+)/(\d+)\]\s+(.*)$')
_GPU_NUMBER = re.compile(r'^\s*GPU number:\s*(\d+)\s*$')
_GPU_MODEL = re.compile(r'^\s*GPU [\d,]+:\s*(.+?)\s*$')
_RESUMED = re.compile(r'resumed epoch: (\d+), iter: (\d+)')


def _config_block(lines: list[str], name: str) -> list[str]:
    """The lines of a top-level ``name = dict(...)`` in mmengine's config dump (the first)."""
    for i, text in enumerate(lines):
        if text.startswith(f'{name} = '):
            block = [text]
            for more in lines[i + 1:]:
                if more and not more[0].isspace() and not more.startswith(')'):
                    break
                block.append(more)
                if more.startswith(')'):
                    break
            return block
    return []


def _config_int(block: list[str], key: str) -> Optional[int]:
    """``key=<int>`` as a direct child of a config dict (4-space indent, or inline at the top)."""
    pattern = re.compile(rf'^(?:\w+ = dict\(|    ){key}=(\d+)\b')
    for text in block:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


@dataclass
class _MmengineScan:
    """What the lines of an mmengine text log have told so far: one pass reads every kind of
    line, and the run's metadata is worked out from it once the pass is over."""
    meta: dict
    train: list[TrainPoint] = field(default_factory=list)
    evals: list[Evaluation] = field(default_factory=list)
    sessions: list[list[dt.datetime]] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    gpu_model: Optional[str] = None
    last_iter: Optional[int] = None
    worked: bool = False  # the current session has logged training or evaluation

    def header_line(self, raw: str) -> None:
        """An unstamped line: only the environment header's GPU lines matter."""
        match = _GPU_NUMBER.match(raw)
        if match:
            self.gpus.append(int(match.group(1)))
        match = _GPU_MODEL.match(raw)
        if match and self.gpu_model is None:
            self.gpu_model = match.group(1)

    def stamped_line(self, when: dt.datetime, body: str, number: int) -> None:
        """A stamped line: it times its session, and may be a resume, a training or an
        evaluation line."""
        # Every session (a start or a resume) dumps its config once, after its environment
        # header: a new "Config:" after training or evaluation lines opens the next session.
        if not self.sessions or body.startswith('Config:') and self.worked:
            self.sessions.append([])
            self.worked = False
        self.sessions[-1].append(when)
        match = _RESUMED.search(body)
        if match:
            self.resumed.append(int(match.group(2)))
        elif not self._train_line(body, number):
            self._eval_line(body, number)

    def _train_line(self, body: str, number: int) -> bool:
        """Keep a training line's point; False when ``body`` is none. An epoch-based line's
        ``[e][i/N]`` becomes iterations done, the count both kinds of loop share."""
        match = _EPOCH_TRAIN.match(body)
        if match:
            epoch, i, per_epoch = (int(x) for x in match.group(1, 2, 3))
            point = _train_point((epoch - 1) * per_epoch + i, match.group(4), number)
            point.epoch = epoch - 1 + i / per_epoch
            self.meta['iters_per_epoch'] = per_epoch
        else:
            match = _ITER_TRAIN.match(body)
            if match is None:
                return False
            point = _train_point(int(match.group(1)), match.group(3), number)
            self.meta['max_iters'] = int(match.group(2))
        self.train.append(point)
        self.last_iter = point.iter
        self.worked = True
        return True

    def _eval_line(self, body: str, number: int) -> None:
        """Keep an evaluation from its final line, the one with the metrics (the lines before
        it only show progress)."""
        match = _EVAL.match(body)
        if match is None:
            return
        loop, mode, epoch, done, total, rest = match.groups()
        metrics = {k: _number(v) for k, v in _scalars(rest).items() if k not in _NOT_METRICS}
        if not metrics:
            return  # a progress line of the evaluation
        if mode == 'test':
            self.evals.append(Evaluation(None, 'test', metrics, None, number))
            self.meta['eval_iters'] = int(total)
        elif loop == 'Epoch':
            self.evals.append(Evaluation(int(epoch), 'epoch', metrics, self.last_iter, number))
        else:
            self.evals.append(Evaluation(self.last_iter, 'iter', metrics, self.last_iter, number))
        if mode == 'val':
            self.meta['val_iters'] = int(total)
        self.worked = True


def parse_mmengine(text: str, path: str = '') -> RunLog:
    """An mmengine text log (one or more sessions) as a :class:`RunLog`."""
    log = RunLog(path, 'mmengine')
    lines = text.splitlines()
    scan = _MmengineScan(log.meta)
    for number, raw in enumerate(lines, start=1):
        stamped = _MM_STAMP.match(raw)
        if stamped is None:
            scan.header_line(raw)
            continue
        when = dt.datetime.strptime(stamped.group(1), '%Y/%m/%d %H:%M:%S')
        scan.stamped_line(when, stamped.group(3), number)
    if not scan.train and not scan.evals:
        raise LogFormatError(f'{path or "text"}: no mmengine training or evaluation line')
    log.train = _keep_newest(scan.train, lambda p: p.iter)
    log.evaluations = _keep_newest(scan.evals, lambda e: e.step) if scan.evals else []
    _mmengine_setup(log.meta, lines, scan)
    _summarize_train(log)
    return log


def _mmengine_setup(meta: dict, lines: list[str], scan: _MmengineScan) -> None:
    """The run's setup in ``meta``: batch and schedule from the config dump, the GPUs from the
    environment header (or, where it names none, from the validation's length), the sessions'
    wall time. Each comes from where the log states it, so the report can say where."""
    per_gpu = _config_int(_config_block(lines, 'train_dataloader'), 'batch_size')
    loop = _config_block(lines, 'train_cfg')
    gpus = scan.gpus
    meta.update(per_gpu_batch=per_gpu, gpus=gpus[-1] if gpus else None,
                gpus_source='the log\'s environment header ("GPU number")' if gpus else None,
                gpu_model=scan.gpu_model, sessions=len(scan.sessions),
                resumed_from_iters=scan.resumed or None,
                wall_seconds=_session_seconds(scan.sessions) if scan.sessions else None)
    if not meta['gpus'] and meta.get('val_iters'):
        meta.update(_gpus_from_validation(lines, meta['val_iters']))
    if meta.get('gpus') and per_gpu:
        meta['global_batch'] = meta['gpus'] * per_gpu
    max_epochs = _config_int(loop, 'max_epochs')
    if max_epochs:
        meta['max_epochs'] = max_epochs
        if meta.get('iters_per_epoch'):
            meta['max_iters'] = max_epochs * meta['iters_per_epoch']
    elif _config_int(loop, 'max_iters'):
        meta['max_iters'] = _config_int(loop, 'max_iters')


# Validation set sizes, to tell the GPU count of a log whose header does not (the MambaVision
# ADE20K logs): the validation runs ceil(ceil(N / GPUs) / batch) iterations on each GPU.
EVAL_SET_SIZES = dict(
    ADE20KDataset=(2000, 'ADE20K validation: 2,000 images'),
    CocoDataset=(5000, 'COCO val2017: 5,000 images'),
)


def _gpus_from_validation(lines: list[str], val_iters: int) -> dict:
    """The one GPU count that gives the logged number of validation iterations, if one does."""
    kind = next((m.group(1) for m in (re.match(r"^dataset_type = '(\w+)'", t) for t in lines)
                 if m), None)
    batch = _config_int(_config_block(lines, 'val_dataloader'), 'batch_size')
    if kind not in EVAL_SET_SIZES or not batch:
        return {}
    size, what = EVAL_SET_SIZES[kind]
    fits = [g for g in range(1, 1025) if math.ceil(math.ceil(size / g) / batch) == val_iters]
    if len(fits) != 1:
        return {}
    return dict(gpus=fits[0], gpus_source=f'derived: {val_iters} validation iterations of '
                                          f'{batch} image(s) per GPU over {what}')


def _train_point(iteration: int, rest: str, line: int) -> TrainPoint:
    values = _scalars(rest)
    lr = values.get('lr')
    get = (lambda k: _number(values[k]) if k in values else None)
    return TrainPoint(iteration, None, _number(lr) if lr else None, get('loss'), get('time'),
                      get('memory'), line, lr)


def _summarize_train(log: RunLog) -> None:
    """s/iter (median of the logged times), peak memory and the lr's printed format."""
    log.meta['s_per_iter'] = _median(p.time for p in log.train)
    memory = [p.memory for p in log.train if p.memory is not None]
    # The median is the run's working peak; the first line often holds a start-up spike.
    log.meta['memory_mb'] = _median(memory)
    log.meta['memory_peak_mb'] = max(memory) if memory else None
    log.meta['lr_format'] = lr_format([p.lr_text for p in log.train if p.lr_text])
    if log.train:
        log.meta['last_iter'] = log.train[-1].iter


def lr_format(texts: list[str]) -> Optional[str]:
    """The format spec every printed lr shares: '.4e' (mmengine) or '.6f' (MobileMamba)."""
    specs = set()
    for text in texts:
        match = re.fullmatch(r'-?\d\.(\d+)e[-+]\d+', text)
        if match:
            specs.add(f'.{len(match.group(1))}e')
            continue
        match = re.fullmatch(r'-?\d+\.(\d+)', text)
        specs.add(f'.{len(match.group(1))}f' if match else '?')
    if len(specs) > 1:
        raise LogFormatError(f'the lr is printed in several formats: {sorted(specs)}')
    return specs.pop() if specs else None


def printed_unit(value: float, spec: str) -> float:
    """The unit of the last printed digit of ``value`` printed with ``spec`` ('.4e', '.6f')."""
    digits = int(spec[1:-1])
    if spec.endswith('f'):
        return 10.0 ** -digits
    exponent = int(format(value, spec).split('e')[1])
    return 10.0 ** (exponent - digits)


def agrees_to_print(ours: float, logged: float, spec: str) -> bool:
    """Whether ``ours`` prints as ``logged`` did: within half a unit of its last printed digit
    (a relative 1e-9 of slack for the float round trip)."""
    return abs(ours - logged) <= 0.5 * printed_unit(logged, spec) * (1 + 1e-9) + 1e-12 * abs(logged)


# --- mmengine's scalars.json ----------------------------------------------------------------------
def parse_scalars(text: str, path: str = '') -> RunLog:
    """mmengine's ``vis_data/scalars.json`` as a :class:`RunLog` (lines that do not parse are
    skipped here; ``reports.parsing`` flags them)."""
    log = RunLog(path, 'scalars')
    train, evals = [], []
    last_iter = None
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        if 'iter' in obj:
            num = lambda k: float(obj[k]) if isinstance(obj.get(k), (int, float)) \
                and not isinstance(obj.get(k), bool) else None  # noqa: E731
            point = TrainPoint(int(obj['iter']), None, num('lr'), num('loss'), num('time'),
                               num('memory'), number)
            if isinstance(obj.get('epoch'), int):
                point.epoch = float(obj['epoch'])  # the epoch in progress (1-based)
            train.append(point)
            last_iter = point.iter
            continue
        metrics = {k: float(v) for k, v in obj.items()
                   if k not in _NOT_METRICS and k != 'step' and isinstance(v, (int, float))
                   and not isinstance(v, bool)}
        if metrics:
            step = obj.get('step') if isinstance(obj.get('step'), int) else None
            by_epoch = step is not None and last_iter is not None and step < last_iter
            evals.append(Evaluation(step, 'epoch' if by_epoch else 'iter', metrics, last_iter,
                                    number))
    log.train = _keep_newest(train, lambda p: p.iter)
    log.evaluations = _keep_newest(evals, lambda e: e.step) if evals else []
    _summarize_train(log)
    return log


# --- the official MobileMamba trainer -------------------------------------------------------------
_MOBILE_TRAIN = re.compile(r'^Train: [\d.]+% \[(\d+)/(\d+)\]\s+\[([\d.]+)/([\d.]+)\]\s+(.*)$')
_BRACKET = re.compile(r'\[(\w+) (-?[\d.]+)(?: \((-?[\d.]+)\))?\]')
_MOBILE_TEST = re.compile(r'^(net|net_E): (-?[\d.]+) \((-?[\d.]+)\)$')
# str(datetime.timedelta): 'h:mm:ss', or 'N day(s), h:mm:ss' past 24 hours.
_MOBILE_TOTAL = re.compile(r'^==> Total time: (?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})')
_MOBILE_CFG = re.compile(r'^(\S+)\s+: (.*?)\s*$')
_MOBILE_GPUS = re.compile(r'^==> Starting training with (\d+) nodes x (\d+) GPUs')


def parse_mobilemamba(text: str, path: str = '') -> RunLog:
    """The official MobileMamba trainer's text log as a :class:`RunLog`.

    ``loss`` is the ``CE`` term's average over the logging window (the value in parentheses; the
    trainer resets it every ``train_reset_log_per`` iterations); ``time`` is ``batch_t``'s average.
    """
    log = RunLog(path, 'mobilemamba')
    cfg: dict[str, str] = {}
    train: list[TrainPoint] = []
    evals: list[Evaluation] = []
    stamps: list[dt.datetime] = []
    pending: dict[str, float] = {}
    total_printed = None
    nodes_gpus = None
    last_iter = 0
    has_ema = '- net_E: ' in text
    for number, raw in enumerate(text.splitlines(), start=1):
        stamped = _MOBILE_STAMP.match(raw)
        if stamped is None:
            match = _MOBILE_CFG.match(raw)
            if match and stamps:
                cfg.setdefault(match.group(1), match.group(2))
            continue
        stamps.append(dt.datetime.strptime(stamped.group(1), '%Y-%m-%d %H:%M:%S'))
        body = stamped.group(2)
        match = _MOBILE_TRAIN.match(body)
        if match:
            it, full = int(match.group(1)), int(match.group(2))
            values = {m.group(1): m.groups()[1:] for m in _BRACKET.finditer(match.group(5))}
            lr = values.get('lr', (None, None))[0]
            ce = values.get('CE', (None, None))
            batch = values.get('batch_t', (None, None))
            point = TrainPoint(it, None, _number(lr) if lr else None,
                               _number(ce[1] or ce[0]) if ce[0] else None,
                               _number(batch[1] or batch[0]) if batch[0] else None, None,
                               number, lr)
            train.append(point)
            log.meta['max_iters'] = full
            last_iter = it
            continue
        match = _MOBILE_TEST.match(body)
        if match:
            prefix = 'net/' if match.group(1) == 'net' else ''
            pending[f'{prefix}accuracy/top1'] = _number(match.group(2))
            pending[f'{prefix}accuracy/top5'] = _number(match.group(3))
            if match.group(1) == 'net_E' or not has_ema:
                evals.append(Evaluation(None, 'epoch', dict(pending), last_iter, number))
                pending = {}
            continue
        match = _MOBILE_TOTAL.match(body)
        if match:
            d, h, m, s = (int(x or 0) for x in match.groups())
            total_printed = ((d * 24 + h) * 60 + m) * 60 + s
            continue
        match = _MOBILE_GPUS.match(body)
        if match:
            nodes_gpus = int(match.group(1)) * int(match.group(2))
    if not train:
        raise LogFormatError(f'{path or "text"}: no MobileMamba "Train:" line')
    per_epoch = int(cfg['data.train_size']) if cfg.get('data.train_size', '').isdigit() else None
    for point in train:
        point.epoch = point.iter / per_epoch if per_epoch else None
    for evaluation in evals:
        # A test follows the end of an epoch: the epochs done are the last logged iteration's,
        # rounded up (a test never precedes its epoch's last logged line).
        evaluation.step = math.ceil(evaluation.iter / per_epoch - 1e-9) if per_epoch else None
    log.train = _keep_newest(train, lambda p: p.iter)
    log.evaluations = _keep_newest(evals, lambda e: e.step)
    meta = log.meta
    world = int(cfg['world_size']) if cfg.get('world_size', '').isdigit() else None
    meta.update(
        gpus=world or nodes_gpus,
        gpus_source='the trainer\'s config table ("world_size")' if world else
        ('"Starting training with N nodes x G GPUs"' if nodes_gpus else None),
        per_gpu_batch=_cfg_int(cfg, 'trainer.data.batch_size_per_gpu'),
        global_batch=_cfg_int(cfg, 'trainer.data.batch_size'),
        iters_per_epoch=per_epoch, max_epochs=_cfg_int(cfg, 'epoch_full'),
        sessions=1, wall_seconds=(stamps[-1] - stamps[0]).total_seconds() if stamps else None,
        total_time_printed_seconds=total_printed)
    _summarize_train(log)
    return log


def _cfg_int(cfg: dict, key: str) -> Optional[int]:
    value = cfg.get(key, '')
    return int(value) if value.isdigit() else None


# --- any file -------------------------------------------------------------------------------------
def detect_format(text: str) -> str:
    """'mmengine', 'scalars' or 'mobilemamba'; LogFormatError for anything else."""
    head = text[:200_000]
    if ' - mmengine - ' in head:
        return 'mmengine'
    if re.search(r'^\d{4}-\d{2}-\d{2} [\d:,]+ - (Train: |==> )', head, re.M):
        return 'mobilemamba'
    first = head.lstrip().split('\n', 1)[0]
    if first.startswith('{'):
        return 'scalars'
    raise LogFormatError('not an mmengine text log, an mmengine scalars.json or a MobileMamba '
                         'trainer log')


PARSERS = dict(mmengine=parse_mmengine, scalars=parse_scalars, mobilemamba=parse_mobilemamba)


def parse_text(text: str, path: str = '') -> RunLog:
    """Parse a log's text in whichever of the :data:`FORMATS` it is."""
    return PARSERS[detect_format(text)](text, path)


def read_log(path: Union[str, Path]) -> RunLog:
    """Parse a log file in whichever of the :data:`FORMATS` it is."""
    path = Path(path)
    try:
        return parse_text(path.read_text(encoding='utf-8', errors='replace'), str(path))
    except LogFormatError as err:
        raise LogFormatError(f'{path}: {err}') from None


def run_log(run_dir: Union[str, Path]) -> Optional[RunLog]:
    """The newest mmengine log of a run dir that holds a line: its text log (whose
    ``[e][i/N]`` tells the epoch fraction of each line), else its ``vis_data/scalars.json``;
    None when the run has logged nothing yet."""
    run_dir = Path(run_dir)
    folders = sorted(p for p in run_dir.iterdir()
                     if p.is_dir() and re.fullmatch(r'\d{8}_\d{6}', p.name)) \
        if run_dir.is_dir() else []
    for folder in reversed(folders):
        for candidate in (folder / f'{folder.name}.log', folder / 'vis_data' / 'scalars.json'):
            if candidate.is_file() and candidate.stat().st_size:
                try:
                    log = read_log(candidate)
                except LogFormatError:
                    continue
                if log.train or log.evaluations:
                    return log
    return None
