# MobileMamba-T4 on ImageNet-1K at 192 px (official README: 14.2M params, 413M FLOPs, 76.1 top-1).
_base_ = ['./mobilemamba_base_in1k.py']

model = dict(backbone=dict(arch='T4'), head=dict(in_channels=448))

train_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r192.train}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r192.test}}))
test_dataloader = val_dataloader
