"""Pilot every full-profile run of a table at its real size on this machine's device, and
estimate what the table costs before a cluster is booked.

The engine of ``./run_all.sh plan`` (command line: ``tools/plan.py``).

For each (row, task) of the table:

1. build the run's full config (``ablations.compose``, profile 'full'), pointed at generated data
   of the real image sizes in the real formats (``runs.datasets.pilot_datasets``), so the whole
   training pipeline runs as on the real data;
2. train it with the real mmengine Runner for ``--iters`` iterations, in a process of its own
   (peak memory is per process): no validation, no checkpoints; loop, batch, pipeline, model,
   optimizer, AMP and hooks as the full config has them (on CPU, float32: mmengine's
   AmpOptimWrapper needs an accelerator);
3. measure the time per iteration and the data time (mmengine's IterTimerHook, first iteration
   excluded) and the peak memory (GPU: torch.cuda.max_memory_allocated; CPU: the process's peak
   RSS, data loading in-process);
4. estimate: on a GPU, the run's iterations from its schedule (epochs x iterations per epoch
   over the real training set, or max_iters) x the measured seconds per iteration. On a CPU,
   whose s/iter says nothing about a GPU's, the pilot still checks the pipeline and measures
   memory, and the estimate is anchored on the official runs' measured throughput
   (:func:`choose_anchor`, :func:`anchored_estimate`): images per GPU-second of the official run
   of the same recipe, or of the same task nearest in FLOPs, scaled by the FLOPs ratio.

Assumptions, also written into plan.json and plan.md:

- The recipe keeps its global batch at any G (``ablations.compose``): per-GPU batch x G x
  gradient accumulation. The pilot measures one device at the per-GPU batch of the config built
  for the GPU count it is given; each of the G processes iterates on that batch, so an
  iteration of the G-GPU run costs about one device's iteration (data-parallel efficiency 1:
  the all-reduce is not measured). A run's wall time is its iterations x s/iter; its GPU-hours
  are that x G.
- An epoch at G GPUs is ceil(N / (G x per-GPU batch)) iterations, as mmengine's DefaultSampler
  and a non-dropping DataLoader give (floor where the recipe drops the last batch); an
  iteration-based schedule is max_iters at G (more with gradient accumulation), taken from the
  config built for G.
- One seed per run; multiply by the seeds you train.

Reduced runs (``plan --schedule-scale 0.1 --subset in100``): the pilot still runs the full config
(its s/iter, memory and anchor rate are per iteration and per image); each reduction's estimate
takes the schedule of the reduced run's own config (:func:`reduced_entry`, built as the table
command builds it) and is kept in plan.json under ``profiles`` by its run profile name, which
:func:`load_plan` and the dry run read.

A run that fails in the pilot is reported with its error and its log, the others go on, and the
exit status is 1.

Use :func:`load_plan` to read a written plan, and :func:`estimate_at` for any GPU count.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from ablations import AblationTable
from ablations.compose import IMAGENET_CLASSES, build_row_config
from ablations.reduction import Reduction, run_profile
from ablations.table_files import table_reference
from runs.datasets.pilot_datasets import make_pilot_data
from runs.executors.launch import python_env
from runs.logs.official_runs import anchor_text, official_anchor
from runs.provenance import REPO, git_commit

DEFAULT_DATA_DIR = REPO / 'data' / 'pilot'
PILOT_WORK_DIR = REPO / 'work_dirs' / 'plan'
PLAN_JSON = 'plan.json'
PLAN_MD = 'plan.md'
DEFAULT_GPUS = (8, )
PLAN_PROFILE = 'full'   # what a plan estimates: the full-profile runs, never the smoke ones
DEFAULT_ITERS = dict(cuda=10, cpu=2)
CPU_GPU_MEM_GIB = 80.0   # the memory to check against when the pilot runs on CPU (an A100/H100)
GIB = 1024 ** 3

# The real training sets' sizes: the number of images an epoch of the full schedule goes over.
TRAIN_SET_SIZES = dict(
    # ImageNet-1k (ILSVRC 2012) train: 1,281,167 images (Russakovsky et al., IJCV 2015).
    cls=1_281_167,
    # COCO train2017 has 118,287 images; mmdet's filter_empty_gt drops those without
    # annotations, leaving 117,266 (mmdet's CocoDataset, filter_cfg of coco_instance.py).
    det=117_266,
    # ADE20K scene parsing (ADEChallengeData2016) images/training: 20,210 images.
    seg=20_210,
)
# A class subset of ImageNet (--subset in100) is taken to hold its share of the classes' images
# (classes / 1000 of ImageNet-1k's), as apply_reduction assumes for the EMA: the subset's list
# (ablations/subsets/SOURCE.md) does not publish its image count.

ASSUMPTIONS = (
    'The pilot measures one device at the config\'s per-GPU batch; at G GPUs each keeps that '
    'batch, so a step costs about one device\'s step (data-parallel efficiency 1, all-reduce not '
    'measured).',
    'Wall hours of a run = its iterations x s/iter; GPU-hours = wall hours x G.',
    'Iterations per epoch at G GPUs = ceil(N / (G x per-GPU batch)) over the real training set '
    '(ImageNet-1k 1,281,167; COCO train2017 with annotations 117,266; ADE20K 20,210); '
    'iteration-based schedules run max_iters whatever G.',
    'One seed per run. "In parallel": every run on its own G GPUs, det/seg after their row\'s cls '
    '(they start from its checkpoint).',
    'Without a GPU the pilot checks the pipeline and measures memory, and the hours are anchored '
    'on an official run, on its hardware: its images per GPU-second (per-GPU batch / the median '
    's/iter of its log) over the FLOPs ratio, the run\'s forward FLOPs per image over the '
    'official run\'s (backbones/model_complexity at each one\'s training input size), times '
    '1 + (MESA\'s share of the schedule) / 3 where MESA adds a forward of the EMA model to the '
    'forward and backward (about 3 forwards). GPU-hours = '
    'images trained (epochs x training set, or optimizer steps x global batch) / that rate.',
    'A reduced run (--schedule-scale, --subset: profiles such as full@0.1+in100) is estimated '
    'from the same pilot (s/iter and the anchor\'s rate are per iteration and per image) and the '
    'schedule of the reduced run\'s own config (ablations/compose.py apply_reduction): its '
    'epochs, iterations, each epoch\'s fraction (detection) and training set; ImageNet-100\'s '
    'training set is taken as 100/1000 of ImageNet-1k\'s 1,281,167 images (128,117; its image '
    'count is not published with the class list).',
)


# --- the arithmetic ------------------------------------------------------------------------------

def iters_per_epoch(dataset_size: int, batch_per_gpu: int, gpus: int,
                    drop_last: bool = False, fraction: float = 1.0) -> int:
    """Iterations of one epoch: DefaultSampler pads to a multiple of ``gpus`` and each rank's
    DataLoader yields ceil(per-rank samples / batch) batches, or floor with ``drop_last`` (the
    ImageNet recipes, as the official loaders). ``fraction``: EpochFractionSampler's, which
    keeps ceil(fraction x per-rank samples) of each rank's share (a reduced detection run)."""
    if min(dataset_size, batch_per_gpu, gpus) < 1:
        raise ValueError('dataset size, batch and GPUs must be positive')
    per_rank = math.ceil(dataset_size / gpus)
    if fraction != 1.0:
        per_rank = max(1, math.ceil(per_rank * fraction))
    return per_rank // batch_per_gpu if drop_last else math.ceil(per_rank / batch_per_gpu)


def total_iters(schedule: dict, gpus: int) -> int:
    """A run's training iterations at ``gpus`` GPUs from its schedule record (see schedule_of)."""
    if schedule['by_epoch']:
        return schedule['epochs'] * iters_per_epoch(schedule['train_set_size'],
                                                    schedule['batch_per_gpu'], gpus,
                                                    schedule.get('drop_last', False),
                                                    schedule.get('epoch_fraction', 1.0))
    return schedule['max_iters']


def on_gpu(entry: dict) -> bool:
    """Whether a pilot ran on a GPU (plans written before the ``cuda`` key: by its device)."""
    return entry.get('cuda', not str(entry.get('device', '')).startswith('CPU'))


def estimate_at(entry: dict, gpus: int) -> Optional[dict]:
    """Total iterations, wall hours and GPU-hours of a piloted run at ``gpus`` GPUs (None when the
    pilot did not measure it). ``basis``: 'pilot' (the GPU pilot's s/iter x iterations),
    'anchor' (a CPU pilot: the official run's throughput, see anchored_estimate) or 'cpu'
    (a CPU pilot without an anchor: this CPU's s/iter, an upper bound at best)."""
    # The schedule at that GPU count (an iteration-based one grows with gradient accumulation).
    schedule = (entry.get('schedules') or {}).get(str(gpus)) or entry.get('schedule')
    if entry.get('s_per_iter') is None or schedule is None:
        return None
    iters = total_iters(schedule, gpus)
    if not on_gpu(entry) and entry.get('anchor'):
        est = anchored_estimate(entry['anchor'], gpus, images=images_of(schedule, gpus))
        return dict(est, total_iters=iters)
    wall = iters * entry['s_per_iter'] / 3600
    return dict(gpus=gpus, total_iters=iters, wall_hours=wall, gpu_hours=wall * gpus,
                basis='pilot' if on_gpu(entry) else 'cpu')


def table_totals(entries: dict[str, dict], gpus: int) -> dict:
    """The table's GPU-hours and wall hours at ``gpus`` GPUs per run, in sequence (one run at a
    time on G GPUs) and in parallel (every run on its own G GPUs, det/seg after their row's cls).
    Entries are keyed '<row>/<task>'; unmeasured runs are left out and counted."""
    gpu_hours = sequence = 0.0
    rows: dict[str, dict[str, float]] = {}
    missing = 0
    for name, entry in entries.items():
        est = estimate_at(entry, gpus)
        if est is None:
            missing += 1
            continue
        gpu_hours += est['gpu_hours']
        sequence += est['wall_hours']
        row, task = name.rsplit('/', 1)
        rows.setdefault(row, {})[task] = est['wall_hours']
    parallel = max((walls.get('cls', 0.0) + max([h for t, h in walls.items() if t != 'cls'],
                                                default=0.0)
                    for walls in rows.values()), default=0.0)
    return dict(gpus=gpus, gpu_hours=gpu_hours, wall_hours_sequence=sequence,
                wall_hours_parallel=parallel, gpus_in_parallel=gpus * (len(entries) - missing),
                runs_not_estimated=missing)


# --- the anchor: the official runs' measured throughput ------------------------------------------
# Without a GPU the pilot's s/iter says nothing about a GPU's. The estimate is then anchored on an
# official run's images per GPU-second, scaled by training FLOPs per image.

ANCHOR_FLOPS_CACHE = 'anchor_flops.json'
# Training compute of one image: forward plus backward, the backward about twice the forward.
FORWARDS_PER_STEP = 3.0


def train_input_shape(cfg) -> tuple[int, int]:
    """(H, W) of a training image as the pipeline makes it: the crop of a segmentation
    pipeline, the crop of a classification one, the largest resize of a detection one (mmdet's
    scale is (long, short) = (W, H))."""
    dataset = cfg.train_dataloader.dataset
    pipeline = dataset.get('pipeline') or (dataset.get('dataset') or {}).get('pipeline') or []
    for step in reversed(pipeline):
        if step.get('crop_size'):
            h, w = step['crop_size'][:2]
            return int(h), int(w)
        scale = step.get('scale')
        if isinstance(scale, int):
            return scale, scale
        if 'ResizedCrop' in step['type'] and scale:
            return int(scale[0]), int(scale[-1])
    for step in reversed(pipeline):
        scale = step.get('scale')
        if scale and step['type'] in ('Resize', 'RandomResize', 'RandomChoiceResize'):
            w, h = (scale[0], scale[1]) if isinstance(scale[0], int) else scale[0]
            return int(h), int(w)
    raise ValueError(f'no training image size found in the pipeline of {cfg.filename}')


def model_kind(cfg, task: str) -> str:
    """What a throughput anchor must share with the run: the classifier for ImageNet, the
    detector for COCO, the decode head for ADE20K."""
    if task == 'cls':
        return 'classifier'
    if task == 'seg':
        return cfg.model.decode_head.type
    return cfg.model.type


def training_multiplier(cfg) -> float:
    """Training FLOPs per image over FORWARDS_PER_STEP forwards: MESA adds the EMA model's
    forward once it starts (after ``start_ratio`` of the schedule)."""
    mesa = cfg.model.get('mesa') or {}
    if mesa.get('weight', 0) > 0:
        return 1 + (1 - mesa.get('start_ratio', 0.0)) / FORWARDS_PER_STEP
    return 1.0


def count_flops(model, shape: Sequence[int]) -> int:
    """Forward MACs of one image (the papers' "FLOPs"; backbones.model_complexity's count)."""
    from backbones.model_complexity import measure_complexity
    model = getattr(model, 'module', model)
    return int(measure_complexity(model, tuple(shape))['flops'])


def official_throughput(ref_id: str) -> Optional[dict]:
    """An official training run's images per GPU-second (per-GPU batch / median s/iter, its
    validation excluded) and the hardware its log names; None without both numbers."""
    from ablations.reference_catalog import load_reference
    meta = load_reference(ref_id).meta
    if not meta.get('s_per_iter') or not meta.get('per_gpu_batch'):
        return None
    return dict(id=ref_id, img_per_gpu_s=meta['per_gpu_batch'] / meta['s_per_iter'],
                s_per_iter=meta['s_per_iter'], per_gpu_batch=meta['per_gpu_batch'],
                gpus=meta.get('gpus'), gpu_model=meta.get('gpu_model'))


def anchor_candidates(base_config: str, task: str) -> list[tuple[str, str]]:
    """(reference id, its config) the run may be anchored on: the official run of its own recipe
    where one is published, else every official training run of the task."""
    from ablations.reference_catalog import CONFIG_REFERENCES, SOURCES
    own = CONFIG_REFERENCES.get(base_config)
    if own and SOURCES[own].kind == 'train':
        return [(own, base_config)]
    return [(ref_id, config) for config, ref_id in CONFIG_REFERENCES.items()
            if SOURCES[ref_id].task == task and SOURCES[ref_id].kind == 'train']


def _config_flops(config: str, task: str, cache_path: Optional[Path]) -> dict:
    """FLOPs per image, shape, kind and training multiplier of an official config's model,
    cached by the config file's content (building and counting a detector takes a minute)."""
    import hashlib

    from mmengine.config import Config

    from backbones.build import build_model_from_config
    path = REPO / config
    key = f'{config}:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}'
    cache = {}
    if cache_path is not None and cache_path.exists():
        cache = json.loads(cache_path.read_text())
    if key not in cache:
        cfg = Config.fromfile(str(path))
        shape = train_input_shape(cfg)
        cache[key] = dict(flops=count_flops(build_model_from_config(cfg), shape),
                          shape=list(shape), kind=model_kind(cfg, task),
                          multiplier=training_multiplier(cfg))
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1) + '\n')
    return cache[key]


def choose_anchor(base_config: str, task: str, flops: int, kind: str, multiplier: float = 1.0,
                  cache_path: Optional[Path] = None) -> Optional[dict]:
    """The official run a run's GPU time is anchored on, and its throughput scaled to the run.

    The run's own recipe's official run where there is one; else, among the task's official
    training runs of the same kind (classifier, detector, decode head; any kind if none),
    the one nearest in FLOPs per image, so the scaling is the smallest. ``flops``: the run's
    forward FLOPs per image; ``multiplier``: its training_multiplier."""
    found = []
    for ref_id, config in anchor_candidates(base_config, task):
        throughput = official_throughput(ref_id)
        if throughput is not None:
            found.append(dict(throughput, config=config,
                              **_config_flops(config, task, cache_path)))
    if not found:
        return None
    own = len(found) == 1 and found[0]['config'] == base_config
    alike = [a for a in found if a['kind'] == kind]
    same_kind = bool(alike)
    alike = alike or found
    best = min(alike, key=lambda a: abs(math.log(flops * multiplier
                                                 / (a['flops'] * a['multiplier']))))
    ratio = flops * multiplier / (best['flops'] * best['multiplier'])
    return dict(best, ours_flops=flops, ours_multiplier=multiplier, ratio=ratio,
                rate=best['img_per_gpu_s'] / ratio,
                chosen_by='the official run of its own recipe' if own else
                f'the nearest in FLOPs of {len(alike)} official {task} runs'
                + (f' with a {kind}' if same_kind and task != 'cls' else ''))


def anchored_estimate(anchor: dict, gpus: int, images: Optional[int] = None,
                      iterations: Optional[int] = None,
                      global_batch: Optional[int] = None) -> dict:
    """GPU-hours and wall hours at ``gpus`` GPUs of a run training ``images`` images (or
    ``iterations`` optimizer steps of ``global_batch`` images) at the anchor's scaled rate,
    the run's images per GPU-second. A shorter schedule or a subset passes fewer images."""
    if images is None:
        if iterations is None or global_batch is None:
            raise ValueError('give images, or iterations and global_batch')
        images = iterations * global_batch
    if images < 1 or gpus < 1:
        raise ValueError(f'images ({images}) and gpus ({gpus}) must be positive')
    gpu_hours = images / anchor['rate'] / 3600
    return dict(gpus=gpus, images=images, gpu_hours=gpu_hours, wall_hours=gpu_hours / gpus,
                basis='anchor')


def anchor_line(anchor: dict) -> str:
    """'estimate: anchored on <official run> at N img/GPU-s on <hw>, scaled by FLOPs ratio x'."""
    hardware = (f'{anchor["gpus"]} x {anchor["gpu_model"]}' if anchor.get('gpu_model') else
                f'{anchor["gpus"]} GPUs (model not named in its log)')
    mesa = (f', x{anchor["ours_multiplier"]:.2f} for MESA\'s extra forward'
            if anchor['ours_multiplier'] != 1 else '')
    ours = anchor.get('ours_shape')
    return (f'estimate: anchored on {anchor["id"]} at {anchor["img_per_gpu_s"]:,.1f} img/GPU-s '
            f'on {hardware}, scaled by FLOPs ratio {anchor["ratio"]:.2f} (ours '
            f'{anchor["ours_flops"] / 1e9:.2f} GFLOPs/image'
            + (f' at {ours[0]}x{ours[1]}' if ours else '') + f'{mesa}; its '
            f'{anchor["flops"] / 1e9:.2f} at {anchor["shape"][0]}x{anchor["shape"][1]}): '
            f'{anchor["rate"]:,.1f} img/GPU-s; {anchor["chosen_by"]}')


# --- the config and its schedule -----------------------------------------------------------------

def full_config(table: str, row: str, task: str, data_root: Path, work_dir: Path, gpus: int,
                cfg_options: Optional[dict] = None, profile: str = PLAN_PROFILE):
    """The run's full-profile config, the one place this module builds it, plus ``cfg_options``
    (key=value overrides, as tools/train.py's ``--cfg-options``). ``gpus``: the GPU count the
    estimate is for (the recipe keeps its global batch there: per-GPU batch x gpus x
    accumulation). ``profile``: a reduced full profile (``full@0.1+in100``) builds that run's
    config, as the table command does (``ablations.compose.build_row_config``)."""
    cfg = build_row_config(table, row, task, profile=profile, data_root=data_root,
                           work_dir=work_dir, gpus=gpus)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def training_set_images(cfg, task: str) -> int:
    """The images of the real training set the config trains on: the task's, or a class
    subset's share of ImageNet-1k's (ImageNetSubset: its classes / 1000, see TRAIN_SET_SIZES)."""
    if task == 'cls' and cfg.train_dataloader.dataset.get('type') == 'ImageNetSubset':
        return round(TRAIN_SET_SIZES[task] * cfg.model.head.num_classes / IMAGENET_CLASSES)
    return TRAIN_SET_SIZES[task]


def schedule_of(cfg, task: str, train_set_size: Optional[int] = None) -> dict:
    """The schedule record total_iters() reads: epochs over the real training set (or
    ``train_set_size`` images) and, where EpochFractionSampler trains a fraction of each epoch,
    that fraction (``epoch_fraction``); or max_iters with the global batch of an optimizer
    step."""
    train_cfg = cfg.train_cfg
    loop = train_cfg.get('type', '')
    by_epoch = train_cfg.get('by_epoch', 'EpochBased' in loop)
    batch = cfg.train_dataloader.batch_size
    if by_epoch:
        record = dict(by_epoch=True, epochs=int(train_cfg.max_epochs), batch_per_gpu=batch,
                      train_set_size=train_set_size or training_set_images(cfg, task),
                      drop_last=bool(cfg.train_dataloader.get('drop_last', False)))
        sampler = cfg.train_dataloader.get('sampler') or {}
        if sampler.get('type') == 'EpochFractionSampler':
            record['epoch_fraction'] = float(sampler.get('fraction', 1.0))
        return record
    accumulation = int(cfg.optim_wrapper.get('accumulative_counts', 1))
    fidelity = cfg.get('fidelity') or {}
    return dict(by_epoch=False, max_iters=int(train_cfg.max_iters), batch_per_gpu=batch,
                accumulation=accumulation, global_batch=fidelity.get('effective_batch'))


def images_of(schedule: dict, gpus: int) -> int:
    """The images a run trains on: epochs x training set (x the fraction of each epoch it
    trains), or optimizer steps x global batch (``gpus`` is only needed by a record without its
    global batch)."""
    if schedule['by_epoch']:
        return schedule['epochs'] * math.ceil(schedule['train_set_size']
                                              * schedule.get('epoch_fraction', 1.0))
    steps = schedule['max_iters'] // schedule.get('accumulation', 1)
    return steps * (schedule.get('global_batch') or schedule['batch_per_gpu'] * gpus
                    * schedule.get('accumulation', 1))


def pilot_config(cfg, iters: int, num_workers: int, cuda: bool = True):
    """The full config, trained as is but without validation, checkpoints or test; on CPU in
    float32 where the config asks for AMP (mmengine's AmpOptimWrapper refuses the CPU)."""
    wrapper = cfg.optim_wrapper
    if not cuda and wrapper.get('type') == 'AmpOptimWrapper':
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)
    for split in ('val', 'test'):
        cfg[f'{split}_dataloader'] = None
        cfg[f'{split}_cfg'] = None
        cfg[f'{split}_evaluator'] = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.train_dataloader.num_workers = num_workers
    cfg.train_dataloader.persistent_workers = num_workers > 0
    cfg.resume = False
    cfg.load_from = None
    return cfg


def pilot_train_images(cfg, iters: int) -> int:
    """Enough training images that the pilot's iterations fit in one pass of the sampler."""
    return cfg.train_dataloader.batch_size * iters


# --- one pilot, in its own process ---------------------------------------------------------------

class PilotDone(Exception):
    """Raised after the last pilot iteration: leaves the train loop at once, whatever its kind."""


def _pilot(table: str, row: str, task: str, data_root: Path, work_dir: Path, iters: int,
           gpus: int, result_path: Path, cfg_options: Optional[dict] = None) -> int:
    """Train one run for ``iters`` iterations and write its measurements to ``result_path``."""
    import resource

    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from backbones.ops.mamba_shim import has_cuda_kernels

    cuda = torch.cuda.is_available()
    result: dict[str, Any] = dict(status='failed', device=_device_name(), cuda=cuda)
    if not cuda:
        result['cpu_mem_cap_gib'] = _cap_cpu_memory()
    try:
        cfg = full_config(table, row, task, data_root, work_dir, gpus, cfg_options)
        result['fidelity'] = _plain(cfg.get('fidelity'))
        result['schedule'] = schedule_of(cfg, task)
        workers = min(cfg.train_dataloader.get('num_workers', 0), os.cpu_count() or 1) \
            if cuda else 0   # CPU: the pipeline runs in-process, in data_time and peak RSS
        result['num_workers'] = workers
        result['amp_in_config'] = cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'
        cfg = pilot_config(cfg, iters, workers, cuda)

        times: list[float] = []
        data_times: list[float] = []

        class PilotHook(Hook):
            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                hub = runner.message_hub
                times.append(float(hub.get_scalar('train/time').current()))
                data_times.append(float(hub.get_scalar('train/data_time').current()))
                if len(times) >= iters:
                    raise PilotDone

        runner = Runner.from_cfg(cfg)
        runner.register_hook(PilotHook(), priority='LOWEST')  # after the IterTimerHook
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            runner.train()
        except PilotDone:
            pass
        else:
            raise RuntimeError(f'training ended after {len(times)} of {iters} iterations')
        measured = times[1:] or times   # the first iteration (warm-up, allocation) excluded
        result.update(
            status='ok', iters=len(times), iter_times=times, data_times=data_times,
            s_per_iter=sum(measured) / len(measured),
            data_s_per_iter=sum(data_times[1:] or data_times) / len(measured),
            amp=type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper',
            scan_backend='cuda (mamba-ssm kernel)' if cuda and has_cuda_kernels()
            else 'torch (ours)')
        if cuda:
            result.update(peak_mem_gib=torch.cuda.max_memory_allocated() / GIB,
                          peak_reserved_gib=torch.cuda.max_memory_reserved() / GIB,
                          mem_kind='max_memory_allocated')
        else:
            result.update(peak_mem_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          * 1024 / GIB, mem_kind='peak RSS')
        return_code = 0
        # After the memory was read: counting FLOPs runs forwards of its own.
        result.update(_anchor_of(cfg, runner.model, table, task, work_dir))
    except Exception as exc:  # reported with the run; the plan goes on with the others
        traceback.print_exc()
        result['error'] = _one_line(exc)
        return_code = 1
    result_path.write_text(json.dumps(result, indent=2) + '\n')
    return return_code


def _anchor_of(cfg, model, table: str, task: str, work_dir: Path) -> dict:
    """The run's FLOPs per image and its throughput anchor (``anchor``), or why there is none
    (``anchor_error``); the official configs' counts are cached beside the pilots (work_dir is
    <work root>/<table>/<row>/<task>)."""
    from ablations import get_table
    try:
        shape = train_input_shape(cfg)
        flops = count_flops(model, shape)
        anchor = choose_anchor(get_table(table).base_configs[task], task, flops,
                               model_kind(cfg, task), training_multiplier(cfg),
                               work_dir.parents[2] / ANCHOR_FLOPS_CACHE)
    except Exception as exc:  # the pilot's measurements stand; the estimate falls back
        traceback.print_exc()
        return dict(anchor=None, anchor_error=_one_line(exc))
    if anchor is None:
        return dict(anchor=None, flops=flops, anchor_error=f'no official {task} training run '
                    'with a measured s/iter')
    return dict(anchor=dict(anchor, ours_shape=list(shape)), flops=flops)


def _meminfo_kib(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1])
    raise KeyError(f'{key} not in {path}')


def _cap_cpu_memory(share: float = 0.8) -> float:
    """CPU pilots: cap this process's address space at what it maps now plus ``share`` of the
    memory available now, so a run too big for this machine fails here with an out-of-memory
    error instead of the kernel's OOM killer taking some other process. The cap in GiB."""
    import resource
    limit = (_meminfo_kib('/proc/self/status', 'VmSize')
             + share * _meminfo_kib('/proc/meminfo', 'MemAvailable')) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    return limit / GIB


def _device_name() -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f'CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)'


def _device_memory_gib() -> Optional[float]:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / GIB
    return None


def _one_line(exc: BaseException) -> str:
    text = f'{type(exc).__name__}: {exc}'.strip().splitlines()
    return text[0] if len(text) == 1 else f'{text[0]} ...'


def _plain(value):
    """A config value as plain JSON (ConfigDict -> dict)."""
    return json.loads(json.dumps(value, default=lambda v: v.to_dict() if hasattr(v, 'to_dict')
                                 else str(v))) if value is not None else None


def run_pilot(table: str, row: str, task: str, data_root: Path, iters: int, gpus: int,
              cfg_options: Optional[dict] = None, work_root: Path = PILOT_WORK_DIR) -> dict:
    """Pilot one run in a child process; its entry for the plan (measurements or the error)."""
    work_dir = work_root / table / row / task
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    log, result_path = work_dir / 'pilot.log', work_dir / 'pilot.json'
    # (a table of your own is found again by its file's path in the child)
    command = [sys.executable, '-m', 'runs.commands.planner', table_reference(table), row, task,
               str(data_root), str(work_dir), str(iters), str(gpus), str(result_path),
               json.dumps(cfg_options or {})]
    start = time.monotonic()
    with open(log, 'w') as out:
        returncode = subprocess.run(command, cwd=REPO, env=python_env(), stdout=out,
                                    stderr=subprocess.STDOUT).returncode
    entry: dict[str, Any] = dict(status='failed')
    if result_path.exists():
        entry = json.loads(result_path.read_text())
    if entry.get('status') != 'ok' and 'error' not in entry:
        entry['error'] = f'pilot exited with code {returncode}: {_last_line(log)}'
    entry.update(log=str(log), pilot_seconds=round(time.monotonic() - start, 1))
    return entry


def _last_line(path: Path) -> str:
    lines = [l for l in path.read_text(errors='replace').splitlines() if l.strip()]
    return lines[-1].strip() if lines else '(empty log)'


# --- the table -----------------------------------------------------------------------------------

def plan_table(table: AblationTable, rows: Sequence[str], tasks: Sequence[str], gpus: Sequence[int],
               iters: int, gpu_mem: Optional[float], out: Path, data_dir: Path,
               cfg_options: Optional[dict] = None, work_root: Path = PILOT_WORK_DIR,
               reductions: Sequence[Reduction] = (Reduction(), ),
               learn: Optional[Callable[[dict], dict]] = None) -> int:
    """Pilot the runs, write plan.json and plan.md under ``out``; 1 if a pilot failed.

    ``reductions``: the (schedule scale, subset) combinations to estimate; the reduced ones are
    estimated from the same pilots (:func:`reduced_entry`) and kept under ``profiles`` by run
    profile name. ``learn``: what a higher layer adds (``tools/plan.py``: the section "What you
    learn for what it costs", ``reports.plan_learn``), given the plan; a dict with its
    ``markdown``, kept in plan.json as ``learn`` and appended to plan.md."""
    device, device_mem = _device_name(), _device_memory_gib()
    gpu_mem = gpu_mem or device_mem or CPU_GPU_MEM_GIB
    runs = [(row, task) for row in rows for task in tasks]
    entries: dict[str, dict] = {}
    start = time.monotonic()
    for i, (row, task) in enumerate(runs, 1):
        name = f'{row}/{task}'
        print(f'[{i}/{len(runs)}] {table.name}/{name}: pilot of {iters} iterations on {device}',
              flush=True)
        try:  # the data the pilot needs: its batch x iterations images, made once
            cfg = full_config(table.name, row, task, data_dir, work_root, gpus[0], cfg_options)
            make_pilot_data(data_dir, [task], pilot_train_images(cfg, iters))
        except Exception as exc:
            entries[name] = dict(status='failed', error=f'config: {_one_line(exc)}', log=None)
        else:
            entries[name] = run_pilot(table.name, row, task, data_dir, iters, gpus[0],
                                      cfg_options, work_root)
        entry = entries[name]
        if entry['status'] == 'ok':
            entry['schedules'] = {str(g): schedule_of(full_config(
                table.name, row, task, data_dir, work_root, g, cfg_options), task) for g in gpus}
        entry['flags'] = _flags(entry, gpu_mem)
        # What the official run of this recipe measured, beside our estimate.
        entry['official'] = official_anchor(table.base_configs[task])
        if entry['status'] == 'ok':
            print(f'  {entry["s_per_iter"]:.3f} s/iter (data {entry["data_s_per_iter"]:.3f}), '
                  f'peak {entry["peak_mem_gib"]:.2f} GiB', flush=True)
            print(f'  {basis_text(entry)}', flush=True)
        else:
            print(f'  FAILED: {entry["error"]} (log: {entry["log"]})', flush=True)
    plan = dict(
        table=table.name, profile=PLAN_PROFILE,
        created=dt.datetime.now().isoformat(timespec='seconds'),
        host=socket.gethostname(), commit=git_commit(), device=device,
        device_mem_gib=device_mem, gpu_mem_gib=gpu_mem, iters=iters, gpus=list(gpus),
        data_dir=str(data_dir), cfg_options=cfg_options or {},
        wall_seconds=round(time.monotonic() - start, 1),
        train_set_sizes=TRAIN_SET_SIZES, assumptions=list(ASSUMPTIONS),
        **_estimated(entries, gpus))
    plan['reductions'] = [run_profile(PLAN_PROFILE, r) for r in reductions]
    plan['profiles'] = {}
    for reduction in reductions:
        if reduction.reduced:
            profile = run_profile(PLAN_PROFILE, reduction)
            reduced = {name: reduced_entry(entry, table.name, name, profile, gpus, data_dir,
                                           work_root, cfg_options)
                       for name, entry in entries.items()}
            plan['profiles'][profile] = dict(
                schedule_scale=reduction.schedule_scale, subset=reduction.subset,
                **_estimated(reduced, gpus))
    learn_error = None
    if learn is not None:
        try:  # the pilots' plan is written whatever happens here
            plan['learn'] = learn(plan)
        except Exception as exc:
            traceback.print_exc()
            learn_error = plan['learn_error'] = _one_line(exc)
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_JSON).write_text(json.dumps(plan, indent=2) + '\n')
    markdown = render_markdown(plan)
    (out / PLAN_MD).write_text(markdown)
    print(markdown)
    print(f'wrote {out / PLAN_JSON} and {out / PLAN_MD}')
    failed = [n for n, e in entries.items() if e['status'] != 'ok']
    for name in failed:
        print(f'  failed: {table.name}/{name}: {entries[name]["error"]} '
              f'(log: {entries[name]["log"]})')
    unbuilt = [(profile, name, e['error']) for profile, p in plan['profiles'].items()
               for name, e in p['runs'].items() if e['status'] != 'ok' and name not in failed]
    for profile, name, error in unbuilt:
        print(f'  failed: {table.name}/{profile}/{name}: {error}')
    if learn_error:
        print(f'  failed: what you learn for what it costs: {learn_error}')
    return 1 if failed or unbuilt or learn_error else 0


def _estimated(entries: dict[str, dict], gpus: Sequence[int]) -> dict:
    """A profile's ``runs`` (each entry with its estimate at every GPU count) and ``totals``."""
    return dict(runs={name: dict(entry, estimates={str(g): estimate_at(entry, g) for g in gpus})
                      for name, entry in entries.items()},
                totals={str(g): table_totals(entries, g) for g in gpus})


def reduced_entry(entry: dict, table: str, name: str, profile: str, gpus: Sequence[int],
                  data_dir: Path, work_root: Path, cfg_options: Optional[dict] = None) -> dict:
    """A piloted run's entry for the reduced profile ``profile`` (``full@0.1+in100``): the pilot's
    measurements (per iteration and per image: a reduction changes how many) with the schedules
    and the fidelity record of the reduced run's own config at each GPU count."""
    out = dict(entry, profile=profile)
    if entry['status'] != 'ok':
        return out
    row, task = name.rsplit('/', 1)
    try:
        cfgs = {g: full_config(table, row, task, data_dir, work_root, g, cfg_options, profile)
                for g in gpus}
    except Exception as exc:  # reported with the run, as a failed pilot
        return dict(out, status='failed', flags=['FAILED'], log=None,
                    error=f'config of {profile}: {_one_line(exc)}')
    out['schedules'] = {str(g): schedule_of(cfg, task) for g, cfg in cfgs.items()}
    out['schedule'] = out['schedules'][str(gpus[0])]
    out['fidelity'] = _plain(cfgs[gpus[0]].get('fidelity'))
    return out


def _flags(entry: dict, gpu_mem: float) -> list[str]:
    if entry['status'] != 'ok':
        return ['FAILED']
    flags = []
    if entry['peak_mem_gib'] > gpu_mem:
        flags.append(f'memory {entry["peak_mem_gib"]:.1f} > {gpu_mem:.0f} GiB')
    return flags


def _hours(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:,.1f}'


def _row(cells: Sequence) -> str:
    """A markdown table row, a '|' inside a cell escaped."""
    return '| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |'


def render_markdown(plan: dict) -> str:
    gpus = plan['gpus']
    lines = [f'# Plan of {plan["table"]}: full-profile pilots', '',
             f'Measured on **{plan["device"]}** ({plan["host"]}, commit {plan["commit"]}), '
             f'{plan["iters"]} iterations per run, first excluded; {plan["created"]}. '
             f'Memory checked against {plan["gpu_mem_gib"]:.0f} GiB.'
             + (f' Config overrides: `{plan["cfg_options"]}`.' if plan.get('cfg_options') else ''),
             '',
             '| run | device | AMP | scan backend | s/iter | data s/iter | peak mem (GiB) | '
             + ' | '.join(f'iters @{g} GPUs | GPU-h @{g}' for g in gpus)
             + ' | estimate basis | official run: s/iter, GPUs, hours | flags |',
             '|' + '---|' * (7 + 2 * len(gpus) + 3)]
    for name, entry in plan['runs'].items():
        ok = entry['status'] == 'ok'
        cells = [name, entry.get('device', '-')]
        if ok:
            amp = 'on' if entry['amp'] else 'off'
            if entry.get('amp_in_config') and not entry['amp']:
                amp = 'off here (config: on; no AMP on CPU)'
            cells += [amp, entry['scan_backend'],
                      f'{entry["s_per_iter"]:.3f}', f'{entry["data_s_per_iter"]:.3f}',
                      f'{entry["peak_mem_gib"]:.2f} ({entry["mem_kind"]})']
            for g in gpus:
                est = entry['estimates'][str(g)]
                cells += [f'{est["total_iters"]:,}', _hours(est['gpu_hours'])]
        else:
            cells += ['-'] * (5 + 2 * len(gpus))
        cells.append(basis_text(entry) if ok else '-')
        cells.append(anchor_text(entry.get('official')))
        flags = list(entry['flags'])
        if not ok:
            flags = [f'FAILED: {entry["error"]} (log: {entry["log"]})']
        cells.append('; '.join(flags) or '')
        lines.append(_row(cells))
    profiles = plan.get('profiles') or {}
    lines += ['', ('| profile ' if profiles else '') + '| GPUs per run | table GPU-hours | '
              'wall hours in sequence | wall hours in parallel (GPUs) | runs not estimated |',
              '|---' * (6 if profiles else 5) + '|']
    for profile, totals in [(plan.get('profile', PLAN_PROFILE), plan['totals'])] + \
            [(name, p['totals']) for name, p in profiles.items()]:
        for g in gpus:
            t = totals[str(g)]
            lines.append((f'| {profile} ' if profiles else '')
                         + f'| {g} | {_hours(t["gpu_hours"])} | '
                         f'{_hours(t["wall_hours_sequence"])} | '
                         f'{_hours(t["wall_hours_parallel"])} ({t["gpus_in_parallel"]}) | '
                         f'{t["runs_not_estimated"]} |')
    if profiles:
        lines += ['', f'Reduced runs ({", ".join(profiles)}): the same pilots, each with the '
                  'schedule of the reduced run\'s own config (one seed):', '',
                  '| run | profile | schedule | '
                  + ' | '.join(f'iters @{g} GPUs | GPU-h @{g}' for g in gpus) + ' |',
                  '|---|---|---|' + '---|' * (2 * len(gpus))]
        for profile, p in profiles.items():
            for name, entry in p['runs'].items():
                cells = [name, profile]
                if entry['status'] == 'ok':
                    cells.append(schedule_text(entry['schedule']))
                    for g in gpus:
                        est = entry['estimates'][str(g)]
                        cells += [f'{est["total_iters"]:,}', _hours(est['gpu_hours'])]
                else:
                    cells += [f'FAILED: {entry["error"]}'] + ['-'] * (2 * len(gpus))
                lines.append(_row(cells))
    if any(e.get('official') for e in plan['runs'].values()):
        lines += ['', 'Official run: what the official repository\'s published training log of '
                  'the same recipe measured (`ablations/reference_catalog.py`): its median '
                  's/iter, its GPUs and its wall hours, validation included: GPU-hours = hours x '
                  'GPUs on that hardware.']
    if plan['device_mem_gib'] is None:
        lines += ['', 'Piloted on a CPU: the pilot checks each run\'s pipeline and measures its '
                  'memory; its s/iter is this CPU\'s, not a GPU\'s. The GPU-hours are estimates '
                  'anchored on the official runs\' measured throughput (the basis column); run '
                  'the plan on a GPU machine to measure them.']
    lines += ['', 'Assumptions:', ''] + [f'- {a}' for a in plan['assumptions']]
    fidelity = {n: e['fidelity'] for n, e in plan['runs'].items() if e.get('fidelity')}
    if fidelity:
        lines += ['', 'Recipe fidelity as built: see `fidelity` per run in plan.json.']
    if plan.get('learn'):
        lines += ['', plan['learn']['markdown'].rstrip('\n')]
    return '\n'.join(lines) + '\n'


def schedule_text(schedule: dict) -> str:
    """'32 epochs x 128,117 images', '12 epochs x 0.1 of 117,266 images', '16,000 iterations'."""
    if not schedule['by_epoch']:
        return f'{schedule["max_iters"]:,} iterations'
    fraction = schedule.get('epoch_fraction', 1.0)
    part = f'{fraction:g} of ' if fraction != 1.0 else ''
    return f'{schedule["epochs"]} epochs x {part}{schedule["train_set_size"]:,} images'


def load_plan(table: str, reports_dir: Optional[Union[str, Path]] = None,
              profile: str = PLAN_PROFILE) -> dict[str, dict]:
    """A written plan's runs, ``'<row>/<task>' -> entry``; {} when the table has no plan, or
    when its runs are not of ``profile`` (a plan estimates the full-profile runs: a smoke run of
    the same row is another run). A reduced profile (``full@0.1+in100``) gets the entries the
    plan estimated for it (``plan --schedule-scale 0.1 --subset in100``), or {}.

    An entry has ``status`` ('ok' or 'failed'), ``device``, ``amp``, ``scan_backend``,
    ``s_per_iter``, ``data_s_per_iter``, ``peak_mem_gib``, ``flags``, ``error``, ``log``,
    ``schedule`` and ``estimates`` ({'<G>': {gpus, total_iters, wall_hours, gpu_hours}} for the
    GPU counts planned); :func:`estimate_at` (entry, G) gives the same for any other G.
    """
    path = Path(reports_dir or REPO / 'reports') / table / PLAN_JSON
    try:
        plan = json.loads(path.read_text())
        if plan.get('profile', PLAN_PROFILE) == profile:
            return plan['runs']
        return (plan.get('profiles') or {}).get(profile, {}).get('runs', {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none we can read
        return {}


def basis_text(entry: dict) -> str:
    """What a run's estimate rests on, in one line."""
    if on_gpu(entry):
        return f'pilot: {entry["s_per_iter"]:.3f} s/iter measured on {entry["device"]}'
    if entry.get('anchor'):
        return anchor_line(entry['anchor'])
    return (f'CPU pilot extrapolated, an upper bound at best (no anchor: '
            f'{entry.get("anchor_error", "not measured")})')


def plan_line(entry: Optional[dict], gpus: int) -> Optional[str]:
    """The dry run's line for a run the plan measured, at ``gpus`` GPUs (None: no entry)."""
    if not entry:
        return None
    if entry.get('status') != 'ok':
        return f'plan: the pilot FAILED: {entry.get("error")} (log: {entry.get("log")})'
    est = estimate_at(entry, gpus)
    flags = f' ({"; ".join(entry["flags"])})' if entry.get('flags') else ''
    hours = (f'{est["total_iters"]:,} iters: {est["wall_hours"]:,.1f} h, '
             f'{est["gpu_hours"]:,.0f} GPU-hours on {gpus} GPUs')
    if est['basis'] == 'pilot':
        return (f'plan: {entry["s_per_iter"]:.3f} s/iter on {entry["device"]}, peak '
                f'{entry["peak_mem_gib"]:.1f} GiB, {hours}{flags}')
    return (f'plan: {hours}; {basis_text(entry)}; CPU pilot: pipeline ran, peak '
            f'{entry["peak_mem_gib"]:.1f} GiB ({entry.get("mem_kind", "peak RSS")}){flags}')


def _pilot_main(argv: Sequence[str]) -> int:
    """The child process of :func:`run_pilot`:
    ``python -m runs.commands.planner TABLE ROW TASK ...``."""
    table, row, task, data_root, work_dir, iters, gpus, result, options = argv
    return _pilot(table, row, task, Path(data_root), Path(work_dir), int(iters), int(gpus),
                  Path(result), json.loads(options))


if __name__ == '__main__':
    sys.exit(_pilot_main(sys.argv[1:]))
