# Mask R-CNN 1x on COCO with a MambaVision-T backbone: the detection setting of the paper's
# Table 4 ablation. Inherits mmdet's own Mask R-CNN / COCO / 1x / runtime bases and changes only
# what the official MambaVision detection recipe changes (backbone, FPN widths, AdamW).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MambaVision',
        arch='T',
        # The official detection backbone enlarges the stage-3/4 windows for ~1333x800 inputs.
        window_size=(8, 8, 112, 56),
        out_indices=(0, 1, 2, 3),
        out_norm=True,
        # The official detection wrapper never forwards its drop_path_rate, so the published
        # runs trained with the variant's own 0.2; we pass it explicitly (honoured here).
        drop_path_rate=0.2,
        # ImageNet weights: the runner points this at the row's own classification checkpoint.
        init_cfg=None),
    neck=dict(in_channels=[80, 160, 320, 640]))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys=dict(A_log=dict(decay_mult=0.0), D=dict(decay_mult=0.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# 8 GPUs x 2 images, as the official recipe.
auto_scale_lr = dict(enable=False, base_batch_size=16)
