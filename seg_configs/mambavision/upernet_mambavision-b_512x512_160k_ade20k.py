# UperNet 512x512 160k on ADE20K with a MambaVision-B backbone (paper Table 3; published B: 126M
# params, 1342 GFLOPs, 49.1 mIoU). Only the variant and the head widths change: lr 5e-5 and the
# (8, 8, 64, 32) windows are the -t config's, as in the official B config; drop_path_rate stays
# 0.2 (the official wrapper never forwards the 0.4 its B config asks for).
# 16 GPUs x 1 image, as the -t config (the official B log's environment header and config).
_base_ = './upernet_mambavision-t_512x512_160k_ade20k.py'

model = dict(
    backbone=dict(arch='B'),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
# Validation every 10k iterations, as the official B run's log (T's: every 16k).
train_cfg = dict(val_interval=10000)
