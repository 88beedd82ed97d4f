"""Evaluate one config's model with given weights through mmengine's test loop (mmpretrain,
mmdet and mmseg alike; the config's ``default_scope`` picks the toolkit).

    python tools/test.py CONFIG --work-dir DIR --weights FILE [--fuse-bn]
        [--launcher none|pytorch|slurm] [--trust-checkpoint]

FILE holds ``{'state_dict': ...}`` in the names of the config's model (``runs.evaluate``
writes it after checking every key against that model, and runs this script under a launcher
for several GPUs). The loop is ``runs.evaluate.run_test``: the weights go into the built model
strictly, ``--fuse-bn`` folds its BatchNorms first. The metrics go to
``<DIR>/<timestamp>/<timestamp>.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mmengine.config import Config  # noqa: E402

from backbones.checkpoint_io import CheckpointError, load_checkpoint  # noqa: E402
from runs.devices import prepare_distributed  # noqa: E402
from runs.evaluate import run_test  # noqa: E402


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
        print(f'test.py: error: {err}', file=sys.stderr)
        sys.exit(2)
    return run_test(cfg, weights['state_dict'], args.fuse_bn)


if __name__ == '__main__':
    main()
