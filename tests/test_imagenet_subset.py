"""ImageNet-100 (``--subset in100``): the committed CMC list against its source, and
``engine.imagenet_subset.ImageNetSubset`` on a fake ImageNet of tiny JPEGs, in both layouts
mmpretrain's ImageNet reads (class folders; meta/*.txt ann files)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from engine.imagenet_subset import ImageNetSubset, read_wnids

REPO = Path(__file__).resolve().parent.parent
CMC_LIST = REPO / 'ablations' / 'subsets' / 'imagenet100_cmc.txt'
CMC_SOURCE = REPO / 'ablations' / 'subsets' / 'SOURCE.md'
# sha256 of imagenet100.txt at HobbitLong/CMC 7b227be0b10ef4e526c72af07664f5079ed9ee09.
CMC_SHA256 = '79f3f1552ccc478ce24bd934b4573625db584ddc1f4643ae23c994a94cb11397'

# Six classes in the fake ImageNet, three of them listed (out of order, with a comment line).
WNIDS = ['n01440764', 'n01443537', 'n01484850', 'n01491361', 'n01494475', 'n01496331']
LISTED = ['n01494475', 'n01443537', 'n01440764']
SORTED = sorted(LISTED)


def _jpeg(path: Path, shade: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (8, 8), (shade, 0, 0)).save(path, 'JPEG')


def fake_imagenet(root: Path, ann: bool) -> dict:
    """Two JPEGs a class in train/ and val/; ``ann``: meta/*.txt and a flat val/ as ImageNet's
    own. Returns {split: {absolute image path: wnid}}."""
    files = {'train': {}, 'val': {}}
    meta = {'train': [], 'val': []}
    for label, wnid in enumerate(WNIDS):
        for i in range(2):
            rel = f'{wnid}/{wnid}_{i}.JPEG'
            _jpeg(root / 'train' / rel, 20 * label)
            files['train'][str(root / 'train' / rel)] = wnid
            meta['train'].append(f'{rel} {label}')
            rel = f'ILSVRC2012_val_{2 * label + i + 1:08d}.JPEG'
            rel = rel if ann else f'{wnid}/{rel}'
            _jpeg(root / 'val' / rel, 20 * label)
            files['val'][str(root / 'val' / rel)] = wnid
            meta['val'].append(f'{rel} {label}')
    if ann:
        (root / 'meta').mkdir()
        for split, lines in meta.items():
            (root / 'meta' / f'{split}.txt').write_text('\n'.join(lines) + '\n')
    return files


@pytest.fixture
def wnids_file(tmp_path) -> Path:
    path = tmp_path / 'subset.txt'
    path.write_text('# three of the six\n' + '\n'.join(LISTED) + '\n')
    return path


def _tree(root: Path) -> set:
    return {p for p in root.rglob('*')}


# --- the committed list ---------------------------------------------------------------------

def test_cmc_list_is_the_source_file():
    data = CMC_LIST.read_bytes()
    assert hashlib.sha256(data).hexdigest() == CMC_SHA256
    assert CMC_SHA256 in CMC_SOURCE.read_text()  # the provenance note records the same file
    assert 'HobbitLong/CMC' in CMC_SOURCE.read_text()
    lines = data.decode().splitlines()
    assert len(lines) == 100 == len(set(lines))
    assert all(re.fullmatch(r'n\d{8}', w) for w in lines)
    # The source's first, second and last lines, in the source's order.
    assert lines[:2] == ['n02869837', 'n01749939'] and lines[-1] == 'n02090622'
    assert read_wnids(CMC_LIST) == lines


# --- the dataset ----------------------------------------------------------------------------

@pytest.mark.parametrize('ann', [False, True], ids=['folders', 'ann-files'])
@pytest.mark.parametrize('split', ['train', 'val'])
def test_subset_selects_and_relabels_in_place(tmp_path, wnids_file, ann, split):
    root = tmp_path / 'imagenet'
    files = fake_imagenet(root, ann)[split]
    before = _tree(tmp_path)
    ds = ImageNetSubset(wnids_file=str(wnids_file), data_root=str(root), split=split)
    assert bool(ds.ann_file) == ann  # mmpretrain's own layout detection chose the layout
    assert ds.metainfo['classes'] == tuple(SORTED)
    got = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        got[info['img_path']] = info['gt_label']
    want = {path: SORTED.index(w) for path, w in files.items() if w in LISTED}
    assert got == want and len(got) == 6  # 2 images of each listed class, labels by sorted wnid
    assert sorted(set(got.values())) == [0, 1, 2]
    assert _tree(tmp_path) == before  # nothing copied or linked
    assert all(not os.path.islink(p) for p in got)


@pytest.mark.parametrize('ann', [False, True], ids=['folders', 'ann-files'])
def test_missing_wnid_is_a_one_line_error(tmp_path, ann):
    root = tmp_path / 'imagenet'
    fake_imagenet(root, ann)
    listed = tmp_path / 'subset.txt'
    listed.write_text('n01440764\nn09999999\n')
    with pytest.raises(ValueError) as exc:
        ImageNetSubset(wnids_file=str(listed), data_root=str(root), split='val')
    msg = str(exc.value)
    assert '\n' not in msg and 'n09999999' in msg and str(listed) in msg
    assert str(root / ('train' if ann else 'val')) in msg  # the folder it is missing from


def test_ann_file_label_out_of_sorted_order_is_an_error(tmp_path, wnids_file):
    root = tmp_path / 'imagenet'
    fake_imagenet(root, ann=True)
    meta = root / 'meta' / 'train.txt'
    meta.write_text(meta.read_text().replace('n01440764_0.JPEG 0', 'n01440764_0.JPEG 3'))
    with pytest.raises(ValueError, match=r'train\.txt:1: label 3 is n01491361 .* in n01440764$'):
        ImageNetSubset(wnids_file=str(wnids_file), data_root=str(root), split='train')


@pytest.mark.parametrize('text, match', [
    ('n01440764\nn0144076\n', r"subset\.txt:2: 'n0144076' is not a wnid"),
    ('n01440764\n\nn01440764\n', r'subset\.txt:3: wnid n01440764 is listed twice'),
    ('# nothing\n\n', r'lists no wnid'),
], ids=['not-a-wnid', 'listed-twice', 'empty'])
def test_bad_wnids_file(tmp_path, text, match):
    path = tmp_path / 'subset.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_wnids(path)


def test_bad_split_and_missing_list(tmp_path, wnids_file):
    with pytest.raises(ValueError, match=r"split 'test' is not one of \['', 'train', 'val'\]"):
        ImageNetSubset(wnids_file=str(wnids_file), data_root=str(tmp_path), split='test')
    with pytest.raises(ValueError, match=r"wnids_file '.*nope\.txt' is not a file"):
        ImageNetSubset(wnids_file=str(tmp_path / 'nope.txt'), data_root=str(tmp_path))


def test_config_builds_it_through_the_registry(tmp_path, wnids_file):
    """As a config would: custom_imports names the module, DATASETS builds the type, and the
    pipeline loads a listed image with its new label."""
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS

    root = tmp_path / 'imagenet'
    fake_imagenet(root, ann=True)
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['engine.imagenet_subset'], "
        "allow_failed_imports=False)\n"
        f"dataset = dict(type='ImageNetSubset', wnids_file={str(wnids_file)!r}, "
        f"data_root={str(root)!r}, split='val', pipeline=[dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=4), dict(type='PackInputs')])\n")
    cfg = Config.fromfile(str(cfg_file))
    ds = DATASETS.build(cfg.dataset)
    assert type(ds) is ImageNetSubset and len(ds) == 6
    sample = ds[5]
    assert tuple(sample['inputs'].shape) == (3, 4, 4)
    assert sample['data_samples'].gt_label.tolist() == [2]
    assert sample['data_samples'].img_path.startswith(str(root / 'val'))
