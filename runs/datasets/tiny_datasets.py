"""Generate the smoke profile's tiny datasets, in the real on-disk formats of the full ones.

Under ``ROOT`` (default ``data/smoke``):

- ``imagenet/{train,val}/<class>/*.JPEG``: ImageNet's folder layout, 4 classes of procedural
  64x64 textures (stripes of two orientations, rings, checkerboards) in random colours and noise.
- ``coco/{train2017,val2017}/*.jpg`` + ``coco/annotations/instances_{train,val}2017.json``:
  COCO instances json with polygon masks of rectangles, ellipses and triangles on 128x128 images.
- ``ade/ADEChallengeData2016/{images,annotations}/{training,validation}/``: ADE20K layout, JPEG
  images and PNG label maps where 0 is "other" (ignored under reduce_zero_label) and 1..4 are
  ADE20K's first four classes (wall, building, sky, floor), each drawn with its own texture.

Every image is drawn from a fixed seed, so the data (and the smoke numbers) are reproducible.
A stamp file records the generator version; an existing complete tree is reused.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VERSION = 1
CLS_CLASSES = ('n00000001_hstripes', 'n00000002_vstripes', 'n00000003_rings', 'n00000004_checker')
DET_CLASSES = ('rectangle', 'ellipse', 'triangle')
# ADE20K's first four classes, so mmseg's ADE20KDataset can keep its names (label ids 1..4).
SEG_CLASSES = ('wall', 'building', 'sky', 'floor')
SPLITS = dict(train=dict(cls=32, det=32, seg=32), val=dict(cls=12, det=8, seg=8))


def _texture(kind: int, size: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (size, size) -- or (height, width) -- pattern in [0, 1] that identifies ``kind``
    whatever its colour."""
    height, width = (size, size) if isinstance(size, int) else size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(5, 9)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 0:
        wave = np.sin(2 * np.pi * yy / period + phase)
    elif kind == 1:
        wave = np.sin(2 * np.pi * xx / period + phase)
    elif kind == 2:
        cy, cx = rng.uniform(0.3, 0.7, size=2) * (height, width)
        wave = np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period + phase)
    else:
        wave = np.sign(np.sin(2 * np.pi * yy / period + phase) * np.sin(2 * np.pi * xx / period))
    return (wave + 1) / 2


def _colourise(pattern: np.ndarray, rng: np.random.Generator, noise: float = 0.08) -> np.ndarray:
    low, high = rng.uniform(0, 0.45, size=3), rng.uniform(0.55, 1, size=3)
    img = low + pattern[..., None] * (high - low)
    img = img + rng.normal(0, noise, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_classification(root: Path, rng: np.random.Generator) -> None:
    for split, counts in SPLITS.items():
        for label, name in enumerate(CLS_CLASSES):
            folder = root / 'imagenet' / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(counts['cls']):
                img = _colourise(_texture(label, 64, rng), rng)
                Image.fromarray(img).save(folder / f'{name}_{i:05d}.JPEG', quality=95)


def _shape_polygon(kind: int, box: tuple[float, float, float, float]) -> list[float]:
    """A closed polygon (x1, y1, x2, y2, ...) of the shape inscribed in box (x, y, w, h)."""
    x, y, w, h = box
    if kind == 0:
        pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    elif kind == 1:
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        pts = list(zip(x + w / 2 + w / 2 * np.cos(t), y + h / 2 + h / 2 * np.sin(t)))
    else:
        pts = [(x + w / 2, y), (x + w, y + h), (x, y + h)]
    return [round(float(v), 2) for p in pts for v in p]


def make_detection(root: Path, rng: np.random.Generator) -> None:
    size = 128
    ann_dir = root / 'coco' / 'annotations'
    ann_dir.mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(DET_CLASSES)]
    ann_id = 1
    for split, counts in SPLITS.items():
        img_dir = root / 'coco' / f'{split}2017'
        img_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(counts['det']):
            image_id = len(images) + 1
            canvas = Image.fromarray(_colourise(rng.uniform(0.3, 0.5) * np.ones((size, size)),
                                                rng, noise=0.05))
            draw = ImageDraw.Draw(canvas)
            for _ in range(rng.integers(1, 4)):
                kind = int(rng.integers(len(DET_CLASSES)))
                w, h = rng.uniform(28, 56, size=2)
                x, y = rng.uniform(2, size - w - 2), rng.uniform(2, size - h - 2)
                poly = _shape_polygon(kind, (x, y, w, h))
                colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
                draw.polygon(list(zip(poly[::2], poly[1::2])), fill=colour)
                xs, ys = poly[::2], poly[1::2]
                bx, by = min(xs), min(ys)
                bw, bh = max(xs) - bx, max(ys) - by
                area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
                annotations.append(dict(id=ann_id, image_id=image_id, category_id=kind + 1,
                                        segmentation=[poly], area=round(float(area), 2),
                                        bbox=[round(v, 2) for v in (bx, by, bw, bh)], iscrowd=0))
                ann_id += 1
            file_name = f'{image_id:012d}.jpg'
            canvas.save(img_dir / file_name, quality=95)
            images.append(dict(id=image_id, file_name=file_name, width=size, height=size))
        with open(ann_dir / f'instances_{split}2017.json', 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def make_segmentation(root: Path, rng: np.random.Generator) -> None:
    size = 64
    base = root / 'ade' / 'ADEChallengeData2016'
    for split, sub in (('train', 'training'), ('val', 'validation')):
        img_dir, ann_dir = base / 'images' / sub, base / 'annotations' / sub
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for i in range(SPLITS[split]['seg']):
            # Four quadrants split at a random point, each a class with its texture; a small
            # "other" (label 0) patch checks that reduce_zero_label ignores it.
            cy, cx = rng.integers(16, 48, size=2)
            labels = np.zeros((size, size), np.uint8)
            order = rng.permutation(len(SEG_CLASSES)) + 1
            labels[:cy, :cx], labels[:cy, cx:] = order[0], order[1]
            labels[cy:, :cx], labels[cy:, cx:] = order[2], order[3]
            oy, ox = rng.integers(0, size - 8, size=2)
            labels[oy:oy + 8, ox:ox + 8] = 0
            img = np.zeros((size, size, 3), np.uint8)
            for cls in range(1, len(SEG_CLASSES) + 1):
                region = labels == cls
                img[region] = _colourise(_texture(cls - 1, size, rng), rng)[region]
            name = f'ADE_{sub[:5] if sub == "training" else "val"}_{i + 1:08d}'
            Image.fromarray(img).save(img_dir / f'{name}.jpg', quality=95)
            Image.fromarray(labels).save(ann_dir / f'{name}.png')


def make_tiny_datasets(root: str | Path = 'data/smoke', force: bool = False) -> Path:
    """Write all three datasets under ``root`` (once); returns the root."""
    root = Path(root)
    stamp = root / '.complete'
    if stamp.exists() and stamp.read_text().strip() == str(VERSION) and not force:
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(20240708)
    make_classification(root, rng)
    make_detection(root, rng)
    make_segmentation(root, rng)
    stamp.write_text(str(VERSION))
    return root
