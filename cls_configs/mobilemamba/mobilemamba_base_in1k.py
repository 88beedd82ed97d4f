# MobileMamba on ImageNet-1K: the official recipe (README / official training logs) on
# mmpretrain's own base files. Variants (mobilemamba-{t2,t4,s6,b1,b2,b4}_in1k.py) set the arch,
# the head width and the resolution; the dagger child adds 1000 epochs + distillation.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
    '../timm_in1k_train.py',
]
custom_imports = dict(imports=['backbones', 'engine.lr_schedulers', 'engine.samplers',
                               'engine.ema', 'backbones.mobilemamba_head',
                               'engine.transforms'], allow_failed_imports=False)
# The official global batch and lr rule (ablations/recipes.py): kept at any GPU count by
# ablations/compose.py with gradient accumulation.
recipe = 'mobilemamba-in1k'

model = dict(
    type='ImageClassifier',
    # The official configuration is the constructor's default; every flag is spelled out here
    # so that an ablation row's override reads against it.
    backbone=dict(
        type='MobileMamba',
        arch='S6',
        global_ratio=(0.8, 0.7, 0.6),
        local_ratio=(0.2, 0.2, 0.3),
        kernels=(7, 5, 3),
        mrffi_cfg=dict(wavelet=True, identity=True, local_op='single', local_kernels=None,
                       scan='bi'),
        stages=3,
        out_indices=None,  # all stages; the head reads the last
        drop_path_rate=None),  # the variant's own (0 for T/S, 0.03 for B)
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BNLinearClsHead',
        num_classes=1000,
        in_channels=448,
        # label smoothing 0.1 (mixup/cutmix targets are smoothed the same way)
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)),
    # mixup 0.8 / cutmix 1.0, one of the two per batch (timm: switch_prob 0.5, prob 1.0)
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

# The official runs: 8 GPUs x 128 = 1024 images per step. The official training transform is
# timm's (../timm_in1k_train.py, configs/mobilemamba/*.py); the test crop is 0.875 (short edge
# size/0.875, bicubic, centre crop). Both at each variant's resolution: a variant picks its pair,
# e.g. `pipeline={{_base_._pipelines.r256.train}}`. This file's own default is S6's 224 px.


def _test_at(size: int) -> list:
    return [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=int(size / 0.875), edge='short', backend='pillow',
             interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=size),
        dict(type='PackInputs'),
    ]


_pipelines = dict(
    r192=dict(train={{_base_._timm_train.r192}}, test=_test_at(192)),
    r224=dict(train={{_base_._timm_train.r224}}, test=_test_at(224)),
    r256=dict(train={{_base_._timm_train.r256}}, test=_test_at(256)),
    r384=dict(train={{_base_._timm_train.r384}}, test=_test_at(384)),
    r512=dict(train={{_base_._timm_train.r512}}, test=_test_at(512)),
)
# The official loader drops each rank's last incomplete batch (1251 steps per epoch); with
# gradient accumulation ablations/compose.py has the sampler keep whole optimizer steps.
train_dataloader = dict(batch_size=128, drop_last=True,
                        sampler=dict(type='StepAlignedSampler', shuffle=True),
                        dataset=dict(pipeline=_pipelines['r224']['train']))
val_dataloader = dict(batch_size=125, dataset=dict(pipeline=_pipelines['r224']['test']))
test_dataloader = val_dataloader

# AdamW, lr 1.5e-3 per 512 images (the official rule), so 3e-3 at the official 1024; wd 0.05, no
# decay on norms, biases and other 1-D parameters (timm's filter_bias_and_bn), grad clip 5, AMP
# (the official runs use native AMP). ablations/compose.py keeps the batch of 1024 at any GPU count
# (or scales the lr by the rule where it cannot), so mmengine's auto_scale_lr stays off: it would
# not count gradient accumulation.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=3e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0,
                       flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0),
)
auto_scale_lr = dict(base_batch_size=1024, enable=False)

# timm's CosineLRScheduler as the official get_scheduler sets it (engine/lr_schedulers.py), stepped
# per optimizer step: 20 warm-up epochs from lr/1000 (official warmup_lr 1.5e-6 per 512 images),
# a cosine to lr/100 (lr_min 1.5e-5 per 512) whose phase spans all 300 epochs from step 0,
# warm-up included. The official trainer sets iteration k's lr to the value at k (offset 0).
# The cycle is the training's length: the 1000-epoch dagger config picks
# `param_scheduler = {{_base_._schedules.e1000}}`.
def _schedule(epochs: int) -> list:
    return [dict(type='TimmCosineLR', cycle=epochs, warmup=20, warmup_factor=1e-3,
                 eta_min_factor=1e-2, offset=0, by_epoch=True, convert_to_iter_based=True)]


_schedules = {f'e{e}': _schedule(e) for e in (300, 1000)}
param_scheduler = _schedules['e300']
# Validation (of the EMA model, whose best top-1 is reported) every 5 epochs, then every epoch from
# epoch 200 (official test_per_epoch 5, test_start_epoch 200). mmengine picks the interval after
# each epoch for the next one (milestone m: from epoch m on), so the milestone is 201: with 200
# it would validate after epoch 199 too, which the official runs never evaluated.
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=5, dynamic_intervals=[(201, 1)])

# EMA with decay 0.9998 per optimizer step (mmengine's momentum is 1 - decay; StepEMAHook
# averages once per optimizer step under gradient accumulation too, engine/ema.py); like
# timm's ModelEmaV2 the BN statistics are averaged too. The reported top-1 is the EMA model's.
custom_hooks = [dict(type='StepEMAHook', momentum=2e-4, update_buffers=True,
                     priority='ABOVE_NORMAL')]
# Bounded disk: the last checkpoints (to resume) plus the best EMA top-1, the one reported.
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2,
                                     save_best='accuracy/top1', rule='greater'))
