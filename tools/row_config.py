"""A row's config for one task: the table's base config + the profile overlay + the row's flags.

    base config (full recipe)       e.g. det_configs/mambavision/mask-rcnn_mambavision-t_fpn_1x_coco.py
    + smoke overlays (smoke only)   <task>_configs/smoke.py (data, schedule) and
                                    <task>_configs/<family>/smoke.py (reduced widths)
    + data root                     where the task's dataset lives (checked by check_data_root)
    + the row's backbone overrides  ablations/ (the only place a row is defined)
    + seed, work dir, pretrained backbone

Nothing here is specific to a row: adding a row is adding data in ablations/.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config

from ablations import TASKS, AblationTable, Row, get_table

REPO = Path(__file__).resolve().parent.parent
PROFILES = ('smoke', 'full')
DEFAULT_SMOKE_DATA = REPO / 'data' / 'smoke'
CONFIG_DIRS = dict(cls='cls_configs', det='det_configs', seg='seg_configs')

# What each task expects under the data root, relative to it (checked before a run starts).
DATA_LAYOUT = dict(
    cls=dict(folder='imagenet', required=('train', 'val'),
             layout='imagenet/train/<wnid>/*.JPEG and imagenet/val/<wnid>/*.JPEG '
                    '(ImageNet folder layout; optional imagenet/meta/{train,val}.txt)'),
    det=dict(folder='coco', required=('train2017', 'val2017', 'annotations/instances_train2017.json',
                                      'annotations/instances_val2017.json'),
             layout='coco/train2017/*.jpg, coco/val2017/*.jpg, '
                    'coco/annotations/instances_{train,val}2017.json (COCO 2017)'),
    seg=dict(folder='ade/ADEChallengeData2016',
             required=('images/training', 'images/validation', 'annotations/training',
                       'annotations/validation'),
             layout='ade/ADEChallengeData2016/{images,annotations}/{training,validation}/ '
                    '(ADE20K scene parsing, 150 classes)'),
)


def check_data_root(task: str, data_root: Union[str, Path]) -> Path:
    """The task's dataset folder under ``data_root``; a clear error showing the layout if absent."""
    spec = DATA_LAYOUT[task]
    root = Path(data_root).expanduser().resolve()
    folder = root / spec['folder']
    missing = [p for p in spec['required'] if not (folder / p).exists()]
    if not root.is_dir() or missing:
        what = f'data root {root} does not exist' if not root.is_dir() else \
            f'{folder} lacks {", ".join(missing)}'
        raise FileNotFoundError(f'{task}: {what}.\nExpected under --data-root: {spec["layout"]}')
    return folder


def _set_dataset_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset (and COCO's annotation-reading metric) at data_root."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        dataset = loader['dataset']
        # Wrappers (RepeatDataset, ConcatDataset...) hold the real dataset one level down.
        while 'dataset' in dataset and 'data_root' not in dataset:
            dataset = dataset['dataset']
        dataset['data_root'] = data_root
    for split in ('val', 'test'):
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict) and 'ann_file' in evaluator:
            evaluator['ann_file'] = str(Path(data_root) / 'annotations' /
                                        Path(evaluator['ann_file']).name)


def _merge_file(cfg: Config, path: Path) -> None:
    overlay = Config.fromfile(str(path))
    cfg.merge_from_dict(overlay.to_dict())


def smoke_overlays(table: AblationTable, task: str) -> list[Path]:
    """The smoke overlay files for a table's task, in merge order."""
    cfg_dir = REPO / CONFIG_DIRS[task]
    return [cfg_dir / 'smoke.py', cfg_dir / table.model / 'smoke.py']


def build_row_config(table: Union[str, AblationTable], row: Union[str, Row], task: str,
                     profile: str = 'smoke', data_root: Optional[Union[str, Path]] = None,
                     work_dir: Optional[Union[str, Path]] = None, seed: int = 0,
                     pretrained: Optional[Union[str, Path]] = None,
                     check_data: bool = False) -> Config:
    """The complete mmengine config of one (table, row, task) run.

    ``data_root`` defaults to the generated tiny data for smoke and is required for full.
    ``pretrained``: a checkpoint whose ``backbone.*`` weights initialise the backbone.
    ``check_data``: verify the dataset layout now (the runner does; a dry run does not).
    """
    table = get_table(table) if isinstance(table, str) else table
    row = table.row(row) if isinstance(row, str) else row
    if task not in table.tasks:
        raise ValueError(f'task {task!r} is not part of {table.name}; its tasks: '
                         f'{", ".join(table.tasks)} (all tasks: {", ".join(TASKS)})')
    if profile not in PROFILES:
        raise ValueError(f'unknown profile {profile!r}; valid: {", ".join(PROFILES)}')

    cfg = Config.fromfile(str(REPO / table.base_configs[task]))
    if profile == 'smoke':
        for overlay in smoke_overlays(table, task):
            _merge_file(cfg, overlay)
        data_root = DEFAULT_SMOKE_DATA if data_root is None else data_root
    elif data_root is None:
        raise ValueError('the full profile needs --data-root (where imagenet/, coco/ and ade/ '
                         'live); see README.md')
    folder = check_data_root(task, data_root) if check_data else \
        Path(data_root).expanduser().resolve() / DATA_LAYOUT[task]['folder']
    _set_dataset_root(cfg, str(folder))

    cfg.merge_from_dict(dict(model=dict(backbone=copy.deepcopy(row.backbone_overrides(task)))))
    if pretrained is not None:
        # _delete_: replace the base's init_cfg (often None, which a dict cannot merge into).
        cfg.merge_from_dict(dict(model=dict(backbone=dict(init_cfg=dict(
            _delete_=True, type='Pretrained', checkpoint=str(pretrained), prefix='backbone.')))))
    cfg.randomness = dict(seed=seed, deterministic=False)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    # For the record: what this config is, in the run's own dumped copy.
    cfg.ablation = dict(table=table.name, row=row.slug, task=task, profile=profile, seed=seed)
    return cfg
