# MobileMamba-S6† (official README: 80.7 top-1): the S6 recipe for 1000 epochs plus soft
# distillation through the same head: loss = CE + 5.0 * KL(teacher || student) at tau 1.
# The teacher is TResNet-L v2 (timm 'tresnet_v2_l', 83.9 top-1), fed the same mixed batch resized
# to 224 px with pixels in [0, 1] (mean 0, std 255 on mmpretrain's 0-255 scale), as in the
# official training logs. Its weights are the user's: set model.teacher.checkpoint, e.g.
#   --cfg-options model.teacher.checkpoint=/path/to/tresnet_v2_l.pth   (timm key layout)
# Building the model without it raises. To evaluate a trained † model, use
# mobilemamba-s6_in1k.py (same network, no teacher needed).
# A copy with another variant's config as _base_ gives the other † models (README: T2† 76.9,
# T4† 78.9, B1† 82.2, B2† 83.3, B4† 83.6).
_base_ = ['./mobilemamba-s6_in1k.py']
custom_imports = dict(imports=['backbones', 'engine.lr_schedulers', 'engine.samplers',
                               'engine.ema', 'backbones.mobilemamba_head',
                               'engine.transforms', 'engine.distill'],
                      allow_failed_imports=False)

model = dict(
    type='DistillImageClassifier',
    teacher=dict(type='TimmClassifier', model_name='tresnet_v2_l', pretrained=False,
                 checkpoint=None),
    distill_cfg=dict(tau=1.0, loss_weight=5.0, teacher_input_size=224,
                     teacher_mean=(0.0, 0.0, 0.0), teacher_std=(255.0, 255.0, 255.0)),
)
# 1000 epochs, the cosine over all of them (official epoch_full 1000, test_start_epoch 200).
train_cfg = dict(max_epochs=1000)
param_scheduler = {{_base_._schedules.e1000}}
