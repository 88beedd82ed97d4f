"""The test process: one config's model with given weights through mmengine's test loop
(mmpretrain, mmdet and mmseg alike; the config's ``default_scope`` picks the toolkit). What
``eval`` starts under a launcher for several GPUs (``tools/test.py`` is a thin front for it):

    python -m engine.tester CONFIG --work-dir DIR --weights FILE [--fuse-bn]
        [--launcher none|pytorch|slurm] [--trust-checkpoint]

FILE holds ``{'state_dict': ...}`` in the names of the config's model (``runs.commands.evaluate``
writes it after checking every key against that model, and runs this script under a launcher
for several GPUs). The loop is :func:`run_test`: the weights go into the built model
strictly, ``--fuse-bn`` folds its BatchNorms first. The metrics go to
``<DIR>/<timestamp>/<timestamp>.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from mmengine.config import Config

from backbones.build import fuse_bn, load_weights
from backbones.checkpoint_io import CheckpointError, load_checkpoint
from engine.process_group import prepare_distributed


def run_test(cfg, state_dict: dict, fuse: bool = False) -> dict:
    """mmengine's test loop on ``cfg`` with ``state_dict`` loaded; the metrics it returns.

    The weights go into the built model before the loop, not through ``load_from``: mmengine
    loads that non-strictly and would only warn about a missing key. ``fuse``: fold the model's
    BatchNorms first (MobileMamba's inference protocol).
    """
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner
    from mmengine.utils import import_modules_from_strings
    if cfg.get('custom_imports'):  # (a config file does this on load; one built here not)
        import_modules_from_strings(**cfg['custom_imports'])
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
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load FILE with weights_only=False (a file you trust fully)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.launcher = args.launcher
    prepare_distributed(cfg, args.launcher)  # CPU processes: gloo, where there is no GPU
    try:
        weights = load_checkpoint(args.weights, trust=args.trust_checkpoint)
        if not isinstance(weights, dict) or not isinstance(weights.get('state_dict'), dict):
            raise CheckpointError(f"{args.weights}: no 'state_dict' in it")
    except CheckpointError as err:
        print(f'test: error: {err}', file=sys.stderr)
        sys.exit(2)
    return run_test(cfg, weights['state_dict'], args.fuse_bn)


if __name__ == '__main__':
    main()
