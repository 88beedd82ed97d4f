# MambaVision-T2 on ImageNet-1K (paper Table 1). The recipe: mambavision_in1k_base.py;
# here only what its official yaml (mambavision/configs/) changes for this variant
# (checked against ablations/recipes.py MAMBAVISION_VARIANTS).
_base_ = './mambavision_in1k_base.py'
# The variant; the head's in_channels follows from it (dim * 8).
model = dict(backbone=dict(arch='T2'), head=dict(in_channels=640),
             mesa=dict(weight=0.75))
# crop_pct 0.98: resize the short edge to int(224 / 0.98), centre crop 224.
val_dataloader = dict(dataset=dict(pipeline={{_base_._test_pipelines.crop098}}))
test_dataloader = val_dataloader
