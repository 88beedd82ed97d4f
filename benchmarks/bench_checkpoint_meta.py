"""The config text each checkpoint's meta carries: mmengine's Config against the trainer's
TextOnceConfig, on a row's generated smoke config.

    python benchmarks/bench_checkpoint_meta.py [--table table4] [--row conv2-concat] [--task cls]
                                         [--saves 12]

mmengine formats the whole config with yapf for every checkpoint it saves; a smoke cls run saves
two per epoch (the epoch's and the best). Prints seconds for ``--saves`` texts with each, and the
ratio.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmengine.config import Config  # noqa: E402

from ablations.compose import build_row_config  # noqa: E402
from engine.trainer import TextOnceConfig  # noqa: E402


def seconds(cfg: Config, saves: int) -> float:
    start = time.perf_counter()
    for _ in range(saves):
        cfg.pretty_text
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--table', default='table4')
    parser.add_argument('--row', default='conv2-concat')
    parser.add_argument('--task', default='cls', choices=['cls', 'det', 'seg'])
    parser.add_argument('--saves', type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'config.py'
        build_row_config(args.table, args.row, args.task, 'smoke').dump(str(path))
        plain = Config.fromfile(str(path))
        once = TextOnceConfig.of(Config.fromfile(str(path)))
    base, new = seconds(plain, args.saves), seconds(once, args.saves)
    print(f'{args.saves} checkpoint texts of {args.table} {args.row} {args.task} (smoke): '
          f'mmengine Config {base:.2f} s, TextOnceConfig {new:.2f} s, ratio {base / new:.1f}x')


if __name__ == '__main__':
    main()
