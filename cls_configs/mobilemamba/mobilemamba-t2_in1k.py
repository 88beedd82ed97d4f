# MobileMamba-T2 on ImageNet-1K at 192 px (official README: 8.8M params, 255M FLOPs, top-1 73.6;
# the README's table prints 71.5, its expected test output and training log give 73.6).
_base_ = ['./mobilemamba_base_in1k.py']

model = dict(backbone=dict(arch='T2'), head=dict(in_channels=368))

train_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r192.train}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_._pipelines.r192.test}}))
test_dataloader = val_dataloader
