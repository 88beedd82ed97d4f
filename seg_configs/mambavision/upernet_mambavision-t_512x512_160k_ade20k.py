# UperNet 512x512 160k on ADE20K with a MambaVision-T backbone (paper Table 3; also the
# segmentation setting we use for Table 4, whose head/schedule the paper does not state).
# mmseg's UperNet model base plus the MambaVision ADE20K recipe (mambavision_ade20k_base.py).
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    './mambavision_ade20k_base.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone={{_base_._backbone}},
    decode_head=dict(in_channels=[80, 160, 320, 640], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150))
