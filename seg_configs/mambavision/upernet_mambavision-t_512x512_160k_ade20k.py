# UperNet 512x512 160k on ADE20K with a MambaVision-T backbone (paper Table 3; also the
# segmentation setting we use for Table 4, whose head/schedule the paper does not state).
# Inherits mmseg's own UperNet / ADE20K / 160k / runtime bases and changes only what the official
# MambaVision segmentation recipe changes.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='MambaVision',
        arch='T',
        window_size=(8, 8, 64, 32),
        out_indices=(0, 1, 2, 3),
        out_norm=True,
        drop_path_rate=0.2,
        init_cfg=None),
    decode_head=dict(in_channels=[80, 160, 320, 640], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0,
                       custom_keys=dict(A_log=dict(decay_mult=0.0), D=dict(decay_mult=0.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
# 8 GPUs x 2 images.
train_dataloader = dict(batch_size=2)
