# PSPNet 512x512 80k on ADE20K with a MobileMamba-B4 backbone (official README: 36.9 mIoU,
# 20.5M params, 4.5 GFLOPs). Only the decode head differs from the DeepLabv3 config (same
# backbone, auxiliary head, schedule and recipe, as in the public copy of the official configs):
# mmseg's PSPNet head (_base_/models/pspnet_r50-d8.py) on the last stage (448 channels,
# stride 64) with 256 channels; 20.5M is exactly B4 plus this head.
_base_ = './deeplabv3_mobilemamba-b4_512x512_80k_ade20k.py'

model = dict(
    decode_head=dict(
        _delete_=True,
        type='PSPHead',
        in_channels=448,
        in_index=2,
        channels=256,
        pool_scales=(1, 2, 3, 6),
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
