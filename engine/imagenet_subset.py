"""``ImageNetSubset``: mmpretrain's ``ImageNet`` restricted to the classes of a wnid list file
(e.g. ``ablations/subsets/imagenet100_cmc.txt``, CMC's ImageNet-100), read in place from the
user's ImageNet folder: no image is copied or linked. Labels are 0..K-1 in sorted-wnid order and
the ``metainfo`` classes are the K wnids (the folder names, as mmpretrain's folder layout names
classes).

It reads both layouts mmpretrain's ``ImageNet`` reads:

- folder layout (no ``meta/<split>.txt``): only the listed ``<split>/<wnid>/`` folders are walked;
- ann-file layout (``meta/train.txt``, ``meta/val.txt``): ``<path> <label>`` lines whose label is
  the standard one, the index of the class among the sorted wnid folders of ``<data_root>/train``.
  That order is the only way to the class of a val line (its file name is flat), so both splits
  map labels to wnids through it, and a train line whose folder contradicts it is an error.

A config names ``engine.imagenet_subset`` in its ``custom_imports`` and builds
``dict(type='ImageNetSubset', wnids_file=..., data_root=..., split='train' | 'val', ...)``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Sequence

from mmengine.fileio import get_file_backend, list_from_file
from mmpretrain.datasets import ImageNet
from mmpretrain.datasets.custom import find_folders, get_samples
from mmpretrain.registry import DATASETS

__all__ = ['ImageNetSubset', 'read_wnids']

WNID_RE = re.compile(r'n\d{8}')
SPLITS = ('', 'train', 'val')  # 'test' has no labels, so no class to select by


def read_wnids(path) -> List[str]:
    """The wnids of a list file, in file order: one a line, blank and '#' lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'wnids_file {str(path)!r} is not a file')
    wnids, seen = [], set()
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        if not WNID_RE.fullmatch(line):
            raise ValueError(f'{path}:{n}: {line!r} is not a wnid (n and 8 digits, e.g. n01440764)')
        if line in seen:
            raise ValueError(f'{path}:{n}: wnid {line} is listed twice')
        seen.add(line)
        wnids.append(line)
    if not wnids:
        raise ValueError(f'wnids_file {str(path)!r} lists no wnid')
    return wnids


def _missing(wnids: Sequence[str], present, what: str, wnids_file: str) -> None:
    """One-line error for the listed wnids ``present`` lacks: the first named, then a count."""
    gone = [w for w in wnids if w not in present]
    if gone:
        more = f' (and {len(gone) - 1} more)' if len(gone) > 1 else ''
        raise ValueError(f'wnid {gone[0]}{more} of {wnids_file} is not in {what}')


@DATASETS.register_module()
class ImageNetSubset(ImageNet):
    """``ImageNet`` limited to the classes of ``wnids_file``, relabelled 0..K-1 by sorted wnid.

    Args:
        wnids_file: a list file of wnids, one a line ('#' and blank lines skipped).
        split: 'train', 'val', or '' to take ``data_prefix`` / ``ann_file`` as given.
        metainfo: ``classes`` defaults to the sorted wnids; given, it must name K classes in
            sorted-wnid order (e.g. readable names).
        Others as mmpretrain's ``ImageNet``.
    """

    def __init__(self,
                 wnids_file: str,
                 data_root: str = '',
                 split: str = '',
                 data_prefix='',
                 ann_file: str = '',
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'ImageNetSubset split {split!r} is not one of {list(SPLITS)}')
        if not kwargs.get('with_label', True):
            raise ValueError('ImageNetSubset with_label=False: a subset is chosen by label, '
                             'valid: with_label=True')
        self.wnids_file = str(wnids_file)
        self.wnids = tuple(sorted(read_wnids(wnids_file)))
        metainfo = dict(metainfo or {})
        classes = metainfo.setdefault('classes', self.wnids)
        if len(classes) != len(self.wnids):
            raise ValueError(f'metainfo classes name {len(classes)} classes, but {wnids_file} '
                             f'lists {len(self.wnids)} wnids')
        super().__init__(data_root=data_root, split=split, data_prefix=data_prefix,
                         ann_file=ann_file, metainfo=metainfo, **kwargs)

    def load_data_list(self):
        """The listed classes' images, paths into the user's folder, labels by sorted wnid."""
        backend = get_file_backend(self.img_prefix, enable_singleton=True)
        label = {w: i for i, w in enumerate(self.wnids)}
        if not self.ann_file:
            return self._from_folders(backend, label)
        return self._from_ann_file(backend, label)

    def _from_folders(self, backend, label):
        folders, _ = find_folders(self.img_prefix, backend)
        _missing(self.wnids, set(folders), f'the class folders of {self.img_prefix}',
                 self.wnids_file)
        # Walks the K listed folders only, not the 1000 (CustomDataset would walk them all).
        samples, empty = get_samples(self.img_prefix, label, self.is_valid_file, backend)
        _missing(self.wnids, set(self.wnids) - set(empty),
                 f'the images of {self.img_prefix} (its folder holds no image)', self.wnids_file)
        return [{'img_path': backend.join_path(self.img_prefix, path), 'gt_label': y}
                for path, y in samples]

    def _from_ann_file(self, backend, label):
        train_dir = backend.join_path(self.data_root, 'train')
        if not backend.isdir(train_dir):
            raise ValueError(f'{train_dir} is not a folder: with an ann file ({self.ann_file}) '
                             f'the sorted wnid folders of <data_root>/train map labels to wnids')
        order = [f for f in find_folders(train_dir)[0] if WNID_RE.fullmatch(f)]
        _missing(self.wnids, set(order),
                 f'the class folders of {train_dir} (their sorted order maps the labels of '
                 f'{self.ann_file})', self.wnids_file)
        data_list, found = [], set()
        for n, line in enumerate(list_from_file(self.ann_file), 1):
            if not line.strip():
                continue
            parts = line.strip().rsplit(' ', 1)
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= len(order):
                raise ValueError(f'{self.ann_file}:{n}: {line.strip()!r} is not "<path> <label>" '
                                 f'with a label in 0..{len(order) - 1} (the class folders of '
                                 f'{train_dir})')
            path, wnid = parts[0], order[int(parts[1])]
            head = path.split('/', 1)[0]
            # A folder that disagrees with the label means the file is not in the sorted order
            # the val lines rely on: selecting by it would pick wrong classes silently.
            if '/' in path and WNID_RE.fullmatch(head) and head != wnid:
                raise ValueError(f'{self.ann_file}:{n}: label {parts[1]} is {wnid} in the sorted '
                                 f'class folders of {train_dir}, but the path is in {head}')
            if wnid in label:
                found.add(wnid)
                data_list.append({'img_path': backend.join_path(self.img_prefix, path),
                                  'gt_label': label[wnid]})
        _missing(self.wnids, found, f'the labels of {self.ann_file} (no line of it)',
                 self.wnids_file)
        return data_list

    def extra_repr(self) -> List[str]:
        return super().extra_repr() + [f'Classes from: \t{self.wnids_file}']
