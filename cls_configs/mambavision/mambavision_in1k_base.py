# MambaVision on ImageNet-1K: mmpretrain ImageClassifier with the official head and the official
# training recipe (NVlabs/MambaVision mambavision/configs/mambavision_*_1k.yaml). The variants
# (mambavision-{t,t2,s,b,l,l2}_in1k.py) change the arch (and with it the head's width) and the
# official per-variant values (ablations/recipes.py MAMBAVISION_VARIANTS): MESA weight and start,
# weight decay, warm-up, test crop. This file's own values are T's.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
    '../timm_in1k_train.py',
]
custom_imports = dict(imports=['backbones', 'engine.lr_schedulers', 'engine.samplers',
                               'engine.ema', 'engine.distribute_bn', 'engine.mesa',
                               'engine.transforms'],
                      allow_failed_imports=False)
# The official global batch and lr rule (ablations/recipes.py): kept at any GPU count by
# ablations/compose.py with gradient accumulation.
recipe = 'mambavision-in1k'

# The official head is BatchNorm2d -> global average pool -> Linear. The BatchNorm is the
# backbone's final_norm (its official name `norm` stays inside the backbone), the pool is
# mmpretrain's GlobalAveragePooling and the Linear is LinearClsHead's `fc`, so an official
# checkpoint converts by prefixes alone (tools/convert_checkpoint.py).
# MESA (official train.py): from epoch/epochs > start_ratio on, a KL term towards the EMA model's
# logits on the same batch (engine/mesa.py; needs the EMAHook and MesaHook below).
model = dict(
    type='MesaImageClassifier',
    mesa=dict(weight=0.5, start_ratio=0.25),
    backbone=dict(type='MambaVision', arch='T', out_indices=(3, ), final_norm=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=640,  # dim * 8 of the arch
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        # The official model initialises every Linear trunc-normal(0.02) with zero bias.
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

# Data: the official training transform is timm's (../timm_in1k_train.py) at 224 px. Evaluation
# uses the official crop_pct: resize the short edge to int(224 / crop_pct), centre crop 224
# (timm's eval transform). T, B, L and L2 use 1.0; T2 and S pick their 0.98 and 0.93 from
# _test_pipelines.
train_pipeline = {{_base_._timm_train.r224}}


def _test_pipeline(crop_pct: float) -> list:
    return [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=int(224 / crop_pct), edge='short', backend='pillow',
             interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=224),
        dict(type='PackInputs'),
    ]


# `val_dataloader = dict(dataset=dict(pipeline={{_base_._test_pipelines.crop093}}))`.
_test_pipelines = {f'crop{round(pct * 100):03d}': _test_pipeline(pct) for pct in (1.0, 0.98, 0.93)}
test_pipeline = _test_pipelines['crop100']
# 32 GPUs x 128 images = 4096, the official batch. timm's loader drops each rank's last
# incomplete batch (312 steps per epoch, as the official scheduler counts them); with gradient
# accumulation ablations/compose.py has the sampler keep whole optimizer steps
# (engine/lr_schedulers.py).
train_dataloader = dict(batch_size=128, drop_last=True,
                        sampler=dict(type='StepAlignedSampler', shuffle=True),
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

_lr = 5e-3
# LAMB, lr 5e-3 at batch 4096, weight decay 0.05 (T) off for every 1-D parameter (norms, biases,
# layer scales, the mixer's D: timm's rule; A_log is 2-D and decays, as officially), grad-norm
# clip 5, AMP.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='Lamb', lr=_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=5.0),
)
# timm's CosineLRScheduler as the official scheduler factory sets it (engine/lr_schedulers.py),
# stepped per optimizer step: linear warm-up from 1e-6 over the warm-up epochs (T: 20), a cosine
# to 5e-6 whose phase spans the whole 310-epoch cycle from step 0 (warm-up included), then
# 10 cooldown epochs at 5e-6 (the factory trains cycle + cooldown_epochs = 320 epochs). The
# official train.py sets update k's lr to the value at k + 1 (offset 1).
_cycle_epochs = 310
_cooldown_epochs = 10


def _schedule(warmup_epochs: int) -> list:
    return [dict(type='TimmCosineLR', cycle=_cycle_epochs, warmup=warmup_epochs,
                 warmup_factor=1e-6 / _lr, eta_min_factor=5e-6 / _lr, offset=1, by_epoch=True,
                 convert_to_iter_based=True)]


# A variant with another warm-up picks its own: `param_scheduler = {{_base_._schedules.w35}}`.
_schedules = {f'w{w}': _schedule(w) for w in (20, 35)}
param_scheduler = _schedules['w20']
train_cfg = dict(by_epoch=True, max_epochs=_cycle_epochs + _cooldown_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=4096)

# EMA of the weights, decay 0.9998 per optimizer step (mmengine's momentum is 1 - decay); like
# timm's ModelEmaV2 the BN statistics are averaged too. StepEMAHook averages once per optimizer
# step, also under gradient accumulation (engine/ema.py).
# MesaHook hands the EMA model to the MESA loss, and its progress as the official train.py counts
# it: epoch / 310 (the yaml's `epochs`, the cooldown left out), so T starts at epoch 78.
# DistributeBNHook: the yaml's dist_bn 'reduce', BN statistics averaged over the GPUs after each
# epoch (engine/distribute_bn.py).
custom_hooks = [dict(type='StepEMAHook', momentum=2e-4, update_buffers=True,
                     priority='ABOVE_NORMAL'),
                dict(type='MesaHook', epochs=_cycle_epochs),
                dict(type='DistributeBNHook', mode='reduce')]
# Bounded disk: the last checkpoints (to resume) plus the best EMA top-1 epoch, which the official
# code keeps and reports (the EMA weights are what validation and the saved state_dict hold).
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                                     save_best='accuracy/top1', rule='greater'))
