# DeepLabv3 512x512 80k on ADE20K with a MobileMamba-B4 backbone (official README: 36.6 mIoU,
# 23.4M params, 4.7 GFLOPs). mmseg's DeepLabv3 model base + mobilemamba_ade20k_base.py.
# The ASPP head reads one map: the last stage (448 channels, stride 64), with 256 channels instead
# of the base's 512, as the public copy of the official config; the published cost agrees (ASPP
# with 256 channels on the 8x8 stride-64 map is ~0.4 GFLOPs, B4 alone 4.3). The auxiliary FCN head
# reads the stride-32 stage. The backbone is not dilated, so at 512 px the ASPP's dilations
# (12, 24, 36) reach past the 8x8 map: those branches see little more than their centre tap.
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py',
    './mobilemamba_ade20k_base.py',
]
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # drop the base's ResNet weights: the backbone has its own init_cfg
    backbone={{_base_._backbone}},
    decode_head=dict(in_channels=448, in_index=2, channels=256, num_classes=150),
    auxiliary_head=dict(in_channels=376, in_index=1, num_classes=150))
# The recipe (AdamW 1.2e-4, 4 x 8 images, clip 0.1, 80k): mobilemamba_ade20k_base.py.
