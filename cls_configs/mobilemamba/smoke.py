# Smoke widths for MobileMamba (merged after cls_configs/smoke.py): the real stem, blocks, MRFFI
# (WTE-Mamba + local op + identity) and PatchMerging at widths a 2-core CPU trains in seconds.
# Widths 48, 64, 80 give global/local/identity splits of 32/9/7, 48/12/4 and 48/24/8 channels;
# at 64 px the three stages see 4x4, 2x2 and 1x1 tokens (stages=4: 16x16 down to 2x2).
_smoke_arch = dict(_delete_=True, widths=(48, 64, 80), depths=(1, 1, 1), drop_path_rate=0.0)
model = dict(backbone=dict(arch=_smoke_arch), head=dict(in_channels=80))
