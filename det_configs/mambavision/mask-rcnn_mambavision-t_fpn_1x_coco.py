# Mask R-CNN 1x on COCO with a MambaVision-T backbone: the detection setting of the paper's
# Table 4 ablation. mmdet's own Mask R-CNN model base plus the MambaVision COCO recipe
# (mambavision_coco_base.py: backbone, AdamW, 1x schedule, checkpoints).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './mambavision_coco_base.py',
]
model = dict(backbone={{_base_._backbone}}, neck=dict(in_channels=[80, 160, 320, 640]))
