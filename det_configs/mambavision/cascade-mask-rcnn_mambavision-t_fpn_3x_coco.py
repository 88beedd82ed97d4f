# Cascade Mask R-CNN 3x on COCO with a MambaVision-T backbone: the paper's main COCO table
# (Table 2; published T: 86M params, 740 GFLOPs, 51.1 AP box / 44.3 AP mask).
# Follows the official detection config (NVlabs/MambaVision,
# object_detection/configs/mamba_vision/cascade_mask_rcnn_mamba_vision_tiny_3x_coco.py): mmdet's
# Cascade Mask R-CNN model base plus the MambaVision COCO recipe (mambavision_coco_base.py);
# 4conv1fc GIoU box heads, DETR-style multi-scale + crop training, 36 epochs (steps 27, 33),
# AdamW 1e-4, AMP, 2 images x 8 GPUs.
# The -s and -b children change only the backbone variant and the FPN widths.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    './mambavision_coco_base.py',
]

# The three cascade stages differ only in their box-coder stds (tighter at each stage).
_cascade_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
model = dict(
    backbone={{_base_._backbone}},
    neck=dict(in_channels=[80, 160, 320, 640]),
    roi_head=dict(bbox_head=[
        dict(
            type='ConvFCBBoxHead',
            num_shared_convs=4,
            num_shared_fcs=1,
            in_channels=256,
            conv_out_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                            target_stds=stds),
            reg_class_agnostic=False,
            # GIoU on decoded boxes, as the official config and mmdet's ConvNeXt cascade 3x.
            reg_decoded_bbox=True,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stds in _cascade_stds
    ]))

# The paper's "1280x800" is the usual 1333x800 scale; training follows the official config's
# DETR / Sparse R-CNN augmentation: either multi-scale resize (short side 480-800, long <= 1333),
# or resize (400-600) -> random crop (384-600) -> multi-scale resize.
_multiscale = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
               (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=_multiscale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=_multiscale, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]

# 8 GPUs x 2 images, AdamW 1e-4, AMP: the family base (mambavision_coco_base.py).
