# Cascade Mask R-CNN 3x on COCO with a MambaVision-S backbone (paper Table 2; published S: 108M
# params, 828 GFLOPs, 52.3 AP box / 45.2 AP mask). Everything but the variant and the FPN widths
# comes from the -t config, as in the official S config (drop_path_rate stays 0.2: see there).
_base_ = './cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py'

model = dict(backbone=dict(arch='S'), neck=dict(in_channels=[96, 192, 384, 768]))
