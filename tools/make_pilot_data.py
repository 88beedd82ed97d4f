"""Generated data at the real datasets' image sizes and in their real on-disk formats, for the
pilots of full-profile runs (``./run_all.sh plan``): the full training pipelines (RandomResizedCrop,
RandAugment, multi-scale resize, crops...) then do the work they do on the real data.

    python -m tools.make_pilot_data --root DIR --tasks cls,det,seg --train-images 1280

The generator is ``runs.datasets.pilot_datasets``; this is its command line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runs.datasets.pilot_datasets import TASKS, make_pilot_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', required=True)
    parser.add_argument('--tasks', default=','.join(TASKS))
    parser.add_argument('--train-images', type=int, default=256)
    parser.add_argument('--force', action='store_true', help='regenerate even if present')
    args = parser.parse_args()
    print(make_pilot_data(args.root, args.tasks.split(','), args.train_images, args.force))


if __name__ == '__main__':
    main()
