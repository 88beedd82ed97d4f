# Mask R-CNN 1x on COCO with a MobileMamba-B1 backbone (official README: 40.6 AP box / 37.4 AP
# mask, 38.0M params, 178 GFLOPs; ImageNet weights without distillation).
# Inherits mmdet's own Mask R-CNN / COCO / 1x / runtime bases. The backbone's three stages sit at
# strides 16, 32, 64, while the RPN and RoI heads expect 4..64: UpsampleFPN (backbones/necks.py)
# adds two transposed-conv levels (16 -> 8 -> 4) to an FPN over the three stages, as the official
# EfficientViT-style FPN with num_extra_trans_convs=2 does.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['backbones', 'backbones.necks'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileMamba',
        arch='B1',  # drop_path_rate 0.03, as the official detection configs
        out_indices=(0, 1, 2),  # strides 16, 32, 64 (the official code numbers them 1, 2, 3)
        frozen_stages=-1,
        norm_eval=True,
        # ImageNet weights: dict(type='Pretrained', checkpoint=..., prefix='backbone.') on a
        # checkpoint converted by tools/convert_checkpoint.py.
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='UpsampleFPN',
        in_channels=[200, 376, 448],
        out_channels=256,
        num_upsamples=2,
        num_outs=5))  # strides 4, 8, 16, 32, 64: what the base's RPN anchors and RoI heads use

# Official recipe (README and the public copy of its configs): AdamW 2e-4 for 2 images x 8 GPUs,
# wd 0.05 with no decay on norms, gradient clipping at 0.1, 500-iteration warmup, then a constant
# lr until epoch 6 and a cosine decay to 0 over epochs 6-12.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=6, end=12, T_max=6, by_epoch=True, eta_min=0.0),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
