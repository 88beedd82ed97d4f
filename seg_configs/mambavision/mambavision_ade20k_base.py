# MambaVision on ADE20K: what the official segmentation recipes (NVlabs/MambaVision
# semantic_segmentation/configs) share, on mmseg's own ADE20K / 160k / runtime bases. The UperNet
# configs add the model base and set `model = dict(backbone={{_base_._backbone}}, ...)`.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
# The official global batch (16) and lr rule: ablations/recipes.py.
recipe = 'mambavision-ade20k'

_backbone = dict(
    _delete_=True,
    type='MambaVision',
    arch='T',
    window_size=(8, 8, 64, 32),
    out_indices=(0, 1, 2, 3),
    out_norm=True,
    # The official wrapper never forwards the configs' drop_path_rate: 0.2, the backbone default.
    drop_path_rate=0.2,
    init_cfg=None)

# AdamW lr 5e-5 (T, B; S sets 6e-5), wd 0.01, AMP, no decay on names containing 'norm' (the
# official key, as the detection recipe: the heads' SyncBN and the stem BN decay, and so does
# everything else, A_log and D included), 1500-iteration warmup then poly (power 1).
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
# 16 GPUs x 1 image, as the official T and B runs (their logs); S: 8 x 2 (its own config).
train_dataloader = dict(batch_size=1)
# Validation every 16k iterations (mmseg's 160k schedule), as the official T run's log; S and B
# validated every 10k (their logs; their configs set it).
# Bounded disk: the last two checkpoints (every 16k iterations); the final model is reported.
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000,
                                     max_keep_ckpts=2))
