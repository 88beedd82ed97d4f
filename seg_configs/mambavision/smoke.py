# Smoke widths for MambaVision segmentation (merged after seg_configs/smoke.py); see
# cls_configs/mambavision/smoke.py. Stage 3 sees 4x4 tokens and stage 4 2x2 at 64 px.
_smoke_arch = dict(_delete_=True, depths=(1, 1, 2, 2), num_heads=(1, 2, 2, 4), dim=16, in_dim=8,
                   drop_path_rate=0.0, layer_scale=None)
model = dict(backbone=dict(arch=_smoke_arch, window_size=(8, 8, 4, 2), drop_path_rate=0.0),
             decode_head=dict(in_channels=[16, 32, 64, 128]),
             auxiliary_head=dict(in_channels=64))
