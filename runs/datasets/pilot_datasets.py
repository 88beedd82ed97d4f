"""Generated data at the real datasets' image sizes and in their real on-disk formats, for the
pilots of full-profile runs (``runs.commands.planner``): the full training pipelines (RandomResizedCrop,
RandAugment, multi-scale resize, crops...) then do the work they do on the real data.

Under ``ROOT``, one dataset per task, in the layout ``ablations.compose.DATA_LAYOUT`` describes:

- ``imagenet/{train,val}/<wnid>/*.JPEG`` + ``imagenet/meta/{train,val}.txt``: JPEGs of
  ImageNet's typical 500x375 / 375x500, labels spread over the 1000 classes.
- ``coco/{train2017,val2017}/*.jpg`` + ``coco/annotations/instances_{train,val}2017.json``:
  640x480 / 480x640 JPEGs with COCO's 80 categories, 2-12 polygon-mask instances per image
  (COCO averages about 7) from small to large.
- ``ade/ADEChallengeData2016/{images,annotations}/{training,validation}/``: 683x512 JPEGs and
  PNG label maps of 150 classes plus 0 ("other"), as ADE20K's scene parsing set.

A few distinct images per dataset are drawn (from a fixed seed); the rest of the requested
count are hard links to them, so asking for thousands of training images costs little disk. A
stamp per task records the version and the count; a tree with at least the requested count is
reused.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from runs.datasets.tiny_datasets import _colourise, _shape_polygon, _texture

VERSION = 1
TASKS = ('cls', 'det', 'seg')
# (height, width) of the generated images, alternating landscape and portrait.
IMAGE_SIZES = dict(cls=((375, 500), (500, 375)), det=((480, 640), (640, 480)),
                   seg=((512, 683), (683, 512)))
IMAGENET_CLASSES = 1000
ADE_CLASSES = 150
DISTINCT_IMAGES = 24   # drawn per dataset and split; the rest are links to them
VAL_IMAGES = 4         # the val splits only make the tree complete (pilots do not validate)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copyfile(src, dst)


def _scene(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A textured RGB image of ``shape`` (height, width): a few textured bands in colour."""
    height, width = shape
    img = np.empty((height, width, 3), np.uint8)
    cuts = np.sort(rng.integers(0, height, size=3))
    for top, bottom in zip((0, *cuts), (*cuts, height)):
        if bottom > top:
            img[top:bottom] = _colourise(_texture(int(rng.integers(4)), (bottom - top, width),
                                                  rng), rng)
    return img


def _materialise(count: int, draw: Callable[[int], None], link: Callable[[int, int], None]) -> None:
    """Draw the first DISTINCT_IMAGES items, link the rest to them (item i -> i % DISTINCT)."""
    for i in range(count):
        if i < DISTINCT_IMAGES:
            draw(i)
        else:
            link(i % DISTINCT_IMAGES, i)


def make_imagenet(root: Path, counts: dict[str, int], rng: np.random.Generator) -> None:
    base = root / 'imagenet'
    (base / 'meta').mkdir(parents=True, exist_ok=True)
    for split, count in counts.items():
        lines = []
        paths = []
        for i in range(count):
            label = i % IMAGENET_CLASSES
            wnid = f'n{label:08d}'
            paths.append(base / split / wnid / f'{wnid}_{i:06d}.JPEG')
            lines.append(f'{wnid}/{paths[-1].name} {label}')
        for folder in {p.parent for p in paths}:
            folder.mkdir(parents=True, exist_ok=True)

        def draw(i: int) -> None:
            shape = IMAGE_SIZES['cls'][i % 2]
            Image.fromarray(_scene(shape, rng)).save(paths[i], quality=90)

        _materialise(count, draw, lambda src, i: _link_or_copy(paths[src], paths[i]))
        (base / 'meta' / f'{split}.txt').write_text('\n'.join(lines) + '\n')


def _coco_classes() -> Sequence[str]:
    from mmdet.datasets import CocoDataset  # the 80 names mmdet's CocoDataset maps by
    return CocoDataset.METAINFO['classes']


def make_coco(root: Path, counts: dict[str, int], rng: np.random.Generator,
              classes: Sequence[str] = ()) -> None:
    classes = classes or _coco_classes()
    base = root / 'coco'
    (base / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i + 1, name=n, supercategory='object') for i, n in enumerate(classes)]
    ann_id = 1
    for split, count in counts.items():
        img_dir = base / f'{split}2017'
        img_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        drawn: dict[int, list[dict]] = {}  # a distinct image's instances, reused by its links

        def draw(i: int) -> None:
            height, width = IMAGE_SIZES['det'][i % 2]
            canvas = Image.fromarray(_scene((height, width), rng))
            pen = ImageDraw.Draw(canvas)
            instances = []
            for _ in range(int(rng.integers(2, 13))):
                kind = int(rng.integers(3))
                side = float(np.exp(rng.uniform(np.log(16), np.log(0.7 * min(height, width)))))
                w, h = side * rng.uniform(0.6, 1.4, size=2)
                w, h = min(w, width - 4), min(h, height - 4)
                x, y = rng.uniform(2, width - w - 2), rng.uniform(2, height - h - 2)
                poly = _shape_polygon(kind, (x, y, w, h))
                pen.polygon(list(zip(poly[::2], poly[1::2])),
                            fill=tuple(int(c) for c in rng.integers(0, 256, size=3)))
                xs, ys = poly[::2], poly[1::2]
                bx, by = min(xs), min(ys)
                area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
                instances.append(dict(category_id=int(rng.integers(len(classes))) + 1,
                                      segmentation=[poly], area=round(float(area), 2),
                                      bbox=[round(v, 2) for v in (bx, by, max(xs) - bx,
                                                                  max(ys) - by)],
                                      iscrowd=0))
            canvas.save(img_dir / f'{i + 1:012d}.jpg', quality=90)
            drawn[i] = instances
            record(i, i)

        def record(src: int, i: int) -> None:
            nonlocal ann_id
            height, width = IMAGE_SIZES['det'][src % 2]
            images.append(dict(id=i + 1, file_name=f'{src + 1:012d}.jpg', width=width,
                               height=height))
            for inst in drawn[src]:
                annotations.append(dict(inst, id=ann_id, image_id=i + 1))
                ann_id += 1

        # COCO's json may point several image ids at one file: links are not even needed.
        _materialise(count, draw, record)
        with open(base / 'annotations' / f'instances_{split}2017.json', 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def make_ade(root: Path, counts: dict[str, int], rng: np.random.Generator) -> None:
    base = root / 'ade' / 'ADEChallengeData2016'
    for split, count in counts.items():
        sub = 'training' if split == 'train' else 'validation'
        img_dir, ann_dir = base / 'images' / sub, base / 'annotations' / sub
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        names = [f'ADE_{"train" if split == "train" else "val"}_{i + 1:08d}'
                 for i in range(count)]

        def draw(i: int) -> None:
            # Nearest-seed regions, each a class (0 = "other" now and then) with its texture.
            height, width = IMAGE_SIZES['seg'][i % 2]
            seeds = rng.uniform(0, 1, size=(int(rng.integers(6, 20)), 2)) * (height, width)
            yy, xx = np.mgrid[0:height, 0:width]
            region = np.argmin([(yy - sy) ** 2 + (xx - sx) ** 2 for sy, sx in seeds], axis=0)
            classes = rng.integers(0, ADE_CLASSES + 1, size=len(seeds)).astype(np.uint8)
            labels = classes[region]
            textures = [_texture(kind, (height, width), rng) for kind in range(4)]
            img = np.empty((height, width, 3), np.uint8)
            for k in range(len(seeds)):
                mask = region == k
                img[mask] = _colourise(textures[int(classes[k]) % 4][mask], rng)
            Image.fromarray(img).save(img_dir / f'{names[i]}.jpg', quality=90)
            Image.fromarray(labels).save(ann_dir / f'{names[i]}.png')

        def link(src: int, i: int) -> None:
            _link_or_copy(img_dir / f'{names[src]}.jpg', img_dir / f'{names[i]}.jpg')
            _link_or_copy(ann_dir / f'{names[src]}.png', ann_dir / f'{names[i]}.png')

        _materialise(count, draw, link)


MAKERS = dict(cls=(make_imagenet, 'imagenet'), det=(make_coco, 'coco'), seg=(make_ade, 'ade'))


def make_pilot_data(root: str | Path, tasks: Sequence[str] = TASKS, train_images: int = 256,
                    force: bool = False) -> Path:
    """Write (or reuse) each task's dataset with at least ``train_images`` training images."""
    root = Path(root)
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f'unknown task(s) {", ".join(bad)}; valid: {", ".join(TASKS)}')
    for task in tasks:
        make, folder = MAKERS[task]
        stamp = root / f'.complete-{task}'
        if stamp.exists() and not force:
            done = json.loads(stamp.read_text())
            if done.get('version') == VERSION and done.get('train_images', 0) >= train_images:
                continue
        if (root / folder).exists():
            shutil.rmtree(root / folder)
        stamp.unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        make(root, dict(train=train_images, val=VAL_IMAGES),
             np.random.default_rng(20240708 + TASKS.index(task)))
        stamp.write_text(json.dumps(dict(version=VERSION, train_images=train_images)))
    return root
