"""The full configs train what the official trainers train, shown by running the official parts.

The official side is run, not re-read: timm's ``CosineLRScheduler`` set up and stepped as the
official scheduler factories and training loops do, timm's ``create_transform`` with the official
arguments, timm's ``create_optimizer_v2`` on the official MambaVision model (the ``mambavision``
package), the official MobileMamba weight-decay split and the official downstream logs (run and
read by tools/make_official_recipe_fixture.py into tests/fixtures/official_recipes.json, with
the official yaml/config values). Our side is mmengine building our configs as its Runner does.
"""
from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ablations.compose import load_config
from ablations.recipes import get_recipe
from tiers import first_of_each

REPO = Path(__file__).resolve().parent.parent
FIXTURE = json.loads((REPO / 'tests' / 'fixtures' / 'official_recipes.json').read_text())
MV_YAML = FIXTURE['mambavision']['yaml']
MM_CONFIG = FIXTURE['mobilemamba']['config']
# len(ImageNet-1K train): the official MambaVision yaml's data_len, the size both trainers see.
IMAGENET_TRAIN = MV_YAML['T']['data_len']
assert IMAGENET_TRAIN == 1281167


def _mv_config(variant: str) -> Config:
    return Config.fromfile(str(REPO / f'cls_configs/mambavision/mambavision-{variant.lower()}'
                                      f'_in1k.py'))


def _full(variant_config: str, gpus: int) -> Config:
    """A full config with the official global batch kept on ``gpus`` (ablations/compose.py)."""
    from ablations.compose import apply_global_batch
    cfg = Config.fromfile(str(REPO / variant_config))  # its custom_imports: built below
    apply_global_batch(cfg, gpus)
    return cfg


# ---- the lr at every optimizer step ----------------------------------------------------------
def _epoch_length(cfg: Config, gpus: int) -> int:
    """Iterations per epoch on each of ``gpus`` ranks, from the config's own sampler and
    ``drop_last`` as mmengine's Runner builds the DataLoader. mmengine's samplers pad the dataset
    to a multiple of the GPUs, so a rank holds ceil(N / gpus) images: one rank's share is the
    whole dataset of a one-process sampler."""
    import backbones  # noqa: F401  (registers StepAlignedSampler)
    from mmengine.registry import DATA_SAMPLERS
    loader = cfg.train_dataloader
    share = range(math.ceil(IMAGENET_TRAIN / gpus))
    sampler = DATA_SAMPLERS.build(copy.deepcopy(loader.sampler), default_args=dict(dataset=share))
    return len(torch.utils.data.DataLoader(share, batch_size=loader.batch_size, sampler=sampler,
                                           drop_last=loader.get('drop_last', False)))


def our_lrs(cfg: Config, gpus: int) -> list[float]:
    """The lr of every optimizer step of the config's whole (epoch-based) training on ``gpus``
    GPUs, the epoch length from the config's own data loader (see _epoch_length)."""
    return mmengine_lrs(cfg.param_scheduler, cfg.optim_wrapper.optimizer.lr,
                        cfg.optim_wrapper.get('accumulative_counts', 1),
                        epochs=cfg.train_cfg.max_epochs, length=_epoch_length(cfg, gpus))


def mmengine_lrs(param_scheduler: list, lr: float, accumulation: int, epochs: int,
                 length: int, by_epoch: bool = True) -> list[float]:
    """The lr of every optimizer step of a training of ``epochs`` x ``length`` iterations (an
    iteration-based loop: ``epochs=1``, ``length`` = max_iters, ``by_epoch=False``).

    The schedulers are built by mmengine's registry with the Runner's defaults (``end`` = the
    training's length, the epoch length for ``convert_to_iter_based``) on a real
    ``OptimWrapper`` with the accumulation, and stepped as ``ParamSchedulerHook`` steps them:
    iteration-based ones after every iteration, epoch-based ones after every epoch. An
    optimizer step happens at every ``accumulative_counts``-th iteration (mmengine's rule).
    """
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS
    wrapper = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr),
                           accumulative_counts=accumulation)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # "scheduler.step() before optimizer.step()"
        schedulers = []
        for sched in param_scheduler:
            sched = copy.deepcopy(dict(sched))
            sched.setdefault('end', epochs if sched.get('by_epoch', True) and by_epoch
                             else epochs * length)
            schedulers.append(PARAM_SCHEDULERS.build(
                sched, default_args=dict(optimizer=wrapper, epoch_length=length)))
        per_iter = [s for s in schedulers if not s.by_epoch]
        per_epoch = [s for s in schedulers if s.by_epoch]
        group = wrapper.param_groups[0]
        lrs, iteration = [], 0
        for _ in range(epochs):
            for _ in range(length):
                iteration += 1
                if iteration % accumulation == 0:
                    lrs.append(group['lr'])
                for s in per_iter:
                    s.step()
            for s in per_epoch:
                s.step()
    return lrs


def timm_mambavision_lrs(variant: str) -> list[float]:
    """The official MambaVision lr per update: mambavision/scheduler/scheduler_factory.py's
    CosineLRScheduler (timm's) from the yaml, stepped as train.py's loop steps it."""
    from timm.scheduler import CosineLRScheduler
    y = MV_YAML[variant]
    recipe = get_recipe('mambavision-in1k')
    n_iter = y['data_len'] // (y['batch_size'] * recipe.gpus)  # args.batch_size * world_size
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=y['lr'])
    sched = CosineLRScheduler(
        opt, t_initial=y['epochs'] * n_iter, lr_min=y['min_lr'], warmup_lr_init=y['warmup_lr'],
        warmup_t=y['warmup_epochs'] * n_iter, k_decay=y['lr_k_decay'], t_in_epochs=y['lr_ep'],
        cycle_mul=y['lr_cycle_mul'], cycle_decay=y['lr_cycle_decay'],
        cycle_limit=y['lr_cycle_limit'], noise_range_t=None)
    num_epochs = sched.get_cycle_length() // n_iter + y['cooldown_epochs']
    lrs = []
    for epoch in range(num_epochs):
        for batch_idx in range(n_iter):  # len(loader) = n_iter (drop_last, see the test)
            sched.step_update(num_updates=epoch * n_iter + batch_idx + 1)  # before the update
            lrs.append(opt.param_groups[0]['lr'])
    return lrs


def timm_mobilemamba_lrs(variant: str, gpus: int) -> list[float]:
    """The official MobileMamba lr per iteration: optim/scheduler.py's get_scheduler (timm's
    CosineLRScheduler, t_in_epochs with iteration counts), lr scaled by trainer/_base_trainer.py,
    stepped with the iteration before each one. The official loader drops each rank's last
    incomplete batch; on ``gpus`` GPUs each holds batch/gpus images per step."""
    from timm.scheduler import CosineLRScheduler
    c = MM_CONFIG[variant]
    batch = c['trainer']['data']['batch_size']
    kw = dict(c['trainer']['scheduler_kwargs'])
    assert kw['name'] == 'cosine' and kw['use_iters'] and kw['warmup_iters'] == -1
    train_size = math.ceil(IMAGENET_TRAIN / gpus) // (batch // gpus)
    lr = c['optim']['lr'] * batch / 512
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = CosineLRScheduler(
        opt, t_initial=c['trainer']['epoch_full'] * train_size,
        lr_min=kw['lr_min'] * batch / 512, warmup_lr_init=kw['warmup_lr'] * batch / 512,
        warmup_t=kw['warmup_epochs'] * train_size, cycle_mul=kw.get('lr_cycle_mul', 1.),
        cycle_decay=kw['cycle_decay'], cycle_limit=kw.get('lr_cycle_limit', 1),
        t_in_epochs=True, noise_range_t=None)
    iter_full = (c['trainer']['epoch_full'] + kw['cooldown_epochs']) * train_size
    lrs = []
    for it in range(iter_full):
        sched.step(it)
        lrs.append(opt.param_groups[0]['lr'])
    return lrs


def _assert_same_curve(ours: list, official: list) -> None:
    n = min(len(ours), len(official))
    ours_t = torch.tensor(ours[:n], dtype=torch.float64)
    off_t = torch.tensor(official[:n], dtype=torch.float64)
    gaps = (ours_t - off_t).abs() / off_t.abs().clamp_min(1e-30)  # a zero lr must be zero
    worst = int(gaps.argmax())
    assert len(ours) == len(official) and gaps[worst] < 1e-6, \
        f'{len(ours)} optimizer steps, official {len(official)}; worst relative gap ' \
        f'{gaps[worst]:.3g} at step {worst}: ours {ours[worst]:.6g}, official {official[worst]:.6g}'


# quick tier: T on 8 GPUs (accumulation 4); the others in the whole suite (tests/tiers.py)
@pytest.mark.parametrize('gpus, variant', first_of_each(
    [(8, 'T'), (32, 'T'), (8, 'B'), (32, 'B')], lambda case: 'all'))
def test_mambavision_lr_at_every_step_equals_timms(variant, gpus):
    cfg = _full(f'cls_configs/mambavision/mambavision-{variant.lower()}_in1k.py', gpus)
    assert cfg.optim_wrapper.get('accumulative_counts', 1) == 32 // gpus
    _assert_same_curve(our_lrs(cfg, gpus), timm_mambavision_lrs(variant))


@pytest.mark.parametrize('gpus', first_of_each([4, 8], lambda gpus: 'all'))
def test_mobilemamba_lr_at_every_step_equals_timms(gpus):
    cfg = _full('cls_configs/mobilemamba/mobilemamba-s6_in1k.py', gpus)
    assert cfg.optim_wrapper.get('accumulative_counts', 1) == 8 // gpus
    ours = our_lrs(cfg, gpus)
    _assert_same_curve(ours, timm_mobilemamba_lrs('s6', gpus))
    # The official S6 run's own log (weights/MobileMamba_S6/mobilemamba_s6.txt) prints, after
    # iterations 141800 and 141850 of 375300, the lr of the iteration just run (6 decimals).
    assert len(ours) == 375300
    assert (round(ours[141799], 6), round(ours[141849], 6)) == (0.002071, 0.002070)


def test_the_dagger_schedule_spans_its_1000_epochs():
    """The † config's cosine runs over its own 1000 epochs, as the official s6s config's."""
    c = MM_CONFIG['s6s']
    cfg = load_config(REPO / 'cls_configs/mobilemamba/mobilemamba-s6_in1k-dagger.py')
    (sched, ) = cfg.param_scheduler
    assert cfg.train_cfg.max_epochs == sched.cycle == c['trainer']['epoch_full'] == 1000
    assert sched.warmup == c['trainer']['scheduler_kwargs']['warmup_epochs']


# ---- MESA's start ------------------------------------------------------------------------------
@pytest.mark.parametrize('variant', list(MV_YAML))
def test_mesa_is_off_before_the_official_start_epoch_and_on_from_it(variant):
    from mmengine.registry import HOOKS
    import engine.mesa  # noqa: F401
    y = MV_YAML[variant]
    # train.py: MESA is on in epoch `epoch` (from 0) when epoch / args.epochs > mesa_start_ratio.
    start = next(e for e in range(1000) if e / y['epochs'] > y['mesa_start_ratio'])
    cfg = _mv_config(variant)
    hook = HOOKS.build(next(h for h in cfg.custom_hooks if h.type == 'MesaHook'))
    mesa = cfg.model.mesa
    assert mesa.weight == y['mesa']

    def on(epoch):
        return hook.progress(epoch, cfg.train_cfg.max_epochs) > mesa.start_ratio
    assert not on(start - 1) and on(start) and on(cfg.train_cfg.max_epochs - 1), start


# ---- augmentation ------------------------------------------------------------------------------
def _timm_train_transform(kwargs: dict) -> dict:
    """timm's training transform built with the official arguments, by component type."""
    from timm.data import create_transform
    t = create_transform(**kwargs)
    return {type(x).__name__: x for x in t.transforms}


def _mv_transform_kwargs(variant: str) -> dict:
    """What mambavision/train.py's create_loader hands to timm's create_transform (random
    erasing inside the transform, not the prefetcher: same RandomErasing, same arguments)."""
    y = MV_YAML[variant]
    return dict(input_size=y['input_size'], is_training=True, use_prefetcher=False,
                no_aug=y['no_aug'], re_prob=y['reprob'], re_mode=y['remode'],
                re_count=y['recount'], scale=y['scale'], ratio=y['ratio'], hflip=y['hflip'],
                vflip=y['vflip'], color_jitter=y['color_jitter'], auto_augment=y['aa'],
                interpolation=y['train_interpolation'])


def _mm_transform_kwargs(variant: str) -> dict:
    (t, ) = MM_CONFIG[variant]['data']['train_transforms']
    assert t['type'] == 'timm_create_transform'
    kwargs = {k: v for k, v in t.items() if k not in ('type', 'mean', 'std')}
    return dict(kwargs, use_prefetcher=False)


def _assert_pipeline_is_timms(pipeline: list, timm_parts: dict) -> None:
    from mmpretrain.datasets.transforms.auto_augment import RANDAUG_POLICIES
    from timm.data.auto_augment import _LEVEL_DENOM, _RAND_INCREASING_TRANSFORMS
    ours = {t['type']: t for t in pipeline}
    crop, flip = timm_parts['RandomResizedCropAndInterpolation'], timm_parts['RandomHorizontalFlip']
    ra, erase = timm_parts['RandAugment'], timm_parts['RandomErasing']
    assert 'ColorJitter' not in timm_parts and 'ColorJitter' not in ours
    # Crop: size, scale and ratio ranges, and timm's 'random' interpolation.
    c = ours['RandomInterpResizedCrop']
    assert (c['scale'], tuple(c['crop_ratio_range']), tuple(c['aspect_ratio_range'])) == \
        (crop.size[0], tuple(crop.scale), tuple(crop.ratio))
    from engine.transforms import RANDOM_INTERPOLATIONS
    assert isinstance(crop.interpolation, (tuple, list)) and c['interpolation'] == 'random'
    assert tuple(m.value for m in crop.interpolation) == RANDOM_INTERPOLATIONS
    assert ours['RandomFlip']['prob'] == flip.p
    # RandAugment: two ops per image out of the 'increasing' set, magnitude 9 +- 0.5 of 10, each
    # op applied with probability 0.5, resampling at random (no interpolation in its hparams).
    r = ours['RandomInterpRandAugment']
    assert r['num_policies'] == ra.num_layers and ra.choice_weights is None
    assert {op.name for op in ra.ops} == set(_RAND_INCREASING_TRANSFORMS)
    assert r['policies'] == 'timm_increasing' and \
        len(RANDAUG_POLICIES['timm_increasing']) == len(ra.ops)
    assert {(op.magnitude, op.magnitude_std, op.prob) for op in ra.ops} == \
        {(r['magnitude_level'], r['magnitude_std'], 0.5)}
    assert r['total_level'] == _LEVEL_DENOM
    assert all('interpolation' not in op.hparams for op in ra.ops)
    assert r['hparams']['interpolation'] == 'random'
    # Random erasing: probability, per-pixel noise, area range, one box.
    e = ours['RandomErasing']
    assert (e['erase_prob'], e['min_area_ratio'], e['max_area_ratio']) == \
        (erase.probability, erase.min_area, erase.max_area)
    assert erase.mode == 'pixel' and e['mode'] == 'rand'  # mmpretrain's name for per-pixel
    assert erase.max_count == 1
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS
    init_default_scope('mmpretrain')
    built = TRANSFORMS.build(dict(e))  # its default aspect range: timm's log-uniform range
    assert [math.log(a) for a in built.aspect_range] == pytest.approx(erase.log_aspect_ratio)


@pytest.mark.parametrize('variant', ['T', 'B'])
def test_mambavision_training_transform_is_the_official_timm_one(variant):
    cfg = _mv_config(variant)
    _assert_pipeline_is_timms(cfg.train_dataloader.dataset.pipeline,
                              _timm_train_transform(_mv_transform_kwargs(variant)))


@pytest.mark.parametrize('variant, config', [('s6', 'mobilemamba-s6_in1k.py'),
                                             ('t2', 'mobilemamba-t2_in1k.py'),
                                             ('b4', 'mobilemamba-b4_in1k.py')])
def test_mobilemamba_training_transform_is_the_official_timm_one(variant, config):
    cfg = load_config(REPO / 'cls_configs/mobilemamba' / config)
    _assert_pipeline_is_timms(cfg.train_dataloader.dataset.pipeline,
                              _timm_train_transform(_mm_transform_kwargs(variant)))


# ---- validation cadence ------------------------------------------------------------------------
def test_mobilemamba_validates_when_the_official_trainer_tests():
    """The official trainer tests after epoch e (from 1) when e >= test_start_epoch or
    e % test_per_epoch == 0; mmengine's EpochBasedTrainLoop decides its interval per epoch."""
    from mmengine.runner import EpochBasedTrainLoop
    c = MM_CONFIG['s6']['trainer']
    cfg = load_config(REPO / 'cls_configs/mobilemamba/mobilemamba-s6_in1k.py')
    t = cfg.train_cfg
    loop = EpochBasedTrainLoop(None, torch.utils.data.DataLoader(range(4)), t.max_epochs,
                               val_begin=t.get('val_begin', 1), val_interval=t.val_interval,
                               dynamic_intervals=t.get('dynamic_intervals'))
    ours = []
    for epoch in range(t.max_epochs):
        loop._epoch = epoch + 1              # as run_epoch() leaves it
        loop._decide_current_val_interval()  # as run() does after each epoch, before deciding
        # run()'s condition for validating after the epoch:
        if loop._epoch >= loop.val_begin and (loop._epoch % loop.val_interval == 0
                                              or loop._epoch == loop._max_epochs):
            ours.append(loop._epoch)
    official = [e for e in range(1, c['epoch_full'] + 1)
                if e >= c['test_start_epoch'] or e % c['test_per_epoch'] == 0]
    assert ours == official


# ---- parameters without weight decay -----------------------------------------------------------
def _our_no_decay(cfg: Config, scope: str) -> set:
    """Names of the parameters our config's optimizer wrapper gives weight decay 0 (mmengine's
    own constructor on our model; AMP's wrapper swapped for the plain one, which has the same
    parameter groups and builds on a CPU)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope, MODELS
    init_default_scope(scope)
    import importlib
    for module in cfg.get('custom_imports', {}).get('imports', []):
        importlib.import_module(module)
    model = MODELS.build(cfg.model)
    optim = copy.deepcopy(cfg.optim_wrapper)
    optim.type = 'OptimWrapper'
    optim.pop('loss_scale', None)
    wrapper = build_optim_wrapper(model, optim)
    names = {id(p): n for n, p in model.named_parameters()}
    base_wd = optim.optimizer.weight_decay
    assert base_wd > 0
    return {names[id(p)] for g in wrapper.optimizer.param_groups if g['weight_decay'] == 0
            for p in g['params']}


def test_mambavision_imagenet_no_decay_is_timms_on_the_official_model(official_mambavision):
    """timm's create_optimizer_v2 as train.py calls it, on the official MambaVision-T."""
    from timm.optim import create_optimizer_v2
    mamba_vision_T = official_mambavision[0].mamba_vision_T
    from backbones.convert import convert
    y = MV_YAML['T']
    official = mamba_vision_T()
    opt = create_optimizer_v2(official, opt=y['opt'], lr=y['lr'], weight_decay=y['weight_decay'])
    names = {id(p): n for n, p in official.named_parameters()}
    off = [names[id(p)] for g in opt.param_groups if g['weight_decay'] == 0 for p in g['params']]
    official_no_decay = set(convert('mambavision', {n: torch.zeros(1) for n in off}))
    cfg = _mv_config('T')
    assert _our_no_decay(cfg, 'mmpretrain') == official_no_decay


def test_mobilemamba_imagenet_no_decay_is_the_official_split():
    from backbones.convert import convert
    off = FIXTURE['mobilemamba']['in1k_no_decay']
    official_no_decay = set(convert('mobilemamba', {n: torch.zeros(1) for n in off['no_decay']}))
    cfg = load_config(REPO / 'cls_configs/mobilemamba/mobilemamba-s6_in1k.py')
    assert _our_no_decay(cfg, 'mmpretrain') == official_no_decay


def _norm_rule(names) -> set:
    """The official downstream configs' rule: no decay where the name contains 'norm'."""
    return {n for n in names if 'norm' in n}


@pytest.mark.parametrize('task, config, log', [
    ('det', 'det_configs/mobilemamba/mask-rcnn_mobilemamba-b1_fpn_1x_coco.py', 'det/maskrcnn'),
    ('seg', 'seg_configs/mobilemamba/fpn_mobilemamba-b4_512x512_160k_ade20k.py', 'seg/fpn'),
])
def test_mobilemamba_downstream_no_decay_is_the_official_logs(task, config, log):
    from backbones.convert import convert
    logged = FIXTURE['mobilemamba']['downstream_no_decay'][log]
    assert len(logged) == 14 and _norm_rule(logged) == set(logged)
    official = set(convert('mobilemamba', {n: torch.zeros(1) for n in logged}))
    cfg = load_config(REPO / config)
    assert _our_no_decay(cfg, 'mmdet' if task == 'det' else 'mmseg') == official


@pytest.mark.parametrize('task, config', [
    ('det', 'det_configs/mambavision/mask-rcnn_mambavision-t_fpn_1x_coco.py'),
    ('seg', 'seg_configs/mambavision/upernet_mambavision-t_512x512_160k_ade20k.py'),
])
def test_mambavision_downstream_no_decay_is_the_official_norm_rule(task, config):
    """The official 'norm' key on the official downstream backbone's parameters (mmdet's and
    mmseg's heads are the same modules on both sides and have no 'norm' in their names)."""
    from backbones.convert import convert
    params = FIXTURE['mambavision']['downstream_params']['T']  # the generator refuses to omit it
    assert params
    official = set(convert('mambavision', {'backbone.' + n: torch.zeros(1)
                                           for n in _norm_rule(params)}))
    assert any('outnorm' in n for n in official) and not any('patch_embed' in n
                                                             for n in official)
    cfg = load_config(REPO / config)
    assert _our_no_decay(cfg, 'mmdet' if task == 'det' else 'mmseg') == official


# ---- the parts the configs use (engine/lr_schedulers.py, engine/transforms.py) ----------------
def test_timm_cosine_refuses_an_accumulation_the_optimizer_wrapper_does_not_have():
    from mmengine.optim import OptimWrapper
    from engine.lr_schedulers import TimmCosineLR
    wrapper = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0),
                           accumulative_counts=4)
    with pytest.raises(ValueError, match='accumulation=1 but the optimizer wrapper accumulates 4'):
        TimmCosineLR(wrapper, cycle=100, warmup=10, by_epoch=False)
    sched = TimmCosineLR(wrapper, cycle=100, warmup=8, warmup_factor=0.5, accumulation=4,
                         by_epoch=False)
    values = [wrapper.param_groups[0]['lr']]
    for _ in range(11):
        sched.step()
        values.append(wrapper.param_groups[0]['lr'])
    # One value per optimizer step of 4 iterations: 0.5, then 0.5 + 1 x 0.5 / 2, then step 2.
    assert values[:4] == [0.5] * 4 and values[4:8] == [0.75] * 4
    assert values[8] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 25)))


def test_step_aligned_sampler_keeps_whole_optimizer_steps():
    from engine.samplers import StepAlignedSampler, aligned_samples
    sampler = StepAlignedSampler(range(1000), shuffle=True, seed=0, images_per_step=96)
    indices = list(sampler)
    assert len(indices) == len(sampler) == aligned_samples(1000, 1, 96) == 960
    assert len(set(indices)) == 960
    # A rank with less than one step (a cost pilot's few images) keeps them all.
    assert len(StepAlignedSampler(range(50), images_per_step=96, seed=0)) == 50
    assert len(StepAlignedSampler(range(1000), seed=0)) == 1000
    with pytest.raises(ValueError, match='images_per_step'):
        StepAlignedSampler(range(10), images_per_step=0, seed=0)


def test_random_interpolation_draws_bilinear_and_bicubic_per_image_and_per_op():
    import numpy as np
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS
    import engine.transforms  # noqa: F401
    init_default_scope('mmpretrain')
    from engine.transforms import RANDOM_INTERPOLATIONS
    np.random.seed(0)
    img = np.random.randint(0, 255, (48, 64, 3), dtype=np.uint8)
    crop = TRANSFORMS.build(dict(type='RandomInterpResizedCrop', scale=32, backend='pillow',
                                 interpolation='random'))
    drawn = set()
    for _ in range(40):
        out = crop(dict(img=img.copy()))
        assert out['img'].shape == (32, 32, 3)
        drawn.add(crop.interpolation)
    assert drawn == set(RANDOM_INTERPOLATIONS)
    fixed = TRANSFORMS.build(dict(type='RandomInterpResizedCrop', scale=32,
                                  interpolation='bilinear'))
    fixed(dict(img=img.copy()))
    assert fixed.interpolation == 'bilinear'
    ra = TRANSFORMS.build(dict(type='RandomInterpRandAugment', policies='timm_increasing',
                               num_policies=2, magnitude_level=9, magnitude_std=0.5,
                               hparams=dict(pad_val=128, interpolation='random')))
    resampling = [op for op in ra.transforms if hasattr(op, 'interpolation')]
    assert {type(op).__name__ for op in resampling} >= {'Rotate', 'Shear', 'Translate'}
    seen = set()
    for _ in range(200):
        assert ra(dict(img=img.copy()))['img'].shape == img.shape
        seen |= {op.interpolation for op in resampling}
    assert seen == set(RANDOM_INTERPOLATIONS)


# ---- what is not fixed is recorded -------------------------------------------------------------
@pytest.mark.parametrize('variant', list(MV_YAML))
def test_a_validation_crop_other_than_the_yamls_is_a_recorded_deviation(variant):
    """The official training validates every epoch at its yaml's crop_pct and picks the best
    epoch by it; where our config validates at another crop, the fidelity record says so."""
    from ablations.recipes import MAMBAVISION_TRAIN_VAL_CROP
    crop_pct = MV_YAML[variant]['crop_pct']
    assert MAMBAVISION_TRAIN_VAL_CROP[variant] == crop_pct
    cfg = _mv_config(variant)
    resize = next(t.scale for t in cfg.val_dataloader.dataset.pipeline if t.type == 'ResizeEdge')
    from ablations.compose import apply_global_batch
    record = apply_global_batch(cfg, 32)
    recorded = [d for d in record['deviations'] if d.startswith('validation during training')]
    assert bool(recorded) == (resize != int(224 / crop_pct)), (resize, recorded)


# ---- downstream: optimizer and lr at every step against the official mmdet/mmseg configs -------
COCO_TRAIN = 117266  # train2017 images with annotations (mmdet's filter_empty_gt)
DOWNSTREAM = [
    *[('det_configs/mambavision/cascade-mask-rcnn_mambavision-{}_fpn_3x_coco.py'.format(v),
       'mambavision', f'cascade_{v}') for v in 'tsb'],
    *[('seg_configs/mambavision/upernet_mambavision-{}_512x512_160k_ade20k.py'.format(v),
       'mambavision', f'upernet_{v}') for v in 'tsb'],
    ('det_configs/mobilemamba/mask-rcnn_mobilemamba-b1_fpn_1x_coco.py', 'mobilemamba',
     'maskrcnn'),
    ('det_configs/mobilemamba/retinanet_mobilemamba-b1_fpn_1x_coco.py', 'mobilemamba',
     'retinanet'),
    ('seg_configs/mobilemamba/fpn_mobilemamba-b4_512x512_160k_ade20k.py', 'mobilemamba', 'fpn'),
    ('seg_configs/mobilemamba/deeplabv3_mobilemamba-b4_512x512_80k_ade20k.py', 'mobilemamba',
     'deeplabv3'),
    ('seg_configs/mobilemamba/pspnet_mobilemamba-b4_512x512_80k_ade20k.py', 'mobilemamba',
     'pspnet'),
]
# Keys of the official configs' paramwise_cfg copied from Swin / PVT configs: no parameter of
# these models has them in its name (the no-decay tests above compare the resulting sets).
UNMATCHED_KEYS = {'absolute_pos_embed', 'relative_position_bias_table', 'pos_block'}


def _downstream_lrs(optim: dict, schedulers: list, train_cfg: dict, global_batch: int,
                    accumulation: int = 1) -> list[float]:
    if 'max_epochs' in train_cfg:
        length = math.ceil(COCO_TRAIN / global_batch) * accumulation
        return mmengine_lrs(schedulers, optim['optimizer']['lr'], accumulation,
                            epochs=train_cfg['max_epochs'], length=length)
    return mmengine_lrs(schedulers, optim['optimizer']['lr'], accumulation, epochs=1,
                        length=train_cfg['max_iters'], by_epoch=False)


# quick tier: one config per family and task (tests/tiers.py)
@pytest.mark.parametrize('config, family, key', first_of_each(
    DOWNSTREAM, lambda case: (case[1], case[0].split('/')[0])))
def test_downstream_optimizer_and_lr_at_every_step_equal_the_official_configs(config, family,
                                                                               key):
    from ablations.compose import apply_global_batch
    off = FIXTURE[family]['downstream_configs'][key]
    cfg = load_config(REPO / config)
    record = apply_global_batch(cfg, None)  # the official GPU count
    # The official global batch (GPUs x images per GPU of the official run).
    assert record['effective_batch'] == get_recipe(cfg.recipe).global_batch
    ours, theirs = cfg.optim_wrapper.to_dict(), off['optim_wrapper']
    for k in ('type', 'lr', 'weight_decay', 'betas'):
        assert tuple(ours['optimizer'].get(k) or ()) == tuple(theirs['optimizer'].get(k) or ()) \
            if k == 'betas' else ours['optimizer'][k] == theirs['optimizer'][k], k
    assert ours.get('clip_grad') == theirs.get('clip_grad')
    keys = dict(theirs.get('paramwise_cfg', {}).get('custom_keys', {}))
    assert ours['paramwise_cfg'] == dict(custom_keys={k: v for k, v in keys.items()
                                                      if k not in UNMATCHED_KEYS})
    assert ('max_epochs' in cfg.train_cfg) == ('max_epochs' in off['train_cfg'])
    assert cfg.train_cfg.get('max_epochs', cfg.train_cfg.get('max_iters')) == \
        off['train_cfg'].get('max_epochs', off['train_cfg'].get('max_iters'))
    batch = record['effective_batch']
    _assert_same_curve(
        _downstream_lrs(ours, cfg.param_scheduler, cfg.train_cfg.to_dict(), batch),
        _downstream_lrs(theirs, off['param_scheduler'], off['train_cfg'], batch))
