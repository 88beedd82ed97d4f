# SSDLite 512 on COCO with a MobileMamba-B1 backbone (official README: 29.5 AP). The 320 config at
# 512 px: the pipelines' size and the anchors change, nothing else.
_base_ = './ssdlite_mobilemamba-b1_320_600e_coco.py'

input_size = 512
# At 512 px the six maps are 32, 16, 8, 4, 2, 1 wide: strides 16 ... 512. The 320 anchor sizes are
# scaled by 512/320. (The public copy of the official 512 config keeps the 320 strides and sizes,
# whose last three levels then cover only part of a 512 image; not followed.)
model = dict(
    bbox_head=dict(
        anchor_generator=dict(
            strides=[16, 32, 64, 128, 256, 512],
            min_sizes=[77, 160, 240, 323, 405, 486],
            max_sizes=[160, 240, 323, 405, 486, 512])))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Expand', mean={{_base_.model.data_preprocessor.mean}},
         to_rgb={{_base_.model.data_preprocessor.bgr_to_rgb}}, ratio_range=(1, 4)),
    dict(type='MinIoURandomCrop', min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size=0.3),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.5, 1.5),
         saturation_range=(0.5, 1.5), hue_delta=18),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
