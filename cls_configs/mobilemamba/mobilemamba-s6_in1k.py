# MobileMamba-S6 on ImageNet-1K at 224 px (official README: 15.0M params, 652M FLOPs, 78.0 top-1).
_base_ = ['./mobilemamba_base_in1k.py']

model = dict(backbone=dict(arch='S6'), head=dict(in_channels=448))

train_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r224.train}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r224.test}}))
test_dataloader = val_dataloader
