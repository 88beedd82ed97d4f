# MobileMamba-B1 on ImageNet-1K at 256 px (official README: 17.1M params, 1080M FLOPs, 79.9 top-1).
_base_ = ['./mobilemamba_base_in1k.py']

model = dict(backbone=dict(arch='B1'), head=dict(in_channels=448))

train_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r256.train}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r256.test}}))
test_dataloader = val_dataloader
