"""World-size invariance of the ImageNet recipes as they run (issue 32): 1 process x gradient
accumulation 4, 2 x 2 and 4 x 1 (gloo processes on this CPU) train the same steps.

The recipe's own parts, built by the real ``build_row_config`` and ``apply_global_batch``:
``StepAlignedSampler`` (each rank keeps whole optimizer steps), ``TimmCosineLR`` with its warm-up
and the accumulation it is told, LAMB (MambaVision) or AdamW (MobileMamba) with the recipe's
paramwise rules and gradient clipping, ``StepEMAHook`` at the recipe's momentum, MESA on from
the first iteration (MambaVision), ``DistributeBNHook``. What is changed, and why:
- the sizes: the smoke model and 36 of the tiny images (not a whole number of 8-image steps, so
  the sampler's alignment matters), 8 images per step, 2 epochs, warm-up a quarter of them;
- BatchNorm runs on its running statistics, the heads' included: batch statistics are per
  process by design, over other micro-batches at each world size;
- the training pipeline is the deterministic validation one, and mixup/cutmix are off: random
  augmentation draws per process by design, so pixels differ across world sizes (in the
  official trainers too), though not in distribution;
- float64 instead of AMP: it is what lets the tolerance below be tight.
Both are set in the training processes by ``tests/invariance_training.py``, which says why.
After 8 optimizer steps the weights, the EMA weights and the lr logged at every step agree, and
the lr is timm's ``CosineLRScheduler`` stepped as the official trainer steps it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ablations import recipes
from ablations.compose import apply_global_batch, build_row_config
from runs.executors.launch import distributed_command
from runs.executors.process_layout import process_layout
from runs.datasets.tiny_datasets import make_tiny_datasets
from toy_training import PYTHONPATH

REPO = Path(__file__).resolve().parent.parent
LAYOUTS = ((1, 4), (2, 2), (4, 1))   # (processes, gradient accumulation)
PER_PROCESS_BATCH = 2
STEP_IMAGES = 8                      # images per optimizer step at every layout
TRAIN_IMAGES = 36                    # 4 whole steps per epoch and 4 images left over
EPOCHS = 2
WARMUP_EPOCHS = 0.5
STEPS = EPOCHS * (TRAIN_IMAGES // STEP_IMAGES)
# float64 (see tests/invariance_training.py): the layouts differ in the order of gradient sums.
# The mixers' scan computes in float32 as the official one does (A_log is a float32 parameter;
# A, D and the dt bias enter it as .float()), so the gradients through it carry float32
# rounding, about 1e-7 of their summands; the optimizers' update is then about 1e-7 of the lr
# per step, 8 steps at lr <= 5e-3: 4e-9 (1e-8 allowed). A float32 tensor (A_log, and its EMA
# rounded to float32 at every update) may differ by two ulps of its largest value. Measured: see
# the note of issue 32.
FLOAT64_ATOL = 1e-8
FLOAT32_ULPS = 2
LR_RTOL = 1e-12   # the same closed form at the same step: rounding only
RECIPES = {'mambavision': ('table4', 'conv2-concat'), 'mobilemamba': ('mobilemamba_mrffi',
                                                                     'official')}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_tiny_datasets(tmp_path_factory.mktemp('data'))


def recipe_config(table: str, row: str, data: Path, work_dir: Path, world: int):
    """The full recipe of ``row`` at tiny size, its global batch kept on ``world`` processes by
    the real ``apply_global_batch`` (the recipe's global batch set to STEP_IMAGES)."""
    cfg = build_row_config(table, row, 'cls', profile='full', data_root=data, work_dir=work_dir)
    smoke = build_row_config(table, row, 'cls', profile='smoke', data_root=data)
    assert cfg.optim_wrapper.get('accumulative_counts', 1) == 1  # the official GPU count
    cfg.model = smoke.model  # smoke widths, 4 classes; no mixup/cutmix (random per process)
    cfg.data_preprocessor = smoke.data_preprocessor
    if cfg.model.type == 'MesaImageClassifier':
        # progress (epoch / epochs) > start_ratio from the first iteration on
        cfg.model.mesa = dict(cfg.model.mesa, start_ratio=-1.0)
    dataset = smoke.train_dataloader.dataset
    dataset.pipeline = smoke.val_dataloader.dataset.pipeline
    dataset.indices = TRAIN_IMAGES
    loader = cfg.train_dataloader
    loader.dataset, loader.batch_size = dataset, PER_PROCESS_BATCH
    loader.num_workers, loader.persistent_workers = 0, False
    cfg.train_cfg = dict(by_epoch=True, max_epochs=EPOCHS, val_interval=EPOCHS + 1)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    [scheduler] = cfg.param_scheduler
    scheduler.update(cycle=EPOCHS, warmup=WARMUP_EPOCHS)
    for hook in cfg.custom_hooks:
        if hook.type == 'MesaHook':
            hook.epochs = EPOCHS
    cfg.optim_wrapper.type = 'OptimWrapper'  # float64 on CPU, not AMP
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=True, interval=EPOCHS)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_imports.imports = ['invariance_training', *cfg.custom_imports.imports]
    cfg.custom_hooks.append(dict(type='RunningStatsBatchNormHook'))
    # The real accumulation plan, for a recipe whose global batch is STEP_IMAGES.
    recipe = recipes.get_recipe(cfg.recipe)
    tiny = replace(recipe, global_batch=STEP_IMAGES, gpus=STEP_IMAGES // PER_PROCESS_BATCH)
    saved = recipes.RECIPES[recipe.name]
    recipes.RECIPES[recipe.name] = tiny
    try:
        cfg.fidelity = apply_global_batch(cfg, world)
    finally:
        recipes.RECIPES[recipe.name] = saved
    return cfg


def start(table: str, row: str, data: Path, work_dir: Path, world: int, accumulation: int):
    """The layout's training, started (the layouts train side by side: independent runs, each
    deterministic, on a port of its own)."""
    work_dir.mkdir(parents=True)
    cfg = recipe_config(table, row, data, work_dir, world)
    assert cfg.fidelity['accumulation'] == accumulation
    assert cfg.train_dataloader.sampler.type == 'StepAlignedSampler'
    config = work_dir / 'config.py'
    cfg.dump(str(config))
    layout = process_layout(world, 'pytorch' if world > 1 else 'none', 'cpu')
    command = distributed_command('engine.trainer', [str(config), '--work-dir', str(work_dir)],
                                  layout, str(work_dir))
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, OMP_NUM_THREADS='1')
    with (work_dir / 'stderr.txt').open('w') as log:
        return cfg, subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                     stderr=log)


def finish(work_dir: Path, started) -> dict:
    cfg, process = started
    process.wait()
    stderr = (work_dir / 'stderr.txt').read_text()
    errors = [line for line in stderr.splitlines() if 'Error' in line]
    assert process.returncode == 0, (errors[-1:], stderr[-3000:])
    [saved] = work_dir.glob('*.pth')
    [scalars] = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return dict(config=cfg, records=records,
                checkpoint=torch.load(saved, map_location='cpu', weights_only=False))


def timm_lrs(cfg) -> list[float]:
    """The lr of each optimizer step from timm's ``CosineLRScheduler``, stepped as the official
    trainer steps it (the scheduler's ``offset``): MambaVision's train.py calls
    ``step_update(num_updates + 1)`` before each update, MobileMamba's trainer ``step(it)``."""
    from timm.scheduler import CosineLRScheduler
    [ours] = cfg.param_scheduler
    lr = cfg.optim_wrapper.optimizer.lr
    steps_per_epoch = STEPS // EPOCHS
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = CosineLRScheduler(opt, t_initial=EPOCHS * steps_per_epoch,
                              warmup_t=int(WARMUP_EPOCHS * steps_per_epoch),
                              warmup_lr_init=lr * ours.warmup_factor,
                              lr_min=lr * ours.eta_min_factor, t_in_epochs=ours.offset == 0)
    lrs = []
    for step in range(STEPS):
        if ours.offset == 1:
            sched.step_update(num_updates=step + 1)
        else:
            sched.step(step)
        lrs.append(opt.param_groups[0]['lr'])
    return lrs


def step_lrs(records: list[dict], accumulation: int) -> list[float]:
    """The lr logged at the last iteration of each optimizer step (that step's update)."""
    by_iteration = {r['step']: r['lr'] for r in records if 'lr' in r}
    assert sorted(by_iteration) == list(range(1, STEPS * accumulation + 1))
    return [by_iteration[(k + 1) * accumulation] for k in range(STEPS)]


def assert_same_weights(ours: dict, reference: dict, what: str) -> None:
    assert ours.keys() == reference.keys(), what
    worst = {}
    for name, value in ours.items():
        if not torch.is_floating_point(value):
            assert torch.equal(value, reference[name]), (what, name)
            continue
        atol = FLOAT64_ATOL if value.dtype == torch.float64 else \
            FLOAT32_ULPS * torch.finfo(value.dtype).eps * reference[name].abs().max().item()
        torch.testing.assert_close(value, reference[name], atol=atol, rtol=0,
                                   msg=lambda m: f'{what} {name}: {m}')
        diff = (value - reference[name]).abs().max().item()
        worst[value.dtype] = max(worst.get(value.dtype, (0.0, '')), (diff, name))
    print(f'{what}: max abs difference ' + ', '.join(
        f'{str(dtype)[6:]} {diff:.2e} ({name})' for dtype, (diff, name) in worst.items()),
        file=sys.__stderr__)


@pytest.mark.slow
@pytest.mark.parametrize('family', sorted(RECIPES))
def test_world_size_invariance_of_the_recipe(family, data, tmp_path):
    table, row = RECIPES[family]
    started = {}
    try:
        for world, acc in LAYOUTS:
            started[world, acc] = start(table, row, data, tmp_path / f'{world}x{acc}', world, acc)
        runs = {(world, acc): finish(tmp_path / f'{world}x{acc}', started[world, acc])
                for world, acc in LAYOUTS}
    finally:  # a failed layout leaves no training behind
        for _, process in started.values():
            if process.poll() is None:
                process.terminate()  # torchrun passes it on to its workers
    reference = runs[(4, 1)]['checkpoint']
    official = timm_lrs(runs[(4, 1)]['config'])
    # the warm-up and the cosine both inside the compared steps
    assert official[0] < official[2] and official[-1] < official[2]
    for (world, acc), run in runs.items():
        what = f'{family} {world} x {acc}'
        checkpoint = run['checkpoint']
        assert checkpoint['meta']['iter'] == STEPS * acc, what
        # the EMA averaged once per optimizer step, at every layout
        assert int(checkpoint['ema_state_dict']['steps']) == STEPS, what
        torch.testing.assert_close(step_lrs(run['records'], acc), official, rtol=LR_RTOL,
                                   atol=0, msg=lambda m: f'{what} lr: {m}')
        if family == 'mambavision':  # MESA contributed from the second step on
            mesa = [r['loss_mesa'] for r in run['records'] if 'loss_mesa' in r]
            assert len(mesa) == STEPS * acc and max(mesa) > 1e-3, (what, mesa)
        for key in ('state_dict', 'ema_state_dict'):
            assert_same_weights(checkpoint[key], reference[key], f'{what} {key}')
    # ...and training moved the weights: the compared models are not three untouched copies.
    ema = reference['ema_state_dict']
    moved = max((value - ema[f'module.{name}']).abs().max().item()
                for name, value in reference['state_dict'].items()
                if torch.is_floating_point(value) and 'running' not in name)
    assert moved > 1e3 * FLOAT64_ATOL, moved
