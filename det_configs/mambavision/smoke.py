# Smoke widths for MambaVision detection (merged after det_configs/smoke.py); see
# cls_configs/mambavision/smoke.py. Stage 3 sees 8x8 tokens and stage 4 4x4 at 128 px.
_smoke_arch = dict(_delete_=True, depths=(1, 1, 2, 2), num_heads=(1, 2, 2, 4), dim=16, in_dim=8,
                   drop_path_rate=0.0, layer_scale=None)
model = dict(backbone=dict(arch=_smoke_arch, window_size=(8, 8, 8, 4), drop_path_rate=0.0),
             neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
             rpn_head=dict(in_channels=64, feat_channels=64),
             roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                           bbox_head=dict(in_channels=64, fc_out_channels=128),
                           mask_roi_extractor=dict(out_channels=64),
                           mask_head=dict(in_channels=64, conv_out_channels=64)))
