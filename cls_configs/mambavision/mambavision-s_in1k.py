# MambaVision-S on ImageNet-1K (paper Table 1). The recipe: mambavision_in1k_base.py;
# here only what its official yaml (mambavision/configs/) changes for this variant
# (checked against ablations/recipes.py MAMBAVISION_VARIANTS).
_base_ = './mambavision_in1k_base.py'
# The variant; the head's in_channels follows from it (dim * 8).
model = dict(backbone=dict(arch='S'), head=dict(in_channels=768),
             mesa=dict(weight=1.0))
# crop_pct 0.93: resize the short edge to int(224 / 0.93), centre crop 224.
val_dataloader = dict(dataset=dict(pipeline={{_base_._test_pipelines.crop093}}))
test_dataloader = val_dataloader
