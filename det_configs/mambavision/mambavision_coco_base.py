# MambaVision on COCO: what the official detection recipes (NVlabs/MambaVision object_detection/
# configs) share, on mmdet's own COCO instance / 1x / runtime bases. A detector config adds its
# model base and sets `model = dict(backbone={{_base_._backbone}}, ...)`: the Mask R-CNN 1x config
# (the paper's Table 4 setting) and the Cascade Mask R-CNN 3x configs (Table 2).
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
# The official global batch (2 images x 8 GPUs) and lr rule: ablations/recipes.py.
recipe = 'mambavision-coco'

_backbone = dict(
    _delete_=True,
    type='MambaVision',
    arch='T',
    # The official detection backbone enlarges the stage-3/4 windows for ~1333x800 inputs.
    window_size=(8, 8, 112, 56),
    out_indices=(0, 1, 2, 3),
    # One LayerNorm2d per output: the official downstream wrapper's `outnorm{i}`.
    out_norm=True,
    # The official configs ask for 0.2 (T), 0.3 (S), 0.5 (B), but their downstream wrapper
    # never forwards drop_path_rate, so every published run trained with the backbone's
    # default 0.2. 0.2 for every variant reproduces those runs.
    drop_path_rate=0.2,
    # ImageNet weights: the runner points this at the row's own classification checkpoint
    # (dict(type='Pretrained', checkpoint=..., prefix='backbone.')).
    init_cfg=None)

# AdamW 1e-4, wd 0.05, AMP. No decay on parameters whose name contains 'norm', the official key:
# the backbone's norm1/norm2 (conv blocks' BN, mixer/attention blocks' LN) and outnorm{i}; the stem
# BN and the heads' norms decay (ablations/recipes.py records it). Everything else decays, biases
# and the mixers' A_log / D included: mmdet's optimizer constructor reads no `_no_weight_decay`
# flags. tests/test_official_recipes.py checks the set against the official names.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
# 1000-iteration linear warmup, then steps at epochs 8 and 11 of 12 (1x); 3x configs override.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
# Bounded disk: the last two epochs (to resume). The paper reports the final model, which is
# also what a later run would start from.
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
