# timm's ImageNet training transform, as both official trainers build it with create_transform
# (checked against timm itself by tests/test_official_recipes.py): random-resized crop (scale
# 0.08-1, ratio 3/4-4/3) with interpolation 'random' (bilinear or bicubic per image), flip 0.5,
# RandAugment rand-m9-mstd0.5-inc1 whose geometric ops also resample at random, random erasing
# 0.25 in per-pixel mode ('pixel' in timm, 'rand' in mmpretrain). Colour jitter 0.4 is in both
# official configs, but timm skips it when RandAugment is on. A family base picks its
# resolution: `train_pipeline = {{_base_._timm_train.r224}}`.
_bgr_mean = [103.53, 116.28, 123.675]
_bgr_std = [57.375, 57.12, 58.395]


def _timm_train_at(size: int) -> list:
    return [
        dict(type='LoadImageFromFile'),
        dict(type='RandomInterpResizedCrop', scale=size, crop_ratio_range=(0.08, 1.0),
             aspect_ratio_range=(3. / 4., 4. / 3.), backend='pillow', interpolation='random'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='RandomInterpRandAugment', policies='timm_increasing', num_policies=2,
             total_level=10, magnitude_level=9, magnitude_std=0.5,
             hparams=dict(pad_val=[round(x) for x in _bgr_mean], interpolation='random')),
        dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
             max_area_ratio=1 / 3, fill_color=_bgr_mean, fill_std=_bgr_std),
        dict(type='PackInputs'),
    ]


_timm_train = {f'r{size}': _timm_train_at(size) for size in (192, 224, 256, 384, 512)}
