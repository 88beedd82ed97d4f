# Smoke overlay for classification: the tiny generated ImageNet-layout data (4 classes, 64 px),
# a few hundred images seen once or twice, CPU-friendly settings. Merged onto any cls base config
# by ablations/compose.py; never a reproduction, only a check that every part of the pipeline works.
_img_size = 64
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=_img_size, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=_img_size, edge='short'),
    dict(type='CenterCrop', crop_size=_img_size),
    dict(type='PackInputs'),
]
# CustomDataset reads the ImageNet folder layout with the classes the folders give
# (mmpretrain's ImageNet type insists on the 1000 ImageNet classes).
train_dataloader = dict(
    _delete_=True, batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root='', data_prefix='train', with_label=True,
                 pipeline=_train_pipeline))
val_dataloader = dict(
    _delete_=True, batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root='', data_prefix='val', with_label=True,
                 pipeline=_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='Accuracy', topk=(1,))
test_evaluator = val_evaluator

model = dict(
    # No mixup/cutmix: a few dozen iterations must show learning.
    train_cfg=dict(_delete_=True),
    head=dict(num_classes=4))

# The full recipe's structure on the tiny data: its epoch-based loop and validation interval,
# its schedule (warm-up and cosine, shortened to these 6 epochs by ablations/compose.py), its EMA
# (momentum for a short run, compose.py) and MESA, whose start ratio falls inside the 6 epochs.
# 128 images in batches of 16: 8 iterations an epoch, 48 in all, as before.
train_cfg = dict(max_epochs=6)
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
                     clip_grad=dict(max_norm=5.0))
auto_scale_lr = dict(enable=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=4),
    # Every epoch (the full recipes: every 1 or 5), keeping the recipe's best-epoch file.
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
