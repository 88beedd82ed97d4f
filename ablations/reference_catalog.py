"""The official runs as references: which published training log stands behind which of our
recipes and table rows, and the compact extraction of each log (``reference_runs/<id>.json.gz``).

The official repositories publish the logs of their own runs. Each log becomes data once
(``tools/extract_reference_runs.py`` over the fetched repositories; the parsing is
``runs/logs/log_formats.py``): per logged iteration the lr and the loss, per evaluation the metrics, and the
run's GPUs, global batch, s/iter, memory and wall time, with the log's repository, path, commit
and sha256. What is kept, and in which units, is described in each file's ``legend``.

Two mappings name the references:

- :data:`CONFIG_REFERENCES`: our full config -> the official run of the same recipe. Every run
  built on that config shares its schedule, so its lr curve must coincide with the official one
  (``plan`` shows that run's s/iter, GPUs and hours beside the estimate).
- :data:`ROW_REFERENCES`: (table, row, task) -> the official run of the *same model*: the row
  whose flags are the released model's. Its metric curve is the target a run should track
  (reports plot it, ``status`` follows it).
"""
from __future__ import annotations

import bisect
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DATA_DIR = Path(__file__).resolve().parent / 'reference_runs'
SCHEMA = 1

MOBILEMAMBA_REPO = 'lewandofskee/MobileMamba'
MAMBAVISION_REPO = 'NVlabs/MambaVision'


@dataclass(frozen=True)
class ReferenceSource:
    """One official log: where it is and what it is a log of."""
    id: str            # our name, also the file name under reference_runs/
    repository: str    # owner/name on GitHub
    path: str          # the log's path in that repository
    task: str          # 'cls', 'det' or 'seg'
    kind: str          # 'train' (a training run) or 'test' (an evaluation of released weights)
    what: str          # one line for a reader


_MM_CLS = 'weights/MobileMamba_{v}/mobilemamba_{l}.txt'
_MV_SEG = 'semantic_segmentation/tools/logs/mamba_vision_160k_ade20k-512x512_{v}.log'
_MV_CASCADE = ('object_detection/tools/work_dirs/cascade_mask_rcnn_mamba_vision_{v}_3x_coco/'
               '{stamp}/{stamp}.log')

SOURCES: dict[str, ReferenceSource] = {s.id: s for s in (
    *(ReferenceSource(f'mobilemamba-{v.lower()}-in1k', MOBILEMAMBA_REPO,
                      _MM_CLS.format(v=v, l=v.lower()), 'cls', 'train',
                      f'MobileMamba-{v} ImageNet-1K 300 epochs (official trainer)')
      for v in ('T2', 'T4', 'S6', 'B1', 'B2', 'B4')),
    ReferenceSource('mobilemamba-b1-maskrcnn-coco', MOBILEMAMBA_REPO,
                    'weights/downstream/det/maskrcnn.log', 'det', 'train',
                    'MobileMamba-B1 Mask R-CNN 1x COCO (mmdet)'),
    ReferenceSource('mobilemamba-b1-retinanet-coco', MOBILEMAMBA_REPO,
                    'weights/downstream/det/retinanet.log', 'det', 'train',
                    'MobileMamba-B1 RetinaNet 1x COCO (mmdet)'),
    ReferenceSource('mobilemamba-b1-ssdlite320-coco', MOBILEMAMBA_REPO,
                    'weights/downstream/det/ssdlite.log', 'det', 'train',
                    'MobileMamba-B1 SSDLite 320 COCO (mmdet; log starts at a resume, epoch 18)'),
    ReferenceSource('mobilemamba-b1-ssdlite512-coco', MOBILEMAMBA_REPO,
                    'weights/downstream/det/ssdlite_512.log', 'det', 'train',
                    'MobileMamba-B1 SSDLite 512 COCO (mmdet; log starts at a resume, epoch 2)'),
    ReferenceSource('mobilemamba-b4-fpn-ade20k', MOBILEMAMBA_REPO,
                    'weights/downstream/seg/fpn.log', 'seg', 'train',
                    'MobileMamba-B4 Semantic FPN 160k ADE20K (mmseg; log starts at a resume, '
                    'iteration 16000)'),
    ReferenceSource('mobilemamba-b4-deeplabv3-ade20k', MOBILEMAMBA_REPO,
                    'weights/downstream/seg/deeplabv3.log', 'seg', 'train',
                    'MobileMamba-B4 DeepLabv3 80k ADE20K (mmseg)'),
    ReferenceSource('mobilemamba-b4-pspnet-ade20k', MOBILEMAMBA_REPO,
                    'weights/downstream/seg/pspnet.log', 'seg', 'train',
                    'MobileMamba-B4 PSPNet 80k ADE20K (mmseg; log starts at a resume, '
                    'iteration 24000)'),
    *(ReferenceSource(f'mambavision-{v[0]}-upernet-ade20k', MAMBAVISION_REPO,
                      _MV_SEG.format(v=v), 'seg', 'train',
                      f'MambaVision-{v[0].upper()} UperNet 512x512 160k ADE20K (mmseg)')
      for v in ('tiny', 'small', 'base')),
    *(ReferenceSource(f'mambavision-{v[0]}-cascade-coco-test', MAMBAVISION_REPO,
                      _MV_CASCADE.format(v=v, stamp=stamp), 'det', 'test',
                      f'MambaVision-{v[0].upper()} Cascade Mask R-CNN 3x: test of the released '
                      'checkpoint on COCO val2017 (mmdet)')
      for v, stamp in (('tiny', '20250607_142007'), ('small', '20250607_144612'),
                       ('base', '20250607_145939'))),
)}

# Our full config -> the official run of its recipe (same schedule, same global batch).
CONFIG_REFERENCES: dict[str, str] = {
    **{f'cls_configs/mobilemamba/mobilemamba-{v}_in1k.py': f'mobilemamba-{v}-in1k'
       for v in ('t2', 't4', 's6', 'b1', 'b2', 'b4')},
    'det_configs/mobilemamba/mask-rcnn_mobilemamba-b1_fpn_1x_coco.py':
        'mobilemamba-b1-maskrcnn-coco',
    'det_configs/mobilemamba/retinanet_mobilemamba-b1_fpn_1x_coco.py':
        'mobilemamba-b1-retinanet-coco',
    'det_configs/mobilemamba/ssdlite_mobilemamba-b1_320_600e_coco.py':
        'mobilemamba-b1-ssdlite320-coco',
    'det_configs/mobilemamba/ssdlite_mobilemamba-b1_512_600e_coco.py':
        'mobilemamba-b1-ssdlite512-coco',
    'seg_configs/mobilemamba/fpn_mobilemamba-b4_512x512_160k_ade20k.py':
        'mobilemamba-b4-fpn-ade20k',
    'seg_configs/mobilemamba/deeplabv3_mobilemamba-b4_512x512_80k_ade20k.py':
        'mobilemamba-b4-deeplabv3-ade20k',
    'seg_configs/mobilemamba/pspnet_mobilemamba-b4_512x512_80k_ade20k.py':
        'mobilemamba-b4-pspnet-ade20k',
    **{f'seg_configs/mambavision/upernet_mambavision-{v}_512x512_160k_ade20k.py':
       f'mambavision-{v}-upernet-ade20k' for v in ('t', 's', 'b')},
}

# Released checkpoints whose official test log gives the value `eval` should reproduce.
RELEASED_REFERENCES: dict[str, str] = {
    f'det_configs/mambavision/cascade-mask-rcnn_mambavision-{v}_fpn_3x_coco.py':
        f'mambavision-{v}-cascade-coco-test' for v in ('t', 's', 'b')}

# (table, row, task) -> the official run of that very model (the row with the released flags).
ROW_REFERENCES: dict[tuple[str, str, str], str] = {
    ('mobilemamba_mrffi', 'official', 'cls'): 'mobilemamba-s6-in1k',
    ('table4', 'conv2-concat', 'seg'): 'mambavision-t-upernet-ade20k',
}


@dataclass
class ReferenceRun:
    """The extraction of one official log (see ``legend`` for every field's meaning)."""
    id: str
    source: dict        # repository, path, commit, blob, sha256, bytes
    task: str
    kind: str
    meta: dict          # gpus, per_gpu_batch, global_batch, iters_per_epoch, max_iters, ...
    train: dict         # columns: iter, lr, loss (same length)
    evaluations: list   # {step, unit, iter, metrics}
    legend: dict

    @property
    def what(self) -> str:
        return SOURCES[self.id].what if self.id in SOURCES else self.id

    @property
    def hours(self) -> Optional[float]:
        """The run's wall hours as its log gives them (the trainer's own total where printed)."""
        seconds = self.meta.get('total_time_printed_seconds') or self.meta.get('wall_seconds')
        return seconds / 3600 if seconds else None

    def best(self, key: str) -> Optional[dict]:
        found = [e for e in self.evaluations if key in e['metrics']]
        return max(found, key=lambda e: e['metrics'][key]) if found else None

    def last(self, key: str) -> Optional[dict]:
        found = [e for e in self.evaluations if key in e['metrics']]
        return found[-1] if found else None

    def lr_at(self, iteration: int) -> Optional[float]:
        """The logged lr at the logged iteration nearest ``iteration`` (None without one)."""
        iters, lrs = self.train.get('iter') or [], self.train.get('lr') or []
        if not iters:
            return None
        i = bisect.bisect_left(iters, iteration)
        best = min((j for j in (i - 1, i) if 0 <= j < len(iters)),
                   key=lambda j: abs(iters[j] - iteration))
        return lrs[best]


def reference_path(ref_id: str, data_dir: Optional[Path] = None) -> Path:
    return (data_dir or DATA_DIR) / f'{ref_id}.json.gz'


def load_reference(ref_id: str, data_dir: Optional[Path] = None) -> ReferenceRun:
    """The committed extraction of one official log; a clear error when there is none."""
    path = reference_path(ref_id, data_dir)
    if ref_id not in SOURCES:
        raise ValueError(f'unknown reference run {ref_id!r}; known: {", ".join(SOURCES)}')
    if not path.is_file():
        raise FileNotFoundError(f'{path} is missing: regenerate it with '
                                'tools/extract_reference_runs.py')
    with gzip.open(path, 'rt', encoding='utf-8') as f:
        data = json.load(f)
    if data.get('schema') != SCHEMA:
        raise ValueError(f'{path}: schema {data.get("schema")}, expected {SCHEMA}; regenerate it')
    return ReferenceRun(data['id'], data['source'], data['task'], data['kind'], data['meta'],
                        data['train'], data['evaluations'], data['legend'])


def row_reference(table: str, row: str, task: str) -> Optional[ReferenceRun]:
    """The official run of this row's very model, if the official repositories publish one."""
    ref_id = ROW_REFERENCES.get((table, row, task))
    return load_reference(ref_id) if ref_id else None


def config_reference(config: str) -> Optional[ReferenceRun]:
    """The official run of the recipe of ``config`` (a path relative to the repository root)."""
    ref_id = CONFIG_REFERENCES.get(config)
    return load_reference(ref_id) if ref_id else None
