"""Generate the smoke profile's tiny datasets, in the real on-disk formats of the full ones
(layout and contents: ``runs.datasets.tiny_datasets``).

    python tools/make_tiny_datasets.py [--root data/smoke] [--force]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runs.datasets.tiny_datasets import make_tiny_datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', default='data/smoke')
    parser.add_argument('--force', action='store_true', help='regenerate even if present')
    args = parser.parse_args()
    print(make_tiny_datasets(args.root, args.force))


if __name__ == '__main__':
    main()
