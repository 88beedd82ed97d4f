"""What an ablation table is: rows (a name, flag overrides, published numbers) and metrics.

A row is data: the only place it is named. The runner turns (table, row, task) into a config
and the reporter turns logs back into the table; neither defines a row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

TASKS = ('cls', 'det', 'seg')
NOT_PUBLISHED = None  # a published cell the paper does not give: rendered "n/p", never guessed


@dataclass(frozen=True)
class Metric:
    """One column of a paper table and where it comes from in an mmengine log."""
    key: str          # our short name, used in published dicts and CSVs
    task: str         # which run produces it: 'cls', 'det' or 'seg'
    log_key: str      # the scalar's name in mmengine's JSON logs
    scale: float      # multiply the logged value by this to get the paper's unit
    label: str        # column header as the paper prints it
    # Seed-to-seed SD of one full run, in paper units, assumed when a row has one seed (the
    # data then give no spread). The maintainers quote a typical gap between runs; we take it
    # as the SD, which overstates the noise a little: verdicts err towards "inconclusive".
    prior_sd: Optional[float] = None
    prior_source: str = ''


_COCO_NOISE = ('open-mmlab/mmdetection issues #3496 and #3624: on COCO the fluctuation between '
               'runs is "less than 0.3 mAP" and the gap "usually less than 0.2 mAP" '
               '(mmdetection maintainers)')

METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric('top1', 'cls', 'accuracy/top1', 1.0, 'ImageNet top-1 (%)', 0.2,
           'facebookresearch/deit issue #32: the released code "should give the same results '
           'within noise (~0.2)" top-1 (DeiT maintainers)'),
    Metric('box_ap', 'det', 'coco/bbox_mAP', 100.0, 'COCO AP box', 0.3, _COCO_NOISE),
    Metric('mask_ap', 'det', 'coco/segm_mAP', 100.0, 'COCO AP mask', 0.3, _COCO_NOISE),
    Metric('miou', 'seg', 'mIoU', 1.0, 'ADE20K mIoU', 1.0,
           'facebookresearch/Mask2Former issue #5: ADE20K "has very large variance" (a '
           'reproduction gave 49.6 and at best 50.9 against 51.3), so MaskFormer reports the '
           'median of 3 runs (Mask2Former maintainers); an mmseg user reports 1-2 mIoU between '
           'runs with one seed (open-mmlab/mmdetection issue #11051)'),
)}


@dataclass(frozen=True)
class Source:
    """Where published numbers come from."""
    paper: str        # e.g. 'MambaVision (arXiv 2407.08083)'
    version: str      # e.g. 'v2 (March 2025)'
    table: str        # e.g. 'Table 4'

    def __str__(self) -> str:
        return f'{self.paper}, {self.version}, {self.table}'


@dataclass(frozen=True)
class Row:
    """One ablation row.

    ``overrides`` are keyword arguments of the backbone constructor (nested dicts merge into the
    base config's ``model.backbone``). ``published`` maps metric keys to the paper's value, or
    ``NOT_PUBLISHED``; a metric missing from it is not part of this row's published record either.
    ``task_overrides`` add per-task backbone overrides on top (e.g. detection windows).
    ``notes`` are provenance caveats that become footnotes.
    """
    name: str
    slug: str
    overrides: Mapping = field(default_factory=dict)
    published: Mapping[str, Optional[float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    in_paper: bool = True
    published_params_m: Optional[float] = None
    published_gflops: Optional[float] = None
    task_overrides: Mapping[str, Mapping] = field(default_factory=dict)

    def backbone_overrides(self, task: str) -> dict:
        """The backbone keyword overrides of this row for one task."""
        return {**self.overrides, **self.task_overrides.get(task, {})}


@dataclass(frozen=True)
class Claim:
    """A direction the paper asserts: ``better`` beats ``worse`` on ``metrics`` (all when empty)."""
    better: str
    worse: str
    text: str
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class AblationTable:
    """A paper table as data."""
    name: str                      # 'table4', also the work_dirs/ and reports/ folder name
    title: str
    source: Source
    model: str                     # backbone family: 'mambavision' or 'mobilemamba'
    arch: str                      # the variant the paper ablates on, e.g. 'T', 'S6'
    metrics: tuple[str, ...]       # keys of METRICS, in the paper's column order
    base_configs: Mapping[str, str]  # task -> full-profile base config, relative to the repo root
    rows: tuple[Row, ...]
    caveats: tuple[str, ...] = ()  # table-wide footnotes
    claims: tuple[Claim, ...] = ()
    input_size: int = 224          # the paper's input size for params/FLOPs
    reports_median: bool = False   # the paper prints medians over runs: cells show ours too

    def __post_init__(self):
        if not re.fullmatch(r'[A-Za-z0-9_]+', self.name):
            raise ValueError(f'table name {self.name!r} must be letters, digits and _')
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f'table {self.name}: unknown metrics {unknown}; valid: {sorted(METRICS)}')
        missing = sorted({METRICS[m].task for m in self.metrics} - set(self.base_configs))
        if missing:
            raise ValueError(f'table {self.name}: no base config for tasks {missing}')
        slugs = [r.slug for r in self.rows]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f'table {self.name}: duplicate row slugs in {slugs}')
        for row in self.rows:
            if not re.fullmatch(r'[a-z0-9][a-z0-9-]*', row.slug):
                raise ValueError(f'row slug {row.slug!r} must be lower-case letters, digits and -')
            extra = sorted(set(row.published) - set(self.metrics))
            if extra:
                raise ValueError(f'row {row.slug}: published metrics {extra} not in {self.metrics}')
        for claim in self.claims:
            for slug in (claim.better, claim.worse):
                if slug not in slugs:
                    raise ValueError(f'claim {claim.text!r}: unknown row {slug!r}; rows: {slugs}')

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks this table needs runs for, in canonical order."""
        needed = {METRICS[m].task for m in self.metrics}
        return tuple(t for t in TASKS if t in needed)

    def metrics_of(self, task: str) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if METRICS[m].task == task)

    def row(self, slug: str) -> Row:
        for row in self.rows:
            if row.slug == slug or row.name == slug:
                return row
        raise ValueError(f'unknown row {slug!r} in {self.name}; valid rows: '
                         + ', '.join(r.slug for r in self.rows))
