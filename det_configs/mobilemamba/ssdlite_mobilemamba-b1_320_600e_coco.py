# SSDLite 320 on COCO with a MobileMamba-B1 backbone (official README: 24.0 AP, 18.0M params,
# 1.7 GFLOPs). The official structure (public copy of its config, built on mmdet's
# SSDLite-MobileNetV2): the stride-16/32 stages feed SSDNeck, which adds four depthwise stride-2
# levels of 512, 256, 256 and 128 channels (20, 10, 5, 3, 2, 1 px maps at 320 px) for the
# SSDLite anchors. The backbone's stride-64 stage is built (its ImageNet weights load) but unused,
# as officially, hence find_unused_parameters for DDP.
# The dataset is mmdet's COCO detection base, repeated 5x for 120 epochs (= 600 epochs), as
# mmdet's SSDLite; the recipe is mobilemamba_coco_base.py with the SSDLite changes below.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    './mobilemamba_coco_base.py',
]
recipe = 'mobilemamba-ssdlite'  # 24 images x 8 GPUs

_widths = (200, 376, 512, 256, 256, 128)
_bn = dict(type='BN', eps=0.001, momentum=0.03)
data_preprocessor = dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=1)
model = dict(
    type='SingleStageDetector',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MobileMamba',
        arch='B1',
        out_indices=(0, 1),  # strides 16, 32
        frozen_stages=-1,
        norm_eval=True,
        init_cfg=None),  # ImageNet weights: see mobilemamba_coco_base.py
    neck=dict(
        type='SSDNeck',
        in_channels=_widths[:2],
        out_channels=_widths,
        level_strides=(2, 2, 2, 2),
        level_paddings=(1, 1, 1, 1),
        l2_norm_scale=None,
        use_depthwise=True,
        norm_cfg=_bn,
        act_cfg=dict(type='ReLU6'),
        init_cfg=dict(type='TruncNormal', layer='Conv2d', std=0.03)),
    bbox_head=dict(
        type='SSDHead',
        in_channels=_widths,
        num_classes=80,
        use_depthwise=True,
        norm_cfg=_bn,
        act_cfg=dict(type='ReLU6'),
        init_cfg=dict(type='Normal', layer='Conv2d', std=0.001),
        # The SSDLite-320 anchors (strides and sizes in pixels of a 320 image).
        anchor_generator=dict(
            type='SSDAnchorGenerator',
            scale_major=False,
            strides=[16, 32, 64, 107, 160, 320],
            ratios=[[2, 3], [2, 3], [2, 3], [2, 3], [2, 3], [2, 3]],
            min_sizes=[48, 100, 150, 202, 253, 304],
            max_sizes=[100, 150, 202, 253, 304, 320]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2])),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.,
                      ignore_iof_thr=-1, gt_max_assign_all=False),
        sampler=dict(type='PseudoSampler'),
        smoothl1_beta=1.,
        allowed_border=-1,
        pos_weight=-1,
        neg_pos_ratio=3,
        debug=False),
    test_cfg=dict(nms_pre=1000, nms=dict(type='nms', iou_threshold=0.45), min_bbox_size=0,
                  score_thr=0.02, max_per_img=200))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)


def _pipelines(input_size: int) -> dict:
    return dict(
        train=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Expand', mean=data_preprocessor['mean'],
                 to_rgb=data_preprocessor['bgr_to_rgb'], ratio_range=(1, 4)),
            dict(type='MinIoURandomCrop', min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size=0.3),
            dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.5, 1.5),
                 saturation_range=(0.5, 1.5), hue_delta=18),
            dict(type='PackDetInputs'),
        ],
        test=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
        ])


# The 512 config differs only in the input size: `{{_base_._pipelines_by_size.s512.train}}`.
_pipelines_by_size = {f's{size}': _pipelines(size) for size in (320, 512)}
input_size = 320
train_pipeline = _pipelines_by_size['s320']['train']
test_pipeline = _pipelines_by_size['s320']['test']
train_dataloader = dict(
    batch_size=24,
    num_workers=4,
    batch_sampler=None,
    dataset=dict(
        _delete_=True,
        type='RepeatDataset',
        times=5,
        dataset=dict(
            type={{_base_.dataset_type}},
            data_root={{_base_.data_root}},
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=train_pipeline)))
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
custom_hooks = [dict(type='NumClassCheckHook'),
                dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW')]

# The family recipe at SSDLite's scale: AdamW 2.4e-3 for 24 x 8 images, 500-iteration warmup,
# constant until epoch 60 and a cosine decay to 0 over epochs 60-120 (validation every 5).
max_epochs = 120
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=2.4e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs, T_max=max_epochs // 2,
         by_epoch=True, eta_min=0.0),
]
auto_scale_lr = dict(base_batch_size=192)
default_hooks = dict(checkpoint=dict(interval=5))
env_cfg = dict(cudnn_benchmark=True)
