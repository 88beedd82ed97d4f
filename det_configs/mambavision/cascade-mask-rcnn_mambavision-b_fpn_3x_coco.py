# Cascade Mask R-CNN 3x on COCO with a MambaVision-B backbone (paper Table 2; published B: 145M
# params, 964 GFLOPs, 52.8 AP box / 45.7 AP mask). The variant (layer scale 1e-5 included) and the
# FPN widths change; drop_path_rate stays 0.2 (see the -t config).
_base_ = './cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py'

model = dict(backbone=dict(arch='B'), neck=dict(in_channels=[128, 256, 512, 1024]))
# The official B config, unlike T and S, trains with lr 2e-4 (same batch of 2 x 8 GPUs).
optim_wrapper = dict(optimizer=dict(lr=2e-4))
