# SSDLite 512 on COCO with a MobileMamba-B1 backbone (official README: 29.5 AP). The 320 config at
# 512 px: only the pipelines' size changes (the anchors stay the 320 ones, as officially).
_base_ = './ssdlite_mobilemamba-b1_320_600e_coco.py'

input_size = 512
# The official 512 config keeps the 320 anchors (strides and sizes): at 512 px the six maps are
# 32, 16, 8, 4, 2, 1 wide, and the last levels' anchors cover only part of the image. Followed
# as published.
train_pipeline = {{_base_._pipelines_by_size.s512.train}}
test_pipeline = {{_base_._pipelines_by_size.s512.test}}
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
