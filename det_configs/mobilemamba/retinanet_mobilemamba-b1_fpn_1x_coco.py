# RetinaNet 1x on COCO with a MobileMamba-B1 backbone (official README: 39.6 AP, 27.1M params,
# 151 GFLOPs). Inherits mmdet's own RetinaNet / COCO / 1x / runtime bases. RetinaNet's levels are
# strides 8..128: UpsampleFPN makes one transposed-conv level (16 -> 8), keeps the three stages
# (16, 32, 64) and adds a stride-2 conv on the stride-64 backbone map (128), as the official
# EfficientViT-style FPN with num_extra_trans_convs=1 and add_extra_convs='on_input' does.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['backbones', 'backbones.necks'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileMamba',
        arch='B1',
        out_indices=(0, 1, 2),  # strides 16, 32, 64
        frozen_stages=-1,
        norm_eval=True,
        init_cfg=None),  # ImageNet weights: see the Mask R-CNN config
    neck=dict(
        _delete_=True,
        type='UpsampleFPN',
        in_channels=[200, 376, 448],
        out_channels=256,
        num_upsamples=1,
        add_extra_convs='on_input',
        num_outs=5))  # strides 8, 16, 32, 64, 128: the base's anchor strides

# Same recipe as the Mask R-CNN config (AdamW 2e-4, 2 x 8 images, clip 0.1, cosine over 6-12).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=6, end=12, T_max=6, by_epoch=True, eta_min=0.0),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
