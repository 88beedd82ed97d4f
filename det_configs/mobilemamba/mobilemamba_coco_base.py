# MobileMamba on COCO: what the official detection recipes share (README and the public copy of
# its configs), on mmdet's own 1x / runtime bases. A detector config adds its model and dataset
# bases and sets `backbone={{_base_._backbone}}`.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['backbones', 'backbones.necks'], allow_failed_imports=False)
# The official global batch (4 GPUs x 4 for Mask R-CNN / RetinaNet) and lr rule:
# ablations/recipes.py. SSDLite names its own.
recipe = 'mobilemamba-coco'

_backbone = dict(
    _delete_=True,
    type='MobileMamba',
    arch='B1',  # drop_path_rate 0.03, as the official detection configs
    out_indices=(0, 1, 2),  # strides 16, 32, 64 (the official code numbers them 1, 2, 3)
    frozen_stages=-1,
    norm_eval=True,
    # ImageNet weights: dict(type='Pretrained', checkpoint=..., prefix='backbone.') on a
    # checkpoint converted by tools/convert_checkpoint.py.
    init_cfg=None)

# AdamW 2e-4, wd 0.05, gradient clipping at 0.1, 500-iteration warmup, then a constant lr until
# epoch 6 and a cosine decay to 0 over epochs 6-12. No decay on names containing 'norm', the
# official key, which in this backbone matches only the SS2D out_norm (14 parameters in the
# official Mask R-CNN log): every BatchNorm decays (ablations/recipes.py records it).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=6, end=12, T_max=6, by_epoch=True, eta_min=0.0),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
# Bounded disk: the last two epochs (to resume); the final model is reported.
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
