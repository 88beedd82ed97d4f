# Mask R-CNN 1x on COCO with a MobileMamba-B1 backbone (official README: 40.6 AP box / 37.4 AP
# mask, 38.0M params, 178 GFLOPs; ImageNet weights without distillation).
# mmdet's Mask R-CNN and COCO bases + mobilemamba_coco_base.py. The backbone's three stages sit at
# strides 16, 32, 64, while the RPN and RoI heads expect 4..64: UpsampleFPN (backbones/necks.py)
# adds two transposed-conv levels (16 -> 8 -> 4) to an FPN over the three stages, as the official
# EfficientViT-style FPN with num_extra_trans_convs=2 does.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    './mobilemamba_coco_base.py',
]

model = dict(
    backbone={{_base_._backbone}},
    neck=dict(
        _delete_=True,
        type='UpsampleFPN',
        in_channels=[200, 376, 448],
        out_channels=256,
        num_upsamples=2,
        num_outs=5))  # strides 4, 8, 16, 32, 64: what the base's RPN anchors and RoI heads use
# The recipe (AdamW 2e-4, clip 0.1, cosine over epochs 6-12): mobilemamba_coco_base.py.
# 4 GPUs x 4 images, as the official runs.
train_dataloader = dict(batch_size=4)
