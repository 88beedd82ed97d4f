# Semantic FPN 512x512 160k on ADE20K with a MobileMamba-B4 backbone (official README: 42.5 mIoU,
# 19.8M params, 5.6 GFLOPs). mmseg's Semantic FPN model base + mobilemamba_ade20k_base.py.
# The FPN and its head stay at the backbone's strides 16, 32, 64 (no stride-4/8 levels, so no
# UpsampleFPN): that is what the public copy of the official config does (num_outs=3,
# feature_strides [16, 32, 64]), and what the published cost allows. At 512 px this config counts
# 19.7M / 5.63 GFLOPs (tools/complexity.py); UpsampleFPN's stride-4/8 levels would make it
# 22.7M / 27.5 GFLOPs.
# Logits at stride 16 are upsampled to the image by the segmentor, as usual.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    './mobilemamba_ade20k_base.py',
]
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # drop the base's ResNet weights: the backbone has its own init_cfg
    backbone={{_base_._backbone}},
    neck=dict(in_channels=[200, 376, 448], out_channels=256, num_outs=3),
    decode_head=dict(in_channels=[256, 256, 256], in_index=[0, 1, 2],
                     feature_strides=[16, 32, 64], num_classes=150))

# The official FPN recipe differs from the family base's: 160k iterations, no gradient clipping,
# 10x lr on the decode head, 1500-iteration warmup, then constant until 80k and a cosine decay to
# 0 over 80k-160k.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(head=dict(lr_mult=10.0))),
                     clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', begin=80000, end=160000, T_max=80000, by_epoch=False,
         eta_min=0.0),
]
train_cfg = dict(max_iters=160000, val_interval=16000)
default_hooks = dict(checkpoint=dict(interval=16000))
