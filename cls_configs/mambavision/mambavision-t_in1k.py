# MambaVision-T on ImageNet-1K (paper Table 1). The recipe: mambavision_in1k_base.py;
# here only what its official yaml (mambavision/configs/) changes for this variant
# (checked against ablations/recipes.py MAMBAVISION_VARIANTS).
_base_ = './mambavision_in1k_base.py'
# The variant; the head's in_channels follows from it (dim * 8).
model = dict(backbone=dict(arch='T'), head=dict(in_channels=640))
