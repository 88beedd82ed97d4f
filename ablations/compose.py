"""A row's config for one task: the table's base config + the profile overlay + the row's flags.

    base config (full recipe)       e.g. det_configs/mambavision/mask-rcnn_mambavision-t_fpn_1x_coco.py
    + smoke overlays (smoke only)   <task>_configs/smoke.py (data, schedule) and
                                    <task>_configs/<family>/smoke.py (reduced widths); the
                                    recipe's epoch schedule shortened to the overlay's epochs
    + data root                     where the task's dataset lives (checked by check_data_root)
    + the row's backbone overrides  ablations/mambavision_tables.py, mobilemamba.py (where rows live)
    + seed, work dir, pretrained backbone
    + the official global batch on the run's GPUs (full only): per-GPU batch x GPUs x gradient
      accumulation = the recipe's batch (ablations/recipes.py), else the lr scaled by the
      recipe's rule; recorded with every other recipe fact in ``cfg.fidelity``

Nothing here is specific to a row: adding a row is adding data in ablations/.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from engine.ema import EMA_HOOK_TYPES

from . import TASKS, AblationTable, Row, get_table
from .recipes import MAMBAVISION_TRAIN_VAL_CROP, get_recipe, plan_batch
from .reduction import SUBSETS, Reduction, split_profile
from .table_files import import_table_file

REPO = Path(__file__).resolve().parent.parent
PROFILES = ('smoke', 'full')
DEFAULT_SMOKE_DATA = REPO / 'data' / 'smoke'
CONFIG_DIRS = dict(cls='cls_configs', det='det_configs', seg='seg_configs')

# What each task expects under the data root, relative to it (checked before a run starts).
DATA_LAYOUT = dict(
    cls=dict(folder='imagenet', required=('train', 'val'),
             layout='imagenet/train/<wnid>/*.JPEG and imagenet/val/<wnid>/*.JPEG '
                    '(ImageNet folder layout; optional imagenet/meta/{train,val}.txt)'),
    det=dict(folder='coco', required=('train2017', 'val2017', 'annotations/instances_train2017.json',
                                      'annotations/instances_val2017.json'),
             layout='coco/train2017/*.jpg, coco/val2017/*.jpg, '
                    'coco/annotations/instances_{train,val}2017.json (COCO 2017)'),
    seg=dict(folder='ade/ADEChallengeData2016',
             required=('images/training', 'images/validation', 'annotations/training',
                       'annotations/validation'),
             layout='ade/ADEChallengeData2016/{images,annotations}/{training,validation}/ '
                    '(ADE20K scene parsing, 150 classes)'),
)


def check_data_root(task: str, data_root: Union[str, Path]) -> Path:
    """The task's dataset folder under ``data_root``; a clear error showing the layout if absent."""
    spec = DATA_LAYOUT[task]
    root = Path(data_root).expanduser().resolve()
    folder = root / spec['folder']
    missing = [p for p in spec['required'] if not (folder / p).exists()]
    if not root.is_dir() or missing:
        what = f'data root {root} does not exist' if not root.is_dir() else \
            f'{folder} lacks {", ".join(missing)}'
        raise FileNotFoundError(f'{task}: {what}.\nExpected under --data-root: {spec["layout"]}')
    return folder


def _set_dataset_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset (and COCO's annotation-reading metric) at data_root."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        dataset = loader['dataset']
        # Wrappers (RepeatDataset, ConcatDataset...) hold the real dataset one level down.
        while 'dataset' in dataset and 'data_root' not in dataset:
            dataset = dataset['dataset']
        dataset['data_root'] = data_root
    for split in ('val', 'test'):
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict) and 'ann_file' in evaluator:
            evaluator['ann_file'] = str(Path(data_root) / 'annotations' /
                                        Path(evaluator['ann_file']).name)


def load_config(path: Path) -> Config:
    """``Config.fromfile(path)``, parsed once per version of the file (its size and mtime; its
    ``_base_`` files are read with it) in a process: a table's commands build the same few base
    configs over and over, and mmengine reads every metafile of the toolkit for each ``mmdet::``
    base it resolves. The caller gets its own copy. Its ``custom_imports`` are not imported
    here: :func:`build_row_config` imports the run's own."""
    stat = path.stat()
    return copy.deepcopy(_parsed_config(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _parsed_config(path: str, mtime_ns: int, size: int) -> Config:
    return Config.fromfile(path, import_custom_modules=False)


def _merge_file(cfg: Config, path: Path) -> None:
    cfg.merge_from_dict(load_config(path).to_dict())


def smoke_overlays(table: AblationTable, task: str) -> list[Path]:
    """The smoke overlay files for a table's task, in merge order."""
    cfg_dir = REPO / CONFIG_DIRS[task]
    return [cfg_dir / 'smoke.py', cfg_dir / table.model / 'smoke.py']


def merge_row(cfg: Config, row: Row, task: str) -> None:
    """The row's backbone overrides for ``task`` into ``cfg.model.backbone``, in place: the one
    place a row changes a config."""
    cfg.merge_from_dict(dict(model=dict(backbone=copy.deepcopy(row.backbone_overrides(task)))))


def build_row_config(table: Union[str, AblationTable], row: Union[str, Row], task: str,
                     profile: str = 'smoke', data_root: Optional[Union[str, Path]] = None,
                     work_dir: Optional[Union[str, Path]] = None, seed: int = 0,
                     pretrained: Optional[Union[str, Path]] = None,
                     check_data: bool = False, gpus: Optional[int] = None,
                     import_modules: bool = True) -> Config:
    """The complete mmengine config of one (table, row, task) run.

    ``data_root`` defaults to the generated tiny data for smoke and is required for full.
    ``pretrained``: a checkpoint whose ``backbone.*`` weights initialise the backbone.
    ``check_data``: verify the dataset layout now (the runner does; a dry run does not).
    ``gpus``: GPUs of this task's run (full profile): the official global batch is kept on them
    (None: the official run's own GPU count). ``cfg.fidelity`` records the recipe as run.
    ``profile`` may name a reduced full run (``full@0.1+in100``, ``ablations.reduction``).
    ``import_modules``: import the config's ``custom_imports`` (its registered components), as
    the training process does; a config only hashed or read (``runs.rundir.identity``) need not
    load the toolkits' models.
    """
    table = get_table(table) if isinstance(table, str) else table
    row = table.row(row) if isinstance(row, str) else row
    if task not in table.tasks:
        raise ValueError(f'task {task!r} is not part of {table.name}; its tasks: '
                         f'{", ".join(table.tasks)} (all tasks: {", ".join(TASKS)})')
    run_profile = profile
    profile, reduction = split_profile(profile)
    if profile not in PROFILES:
        raise ValueError(f'unknown profile {profile!r}; valid: {", ".join(PROFILES)}')

    cfg = load_config(REPO / table.base_configs[task])
    if profile == 'smoke':
        full_loop = copy.deepcopy(cfg.train_cfg)
        for overlay in smoke_overlays(table, task):
            _merge_file(cfg, overlay)
        shorten_schedule(cfg, full_loop)
        data_root = DEFAULT_SMOKE_DATA if data_root is None else data_root
    elif data_root is None:
        raise ValueError('the full profile needs --data-root (where imagenet/, coco/ and ade/ '
                         'live); see README.md')
    folder = check_data_root(task, data_root) if check_data else \
        Path(data_root).expanduser().resolve() / DATA_LAYOUT[task]['folder']
    _set_dataset_root(cfg, str(folder))

    merge_row(cfg, row, task)
    if pretrained is not None:
        # _delete_: replace the base's init_cfg (often None, which a dict cannot merge into).
        cfg.merge_from_dict(dict(model=dict(backbone=dict(init_cfg=dict(
            _delete_=True, type='Pretrained', checkpoint=str(pretrained), prefix='backbone.')))))
    cfg.randomness = dict(seed=seed, deterministic=False)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    # For the record: what this config is, in the run's own dumped copy.
    cfg.ablation = dict(table=table.name, row=row.slug, task=task, profile=run_profile,
                        seed=seed)
    import_table_file(cfg, table)  # a table of your own: its module and its file's hash
    if profile == 'full':
        reduced = apply_reduction(cfg, task, reduction)  # before the batch plan scales iterations
        cfg.fidelity = apply_global_batch(cfg, gpus)
        cfg.fidelity['deviations'] += reduced
        cfg.fidelity['reduction'] = dict(schedule_scale=reduction.schedule_scale,
                                         subset=reduction.subset)
    else:
        # Smoke keeps its own small batch per process: N processes train N times the batch.
        cfg.fidelity = fidelity_record(cfg, gpus=gpus or 1, deviations=[
            'smoke profile: tiny data and model, a pipeline check, never a reproduction'])
    if import_modules and cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    return cfg


# ---- the smoke profile: the full recipe's structure, shortened ----------------------------------
# The EMA's momentum on a few dozen iterations: the recipes' 2e-4 averages over ~5000 iterations
# (about 1 % of an ImageNet run) and would evaluate the initial weights after 48 iterations;
# 0.1 averages over the last ~10 (a fifth of the smoke run).
SMOKE_EMA_MOMENTUM = 0.1


def shorten_schedule(cfg: Config, full_loop: dict) -> None:
    """Fit the full recipe's epoch-based schedule to the smoke overlay's few epochs (in place).

    The overlay sets ``max_epochs``; :func:`scale_epoch_schedule` keeps every epoch-based
    scheduler's shape and MESA's start ratio. EMA hooks get :data:`SMOKE_EMA_MOMENTUM`.
    Iteration-based loops (det and seg smoke) are left as the overlay has them.
    """
    loop = cfg.train_cfg
    if not (loop.get('by_epoch') and full_loop.get('by_epoch') and 'max_epochs' in full_loop):
        return
    scale_epoch_schedule(cfg, loop.max_epochs / full_loop['max_epochs'])
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') in EMA_HOOK_TYPES:
            hook['momentum'] = SMOKE_EMA_MOMENTUM


def scale_epoch_schedule(cfg: Config, factor: float) -> None:
    """Scale every epoch-based scheduler's begin and end (or cycle and warm-up) by ``factor``,
    and MESA's epoch count with them, so its start ratio is kept (in place; the loop's own
    ``max_epochs`` is the caller's). Fractions of an epoch are kept where the scheduler converts
    to iterations, as both ImageNet recipes do; others round to whole epochs."""
    schedulers = cfg.get('param_scheduler') or []
    for sched in schedulers if isinstance(schedulers, list) else [schedulers]:
        if not sched.get('by_epoch', True):
            continue
        exact = sched.get('convert_to_iter_based', False)
        # cycle, warmup: TimmCosineLR's lengths (engine/lr_schedulers.py), in epochs here too.
        for key in ('begin', 'end', 'T_max', 'cycle', 'warmup'):
            if isinstance(sched.get(key), (int, float)):
                value = round(sched[key] * factor, 9)
                if not exact:
                    value = max(1, round(value)) if sched[key] else 0
                sched[key] = int(value) if float(value).is_integer() else value
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') == 'MesaHook' and hook.get('epochs'):
            # The official divisor of MESA's progress (MambaVision: the yaml's 310 epochs).
            epochs = round(hook['epochs'] * factor, 9)  # 310 x 0.1 is 31, not 31.000000000000004
            hook['epochs'] = int(epochs) if epochs.is_integer() else epochs


# ---- reduced-cost full runs (ablations/reduction.py) -------------------------------------------
IMAGENET_CLASSES = 1000


def _scaled_interval(value: int, factor: float) -> int:
    return max(1, round(value * factor))


def apply_reduction(cfg: Config, task: str, reduction: Reduction) -> list:
    """Scale the schedule and select the class subset (in place); the deviation lines.

    - ImageNet (epoch-based): ``max_epochs`` x F, rounded; the cosine's cycle and warm-up and
      MESA's epochs by the same ratio (decayed over the scaled budget, not truncated);
      validation and checkpoint intervals too, never under one epoch (the loop validates at
      epoch ends; more often would cost more than it tells).
    - Detection (mmdet's epoch-based 1x/3x): the epochs, lr milestones and per-epoch validation
      are kept and each epoch trains a new random F of the images (``EpochFractionSampler``),
      so the run trains F of the iterations; iteration-based warm-ups x F.
    - Segmentation (iteration-based): every iteration count x F.
    - The EMA keeps its horizon as a fraction of the run: with F of the optimizer steps (and the
      subset's fewer steps per epoch), momentum / (F x the subset's share of the images). The
      recipes' 2e-4 averages over ~5000 steps, 5 % of a MambaVision run; unchanged, a run of a
      tenth of the steps would evaluate an average over half of its training.
    - ``in100`` (ImageNet only): ``ImageNetSubset`` over the user's ImageNet folder and a
      100-way head; the det/seg runs of the row start from that backbone.
    """
    if not reduction.reduced:
        return []
    deviations = []
    scale = reduction.schedule_scale
    steps = 1.0  # this run's optimizer steps / the full run's
    loop = cfg.train_cfg
    if scale != 1.0:
        if task == 'cls':
            epochs = loop.max_epochs
            loop.max_epochs = max(1, round(epochs * scale))
            ratio = steps = loop.max_epochs / epochs
            scale_epoch_schedule(cfg, ratio)
            if 'val_interval' in loop:
                loop.val_interval = _scaled_interval(loop.val_interval, ratio)
            if loop.get('dynamic_intervals'):
                loop.dynamic_intervals = [(_scaled_interval(e, ratio), _scaled_interval(i, ratio))
                                          for e, i in loop.dynamic_intervals]
            ckpt = cfg.default_hooks.get('checkpoint')
            if ckpt is not None and ckpt.get('by_epoch', True):
                ckpt.interval = _scaled_interval(ckpt.interval, ratio)
            mesa = ' and MESA start' if any(h.get('type') == 'MesaHook'
                                            for h in cfg.get('custom_hooks') or []) else ''
            deviations.append(f'schedule scaled by {scale:g}: {loop.max_epochs} of {epochs} '
                              f'epochs, the lr schedule, warm-up{mesa} over them')
        elif 'max_epochs' in loop:
            sampler = cfg.train_dataloader.sampler
            if sampler.get('type') not in (None, 'DefaultSampler'):
                raise ValueError(f'--schedule-scale: cannot scale the epochs of a '
                                 f'{sampler.get("type")} sampler')
            sampler.update(type='EpochFractionSampler', fraction=scale)
            steps = scale
            _scale_iteration_counts(cfg, scale)
            deviations.append(f'schedule scaled by {scale:g}: each of the {loop.max_epochs} '
                              f'epochs trains a new random {scale:g} of the images; lr '
                              f'milestones and per-epoch validation kept')
        else:
            iters = loop.max_iters
            loop.max_iters = max(1, round(iters * scale))
            steps = loop.max_iters / iters
            if 'val_interval' in loop:
                loop.val_interval = _scaled_interval(loop.val_interval, steps)
            _scale_iteration_counts(cfg, steps)
            ckpt = cfg.default_hooks.get('checkpoint')
            if ckpt is not None and not ckpt.get('by_epoch', True):
                ckpt.interval = _scaled_interval(ckpt.interval, steps)
            deviations.append(f'schedule scaled by {scale:g}: {loop.max_iters} of {iters} '
                              f'iterations, the lr schedule and validation over them')
    if reduction.subset:
        wnids, what = SUBSETS[reduction.subset]
        if task == 'cls':
            classes = _select_classes(cfg, wnids)
            steps *= classes / IMAGENET_CLASSES  # ImageNet classes hold similar image counts
            deviations.append(f'{what}: {classes} classes of ImageNet, a {classes}-way head')
        else:
            deviations.append(f'backbone from the row\'s {reduction.subset} classification run '
                              f'({what}), not from ImageNet-1k')
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') in EMA_HOOK_TYPES and steps < 1:
            momentum = hook['momentum']
            hook['momentum'] = min(1.0, momentum / steps)
            deviations.append(f'EMA momentum {momentum:g} -> {hook["momentum"]:.3g}: its '
                              f'horizon kept at the same share of the reduced optimizer steps')
    return deviations


def _scale_iteration_counts(cfg: Config, factor: float) -> None:
    """Iteration-based schedulers' begin, end and milestones x ``factor``, in whole iterations
    (a reduced schedule's fraction, or the accumulation count)."""
    schedulers = cfg.get('param_scheduler') or []
    for sched in schedulers if isinstance(schedulers, list) else [schedulers]:
        if sched.get('by_epoch', True):
            continue
        for key in ('begin', 'end', 'T_max'):
            if isinstance(sched.get(key), int):
                sched[key] = max(1, round(sched[key] * factor)) if sched[key] else 0
        if sched.get('milestones'):
            sched['milestones'] = [max(1, round(m * factor)) for m in sched['milestones']]


def _select_classes(cfg: Config, wnids: Path) -> int:
    """ImageNet's loaders read only the listed classes; the head predicts that many."""
    classes = sum(1 for line in wnids.read_text().splitlines()
                  if line.strip() and not line.startswith('#'))
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        dataset = loader.dataset
        if dataset.get('type') != 'ImageNet':
            raise ValueError(f'--subset selects ImageNet classes; the {split} dataset is '
                             f'{dataset.get("type")}')
        dataset.update(type='ImageNetSubset', wnids_file=str(wnids))
    cfg.model.head.num_classes = classes
    if cfg.get('data_preprocessor', {}).get('num_classes'):
        cfg.data_preprocessor.num_classes = classes
    cfg.custom_imports.imports = [*cfg.custom_imports.imports, 'engine.imagenet_subset']
    return classes


# ---- the official global batch at any GPU count -------------------------------------------------
def _scale_iterations(cfg: Config, factor: int) -> None:
    """Multiply every iteration count by ``factor``: with gradient accumulation an optimizer step
    is ``factor`` iterations (epoch-based counts need nothing: an epoch is still an epoch)."""
    loop = cfg.train_cfg
    if 'max_iters' in loop:
        loop.max_iters *= factor
        if 'val_interval' in loop:
            loop.val_interval *= factor
    _scale_iteration_counts(cfg, factor)
    ckpt = cfg.get('default_hooks', {}).get('checkpoint')
    if ckpt is not None and not ckpt.get('by_epoch', True):
        ckpt.interval *= factor


# Schedulers that count optimizer steps themselves (engine/lr_schedulers.py): they are told the
# accumulation; every other scheduler moves once per iteration, i.e. per micro-batch.
STEP_COUNTING_SCHEDULERS = ('TimmCosineLR', )


def _accumulate_steps(cfg: Config, plan) -> list:
    """Under gradient accumulation: whole optimizer steps per epoch (a ``StepAlignedSampler``
    keeps per-GPU batch x accumulation images per rank and step) and schedulers that count
    steps; the deviations that remain where a config has neither."""
    deviations = []
    sampler = cfg.train_dataloader.get('sampler') or {}
    if sampler.get('type') == 'StepAlignedSampler':
        sampler['images_per_step'] = plan.per_gpu_batch * plan.accumulation
    elif cfg.train_cfg.get('by_epoch', False) or 'max_epochs' in cfg.train_cfg:
        deviations.append(f'an epoch is not a whole number of optimizer steps of '
                          f'{plan.accumulation} iterations: steps straddle epoch ends')
    schedulers = cfg.get('param_scheduler') or []
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    per_iteration = []
    for sched in schedulers:
        if sched.get('type') in STEP_COUNTING_SCHEDULERS:
            sched['accumulation'] = plan.accumulation
        elif not sched.get('by_epoch', True) or sched.get('convert_to_iter_based'):
            per_iteration.append(sched.get('type'))
    if per_iteration:
        deviations.append(
            f'the lr schedulers ({", ".join(per_iteration)}) move once per iteration, i.e. per '
            f'micro-batch: at each optimizer step the lr is {plan.accumulation - 1}/'
            f'{plan.accumulation} of a step ahead of the official schedule')
    return deviations


def _validation_crop_deviations(cfg: Config) -> list:
    """MambaVision: validating during training at another crop than the yaml's, by which the
    official train.py picks the best (reported) epoch."""
    arch = cfg.model.get('backbone', {}).get('arch')
    # (an arch given as a dict of widths is no official variant)
    if cfg.get('recipe') != 'mambavision-in1k' or not isinstance(arch, str) \
            or arch not in MAMBAVISION_TRAIN_VAL_CROP:
        return []
    crop_pct = MAMBAVISION_TRAIN_VAL_CROP[arch]
    resize = next((t.get('scale') for t in cfg.val_dataloader.dataset.pipeline
                   if t.get('type') == 'ResizeEdge'), None)
    crop = next((t.get('crop_size') for t in cfg.val_dataloader.dataset.pipeline
                 if t.get('type') == 'CenterCrop'), None)
    if crop is None or resize == int(crop / crop_pct):
        return []
    return [f'validation during training resizes to {resize} for the {crop} crop; the official '
            f'training validates at its yaml\'s crop_pct {crop_pct:g} (resize '
            f'{int(crop / crop_pct)}) and picks the best epoch by it']


def apply_global_batch(cfg: Config, gpus: Optional[int]) -> dict:
    """Keep the recipe's global batch on ``gpus`` GPUs; return the fidelity record.

    Per-GPU batch at most the official one, times ``gpus``, times mmengine's
    ``accumulative_counts`` = the official batch. Where that cannot be exact the lr follows the
    recipe's scaling rule and the record says so. The EMA updates once per optimizer step.
    """
    recipe = get_recipe(cfg.recipe)
    gpus = recipe.gpus if gpus is None else gpus
    if not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f'gpus={gpus!r} must be a whole number of GPUs, at least 1')
    official_per_gpu = cfg.train_dataloader.batch_size
    plan = plan_batch(recipe.global_batch, gpus, official_per_gpu)
    deviations = list(recipe.deviations)
    cfg.train_dataloader.batch_size = plan.per_gpu_batch
    if plan.accumulation > 1:
        cfg.optim_wrapper.accumulative_counts = plan.accumulation
        _scale_iterations(cfg, plan.accumulation)  # the EMA (StepEMAHook) follows by itself
        deviations += _accumulate_steps(cfg, plan)
    official_lr = cfg.optim_wrapper.optimizer.lr
    if not plan.exact:
        cfg.optim_wrapper.optimizer.lr = recipe.scale_lr(official_lr, plan.effective_batch)
        deviations.append(
            f'batch {plan.effective_batch} instead of {recipe.global_batch} ({plan.note}: '
            f'{recipe.global_batch} does not divide over {gpus} GPUs); lr '
            f'{official_lr:g} scaled by the {recipe.lr_rule} rule ({recipe.lr_rule_source}) to '
            f'{cfg.optim_wrapper.optimizer.lr:.4g}')
    deviations += _validation_crop_deviations(cfg)
    if plan.per_gpu_batch < official_per_gpu:
        deviations.append(f'{plan.per_gpu_batch} images per GPU instead of {official_per_gpu}: '
                          f'BatchNorm statistics over fewer images')
    return fidelity_record(cfg, gpus=gpus, accumulation=plan.accumulation,
                           official_lr=official_lr, deviations=deviations)


def fidelity_record(cfg: Config, gpus: Optional[int] = None, accumulation: Optional[int] = None,
                    official_lr: Optional[float] = None,
                    deviations: Optional[list] = None) -> dict:
    """The recipe as this config runs it (plain data, for run.json and the report).

    Without arguments, the record of a config as written, on the official GPU count.
    """
    recipe = get_recipe(cfg.recipe) if 'recipe' in cfg else None
    if gpus is None:
        gpus = recipe.gpus if recipe else 1
    if accumulation is None:
        accumulation = cfg.optim_wrapper.get('accumulative_counts', 1)
    per_gpu = cfg.train_dataloader.batch_size
    lr = cfg.optim_wrapper.optimizer.lr
    loop = cfg.train_cfg
    mesa = cfg.model.get('mesa')
    has_ema = any(h.get('type') in EMA_HOOK_TYPES for h in cfg.get('custom_hooks') or [])
    has_mesa_hook = any(h.get('type') == 'MesaHook' for h in cfg.get('custom_hooks') or [])
    record = dict(
        recipe=recipe.name if recipe else None,
        recipe_source=recipe.source if recipe else None,
        gpus=gpus,
        per_gpu_batch=per_gpu,
        accumulation=accumulation,
        effective_batch=gpus * per_gpu * accumulation,
        official_batch=recipe.global_batch if recipe else None,
        lr=lr,
        official_lr=lr if official_lr is None else official_lr,
        lr_rule=recipe.lr_rule if recipe else None,
        amp=cfg.optim_wrapper.get('type') == 'AmpOptimWrapper',
        ema=has_ema,
        mesa=dict(mesa) if mesa and has_mesa_hook and has_ema else None,
        deviations=list(deviations or []),
    )
    if 'max_epochs' in loop:
        record['epochs'] = loop.max_epochs
    else:
        record['iters'] = loop.max_iters // accumulation  # optimizer steps
    return record


def describe_fidelity(record: dict) -> str:
    """One line for --dry-run: the batch, the lr and the schedule as they will run."""
    length = f'{record["epochs"]} epochs' if 'epochs' in record else f'{record["iters"]} iters'
    # 'device' is added by the runner: what each of the run's processes trains on.
    devices = f'{record["gpus"]} CPU process{"es" if record["gpus"] > 1 else ""}' \
        if record.get('device') == 'cpu' else f'{record["gpus"]} GPUs'
    parts = [f'effective batch {record["effective_batch"]} = {devices} x '
             f'{record["per_gpu_batch"]} x {record["accumulation"]} accumulation',
             f'lr {record["lr"]:.4g}', length]
    if record['official_batch'] and record['effective_batch'] != record['official_batch']:
        parts[0] += f' (official {record["official_batch"]})'
    if record['amp']:
        parts.append('AMP')
    if record['mesa']:
        parts.append(f'MESA {record["mesa"]["weight"]:g} from '
                     f'{record["mesa"].get("start_ratio", 0.25):.0%}')
    if record['deviations']:
        parts.append(f'{len(record["deviations"])} deviation(s)')
    return ', '.join(parts)
