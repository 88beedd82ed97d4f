# MobileMamba on ADE20K: what the official segmentation recipes share (README: AdamW 1.2e-4 for
# 4 GPUs x 8 images; the rest from the public copy of its configs), on mmseg's own ADE20K / 80k /
# runtime bases. The Semantic FPN, DeepLabv3 and PSPNet configs add their model base and set
# `backbone={{_base_._backbone}}`.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
# The official global batch (32) and lr rule: ablations/recipes.py.
recipe = 'mobilemamba-ade20k'

_backbone = dict(
    _delete_=True,
    type='MobileMamba',
    arch='B4',  # B1/B2/B4 are one network; B4's ImageNet weights were trained at 512 px
    out_indices=(0, 1, 2),  # strides 16, 32, 64: 200, 376, 448 channels
    frozen_stages=-1,
    norm_eval=False,
    # ImageNet weights: dict(type='Pretrained', checkpoint=..., prefix='backbone.') on a
    # checkpoint converted by tools/convert_checkpoint.py.
    init_cfg=None)

# AdamW 1.2e-4, wd 0.05, no decay on names containing 'norm' (the official key: only the SS2D
# out_norm, every BatchNorm decays), gradient clipping at 0.1, 500-iteration warmup, then
# constant until half-way and a cosine decay to 0 (80k schedule; the FPN config changes these).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=40000, end=80000, T_max=40000, by_epoch=False,
         eta_min=0.0),
]
train_dataloader = dict(batch_size=8)
# Bounded disk: the last two checkpoints; the final model is reported.
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000,
                                     max_keep_ckpts=2))
