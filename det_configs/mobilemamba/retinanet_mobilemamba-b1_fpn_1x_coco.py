# RetinaNet 1x on COCO with a MobileMamba-B1 backbone (official README: 39.6 AP, 27.1M params,
# 151 GFLOPs). mmdet's RetinaNet and COCO bases + mobilemamba_coco_base.py. RetinaNet's levels are
# strides 8..128: UpsampleFPN makes one transposed-conv level (16 -> 8), keeps the three stages
# (16, 32, 64) and adds a stride-2 conv on the stride-64 backbone map (128), as the official
# EfficientViT-style FPN with num_extra_trans_convs=1 and add_extra_convs='on_input' does.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './mobilemamba_coco_base.py',
]

model = dict(
    backbone={{_base_._backbone}},
    neck=dict(
        _delete_=True,
        type='UpsampleFPN',
        in_channels=[200, 376, 448],
        out_channels=256,
        num_upsamples=1,
        add_extra_convs='on_input',
        num_outs=5))  # strides 8, 16, 32, 64, 128: the base's anchor strides
# The recipe (AdamW 2e-4, clip 0.1, cosine over epochs 6-12): mobilemamba_coco_base.py.
# 4 GPUs x 4 images, as the official runs.
train_dataloader = dict(batch_size=4)
