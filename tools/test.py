"""Evaluate one config's model with given weights through mmengine's test loop (mmpretrain,
mmdet and mmseg alike; the config's ``default_scope`` picks the toolkit).

    python tools/test.py CONFIG --work-dir DIR --weights FILE [--fuse-bn]
        [--launcher none|pytorch|slurm]

FILE holds ``{'state_dict': ...}`` in the names of the config's model (tools/eval_checkpoint.py
writes it after checking every key against that model). The weights are loaded into the built
model before the loop, not through ``load_from``: mmengine loads that non-strictly and would
only warn about a missing key. ``--fuse-bn`` then folds the model's BatchNorms into the layers
before them (MobileMamba's ``fuse``). The metrics go to ``<DIR>/<timestamp>/<timestamp>.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

# See tools/train.py: mmengine checkpoints hold objects torch's safe loader refuses.
os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

# Parts of a model that may carry a ``fuse()`` (our MobileMamba backbone and its BN+Linear head).
FUSABLE_PARTS = ('backbone', 'neck', 'head')


def load_weights(model: torch.nn.Module, state_dict: dict) -> None:
    """Load ``state_dict`` into ``model``; anything missing but BN step counters is an error."""
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith('num_batches_tracked')]
    if missing or result.unexpected_keys:
        raise ValueError(f'weights do not fit the model: {len(missing)} missing (e.g. '
                         f'{missing[:2]}), {len(result.unexpected_keys)} unexpected (e.g. '
                         f'{result.unexpected_keys[:2]})')


def fuse_bn(model: torch.nn.Module) -> list[str]:
    """Fold BatchNorms into the layers before them, in place; the names of the parts fused."""
    device = next(model.parameters()).device
    model.eval()
    fused = []
    for name in FUSABLE_PARTS:
        part = getattr(model, name, None)
        if callable(getattr(part, 'fuse', None)):
            part.fuse()
            fused.append(name)
    if not fused:
        raise ValueError(f'--fuse-bn: {type(model).__name__} has no part with a fuse() '
                         f'(looked at {", ".join(FUSABLE_PARTS)})')
    model.to(device)
    return fused


def run_test(cfg: Config, state_dict: dict, fuse: bool = False) -> dict:
    """mmengine's test loop on ``cfg`` with ``state_dict`` loaded; the metrics it returns."""
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner
    cfg = cfg.copy()
    cfg.load_from = None
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    load_weights(model, state_dict)
    if fuse:
        fuse_bn(model)
    return runner.test()


def main(argv: Optional[list[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--weights', required=True, help="{'state_dict': ...} in our names")
    parser.add_argument('--fuse-bn', action='store_true')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.launcher = args.launcher
    weights = torch.load(args.weights, map_location='cpu', weights_only=True)
    return run_test(cfg, weights['state_dict'], args.fuse_bn)


if __name__ == '__main__':
    main()
