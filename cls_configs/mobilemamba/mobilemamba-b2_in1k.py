# MobileMamba-B2 on ImageNet-1K at 384 px (official README: 17.1M params, 2427M FLOPs, 81.6 top-1).
_base_ = ['./mobilemamba_base_in1k.py']

model = dict(backbone=dict(arch='B2'), head=dict(in_channels=448))

train_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r384.train}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r384.test}}))
test_dataloader = val_dataloader
