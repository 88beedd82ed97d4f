# Semantic FPN 512x512 160k on ADE20K with a MobileMamba-B4 backbone (official README: 42.5 mIoU,
# 19.8M params, 5.6 GFLOPs). Inherits mmseg's own Semantic FPN / ADE20K / 160k / runtime bases.
# The FPN and its head stay at the backbone's strides 16, 32, 64 (no stride-4/8 levels, so no
# UpsampleFPN): that is what the public copy of the official config does (num_outs=3,
# feature_strides [16, 32, 64]), and what the published cost allows. At 512 px this config counts
# 19.7M / 5.63 GFLOPs (tools/complexity.py); UpsampleFPN's stride-4/8 levels would make it
# 22.7M / 27.5 GFLOPs.
# Logits at stride 16 are upsampled to the image by the segmentor, as usual.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # drop the base's ResNet weights: the backbone has its own init_cfg
    backbone=dict(
        _delete_=True,
        type='MobileMamba',
        arch='B4',  # B1/B2/B4 are one network; B4's ImageNet weights were trained at 512 px
        out_indices=(0, 1, 2),  # strides 16, 32, 64
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),  # ImageNet weights: Pretrained with prefix='backbone.', as for detection
    neck=dict(in_channels=[200, 376, 448], out_channels=256, num_outs=3),
    decode_head=dict(in_channels=[256, 256, 256], in_index=[0, 1, 2],
                     feature_strides=[16, 32, 64], num_classes=150))

# Official recipe (README: AdamW 1.2e-4 for 4 GPUs x 8 images; the rest from the public copy of
# its config): wd 0.05, no decay on norms, 10x lr on the decode head, 1500-iteration warmup, then
# constant until 80k and a cosine decay to 0 over 80k-160k.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys=dict(head=dict(lr_mult=10.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', begin=80000, end=160000, T_max=80000, by_epoch=False,
         eta_min=0.0),
]
train_dataloader = dict(batch_size=8)
