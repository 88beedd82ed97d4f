# MobileMamba-B4 on ImageNet-1K at 512 px (official README: 17.1M params, 4313M FLOPs, 82.5 top-1).
_base_ = ['./mobilemamba_base_in1k.py']

model = dict(backbone=dict(arch='B4'), head=dict(in_channels=448))

train_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r512.train}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r512.test}}))
test_dataloader = val_dataloader
