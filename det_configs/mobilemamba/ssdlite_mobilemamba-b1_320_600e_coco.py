# SSDLite 320 on COCO with a MobileMamba-B1 backbone (official README: 24.0 AP, 18.0M params,
# 1.7 GFLOPs). Inherits mmdet's SSDLite-MobileNetV2 config (its 320 px pipelines, 120 epochs of a
# 5x repeated COCO = 600 epochs, 24 images x 8 GPUs, anchors) and swaps the backbone and the
# neck's input widths.
_base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)

# The three stages at strides 16, 32, 64 are 20x20, 10x10 and 5x5 maps at 320 px; SSDNeck adds
# three depthwise stride-2 levels (3x3, 2x2, 1x1), giving the six maps the base's anchors (strides
# 16, 32, 64, 107, 160, 320) are laid out for. The public copy of the official config feeds only
# the stride-16/32 stages and makes four extra levels (512, 256, 256, 128) instead, which leaves
# the backbone's last stage unused; using it costs no extra level.
_widths = (200, 376, 448, 256, 256, 128)
model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileMamba',
        arch='B1',
        out_indices=(0, 1, 2),
        frozen_stages=-1,
        norm_eval=True,
        init_cfg=None),  # ImageNet weights: see the Mask R-CNN config
    neck=dict(in_channels=_widths[:3], out_channels=_widths, level_strides=(2, 2, 2),
              level_paddings=(1, 1, 1)),
    bbox_head=dict(in_channels=_widths))

# The base's SGD recipe trains MobileNetV2 from scratch. For the pretrained backbone this follows
# the public copy of the official SSDLite config: AdamW 2.4e-3 for 24 x 8 images, wd 0.05 with no
# decay on norms, gradient clipping at 0.1, 500-iteration warmup, then constant until epoch 60 and
# a cosine decay to 0 over epochs 60-120.
max_epochs = 120
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2.4e-3, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs, T_max=max_epochs // 2,
         by_epoch=True, eta_min=0.0),
]
