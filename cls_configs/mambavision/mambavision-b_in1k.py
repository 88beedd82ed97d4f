# MambaVision-B on ImageNet-1K (paper Table 1). The recipe: mambavision_in1k_base.py;
# here only what its official yaml (mambavision/configs/) changes for this variant
# (checked against ablations/recipes.py MAMBAVISION_VARIANTS).
_base_ = './mambavision_in1k_base.py'
# The variant; the head's in_channels follows from it (dim * 8).
model = dict(backbone=dict(arch='B'), head=dict(in_channels=1024),
             mesa=dict(weight=1.0, start_ratio=0.3))
optim_wrapper = dict(optimizer=dict(weight_decay=0.075))
param_scheduler = {{_base_._schedules.w35}}
