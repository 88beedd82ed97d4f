# Smoke overlay for segmentation: the tiny generated ADE20K-layout data (ADE20K's first four
# classes, 64 px), 40 iterations on CPU. Merged onto any seg base config by ablations/compose.py.
_classes = ('wall', 'building', 'sky', 'floor')
_size = (64, 64)
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(metainfo=dict(classes=_classes), pipeline=_train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(metainfo=dict(classes=_classes), pipeline=_test_pipeline))
test_dataloader = val_dataloader

model = dict(
    data_preprocessor=dict(size=_size),
    decode_head=dict(num_classes=len(_classes), channels=32),
    auxiliary_head=dict(num_classes=len(_classes), channels=16))

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=40, val_interval=40)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=40, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
