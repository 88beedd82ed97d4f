"""The official training recipes as data: what a full run must keep whatever the GPU count.

Each full config names its recipe (``recipe = '<name>'`` at the config's top level, set once in
the family base). The config holds the lr and the per-GPU batch of the official run; this module
holds what a config cannot say about itself: the official global batch and GPU count, the rule by
which the recipe scales its lr when the batch changes, where the facts come from, and the known
deviations of our config from the official run. ``ablations/compose.py`` keeps the global batch at
any GPU count with gradient accumulation and records the run's fidelity.

Per-variant MambaVision values (MESA, weight decay, warm-up, test crop) live in the variant
configs, which are what mmengine reads; ``MAMBAVISION_VARIANTS`` is the official table they are
checked against (tests/test_recipes.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

# How a recipe's lr follows the global batch: lr x (batch / official batch) ** power.
LR_RULES = {'linear': 1.0, 'sqrt': 0.5}


@dataclass(frozen=True)
class Recipe:
    """The official global batch of one recipe and how its lr follows the batch."""
    name: str
    global_batch: int        # images per optimizer step in the official run
    gpus: int                # GPUs of the official run (global_batch = gpus x per-GPU batch)
    lr_rule: str             # key of LR_RULES: how lr scales when the batch cannot be kept
    lr_rule_source: str      # why that rule (the official code's, or ours where it gives none)
    source: str              # where the batch comes from
    deviations: tuple[str, ...] = field(default=())  # known, for every run of this recipe
    # Which evaluation the paper reports: 'best' (the official code keeps the best epoch) or
    # 'last' (the final model); the reporter's default pick follows it.
    reported: str = 'last'

    def __post_init__(self):
        if self.lr_rule not in LR_RULES:
            raise ValueError(f'recipe {self.name}: lr_rule {self.lr_rule!r}; valid: '
                             f'{", ".join(LR_RULES)}')
        if self.reported not in ('best', 'last'):
            raise ValueError(f'recipe {self.name}: reported {self.reported!r}; valid: best, last')
        if self.global_batch % self.gpus:
            raise ValueError(f'recipe {self.name}: {self.global_batch} images do not split '
                             f'over {self.gpus} GPUs')

    @property
    def per_gpu_batch(self) -> int:
        return self.global_batch // self.gpus

    def scale_lr(self, lr: float, batch: int) -> float:
        """``lr`` (official, at the global batch) for an effective ``batch`` by this rule."""
        return lr * (batch / self.global_batch) ** LR_RULES[self.lr_rule]


_MV = 'NVlabs/MambaVision'
_MM = 'lewandofskee/MobileMamba'
# Official behaviour kept on purpose although it is not what the papers or configs say: recorded
# for every run of the recipe, so --dry-run, run.json and the report show it.
_MV_DROP_PATH = ('drop path 0.2 for every variant, as the published runs: the official configs '
                 'ask T 0.2, S 0.3, B 0.5, but the official downstream wrapper never forwards '
                 'drop_path_rate, so its backbone default 0.2 trained')
_MV_NORM_DECAY = ("no weight decay only on names containing 'norm' (the official configs' key: "
                  'norm1/norm2/outnorm); the stem BN and the heads\' norm layers decay')
_MM_NORM_DECAY = ("no weight decay only on names containing 'norm' (the official configs' key), "
                  'which matches only the SS2D out_norm (14 parameters in the official logs): '
                  'every BatchNorm decays')
# MambaVision ADE20K per variant: the family's recipe is T's and B's (their official logs: 16 GPUs
# x 1 image); a variant that ran otherwise is this recipe with its own GPU count (its config names
# it and holds its per-GPU batch).
_MV_ADE20K = Recipe('mambavision-ade20k', 16, 16, 'linear', "mmseg's linear rule (as mmdet's)",
                    f'{_MV} semantic_segmentation/configs and tools/logs (T, B: 16 GPUs x 1)',
                    deviations=(_MV_DROP_PATH, _MV_NORM_DECAY))
RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe('mambavision-in1k', 4096, 32, 'sqrt',
           "none official (lr 5e-3 is set for 4096); sqrt is timm's rule for LAMB",
           f'paper Sec. 4 (32 A100, batch 4096); {_MV} mambavision/configs/mambavision_*_1k.yaml',
           deviations=('lr 5e-3 as the official yaml; the paper text says 4e-3',),
           reported='best'),  # the official train.py keeps the best EMA top-1
    Recipe('mambavision-coco', 16, 8, 'linear', "mmdet's auto_scale_lr rule",
           f'{_MV} object_detection/configs (2 images x 8 GPUs)',
           deviations=(_MV_DROP_PATH, _MV_NORM_DECAY)),
    _MV_ADE20K,
    # S alone ran 8 GPUs x 2 (its log's environment header and config dump).
    replace(_MV_ADE20K, name='mambavision-ade20k-s', gpus=8,
            source=f'{_MV} semantic_segmentation/configs and tools/logs (S: 8 GPUs x 2)'),
    Recipe('mobilemamba-in1k', 1024, 8, 'linear', 'official: lr 1.5e-3 x batch / 512',
           f'{_MM} README and training logs (8 GPUs x 128)',
           reported='best'),  # the official trainer saves and reports its best EMA top-1
    Recipe('mobilemamba-coco', 16, 4, 'linear', "mmdet's auto_scale_lr rule",
           f'{_MM} README (Mask R-CNN / RetinaNet: 4 GPUs x 4)', deviations=(_MM_NORM_DECAY,)),
    Recipe('mobilemamba-ssdlite', 192, 8, 'linear', "mmdet's auto_scale_lr rule",
           f'{_MM} public SSDLite config (24 images x 8 GPUs)', deviations=(_MM_NORM_DECAY,)),
    Recipe('mobilemamba-ade20k', 32, 4, 'linear', "mmseg's linear rule (as mmdet's)",
           f'{_MM} README (4 GPUs x 8)', deviations=(_MM_NORM_DECAY,)),
)}

# The official per-variant ImageNet values (mambavision/configs/mambavision_*_1k.yaml; crop_pct
# from the released model cards). MESA: weight and the fraction of training after which it is on.
MAMBAVISION_VARIANTS: dict[str, dict] = {
    'T': dict(mesa=0.5, mesa_start_ratio=0.25, weight_decay=0.05, warmup_epochs=20, crop_pct=1.0),
    'T2': dict(mesa=0.75, mesa_start_ratio=0.25, weight_decay=0.05, warmup_epochs=20,
               crop_pct=0.98),
    'S': dict(mesa=1.0, mesa_start_ratio=0.25, weight_decay=0.05, warmup_epochs=20, crop_pct=0.93),
    'B': dict(mesa=1.0, mesa_start_ratio=0.3, weight_decay=0.075, warmup_epochs=35, crop_pct=1.0),
    'L': dict(mesa=6.0, mesa_start_ratio=0.25, weight_decay=0.12, warmup_epochs=20, crop_pct=1.0),
    'L2': dict(mesa=6.0, mesa_start_ratio=0.25, weight_decay=0.12, warmup_epochs=20,
               crop_pct=1.0),
}
MAMBAVISION_VARIANTS_SOURCE = f'{_MV} mambavision/configs/mambavision_*_1k.yaml'
# The crop_pct of each yaml, which the official train.py validates at every epoch and picks its
# best (reported) epoch by; the model cards' crop_pct above are used only by validate.py.
MAMBAVISION_TRAIN_VAL_CROP = dict(T=1.0, T2=1.0, S=0.875, B=1.0, L=1.0, L2=1.0)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f'unknown recipe {name!r}; known recipes: {", ".join(RECIPES)}') \
            from None


@dataclass(frozen=True)
class BatchPlan:
    """How a run keeps (or approaches) the official global batch on ``gpus`` GPUs."""
    gpus: int
    per_gpu_batch: int
    accumulation: int
    effective_batch: int
    exact: bool

    @property
    def note(self) -> str:
        return (f'{self.gpus} GPUs x {self.per_gpu_batch} x {self.accumulation} accumulation = '
                f'{self.effective_batch} images per step')


def plan_batch(global_batch: int, gpus: int, max_per_gpu: int) -> BatchPlan:
    """Per-GPU batch (at most ``max_per_gpu``) and accumulation for ``global_batch`` on ``gpus``.

    Exact when ``gpus`` divides the global batch and the per-GPU share splits into accumulation
    steps of at most ``max_per_gpu``; otherwise the fewest accumulation steps the per-GPU limit
    allows, with the per-GPU batch that brings the effective batch closest to the official one.
    """
    if gpus < 1 or max_per_gpu < 1:
        raise ValueError(f'gpus={gpus} and the per-GPU batch {max_per_gpu} must be at least 1')
    share = global_batch / gpus
    accumulation = max(1, math.ceil(share / max_per_gpu))
    if share.is_integer():
        share = int(share)
        # The fewest accumulation steps that split the share evenly within the per-GPU limit.
        for acc in range(accumulation, share + 1):
            if share % acc == 0:
                return BatchPlan(gpus, share // acc, acc, global_batch, True)
    exact_per_gpu = global_batch / (gpus * accumulation)
    candidates = {max(1, min(max_per_gpu, n)) for n in (math.floor(exact_per_gpu),
                                                         math.ceil(exact_per_gpu))}
    per_gpu = min(candidates, key=lambda n: (abs(n * gpus * accumulation - global_batch), n))
    return BatchPlan(gpus, per_gpu, accumulation, gpus * per_gpu * accumulation, False)
