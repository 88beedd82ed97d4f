# Smoke overlay for detection: the tiny generated COCO-format shapes data (3 classes, 128 px),
# 40 iterations on CPU. Merged onto any det base config by ablations/compose.py.
_classes = ('rectangle', 'ellipse', 'triangle')
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(metainfo=dict(classes=_classes), pipeline=_train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=4)))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(metainfo=dict(classes=_classes), pipeline=_test_pipeline))
test_dataloader = val_dataloader

# Fewer proposals and sampled RoIs than COCO needs for a handful of shapes per image: mmcv's CPU
# RoIAlign (forward and backward) dominates a CPU step otherwise.
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    roi_head=dict(bbox_head=dict(num_classes=len(_classes)),
                  mask_head=dict(num_classes=len(_classes))),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rpn_proposal=dict(nms_pre=300, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=40, val_interval=40)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=4e-4))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=40, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
