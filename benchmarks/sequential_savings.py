"""Seed-runs of a table's claims under ``--seeds auto`` against a fixed ``--seeds N``.

    python benchmarks/sequential_savings.py [--table table4] [--max-seeds 5 10 20]
                                            [--trials 20000] [--seed 0] [--sizes]

Plants each claim row's published numbers as true means with each metric's prior SD (metrics
independent; box and mask AP come from one run and are in truth correlated), runs the design of
``runs.table.sequential`` on every trial, and prints the mean seed-runs (one row, one task, one
seed) against N for each, then per claim-metric pair how often it ends reproduced, contradicted or
futile and at how many seeds. ``--sizes`` adds the max-seeds each pair needs for the design's
power at the paper's step (slow for pairs whose step is a small fraction of the SD).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations import METRICS, get_table  # noqa: E402
from runs.table import sequential as seq  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--table', default='table4')
    parser.add_argument('--max-seeds', type=int, nargs='+', default=[5, 10, 20])
    parser.add_argument('--trials', type=int, default=20_000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sizes', action='store_true')
    args = parser.parse_args()
    table = get_table(args.table)
    for name in ('ROUNDS', 'SPENDING', 'VARIANCE', 'FUTILITY', 'MULTIPLICITY'):
        print(f'{name.lower()}: {getattr(seq, name)}')
    for n in args.max_seeds:
        values = seq.planted(table, n, args.trials, np.random.default_rng([args.seed, n]))
        runs, fixed = seq.seed_runs(table, values, n)
        se = runs.std() / math.sqrt(args.trials)
        print(f'\n{table.name}, max-seeds {n}: {runs.mean():.1f} seed-runs (SE {se:.2f}) '
              f'against {fixed} fixed: {fixed - runs.mean():.1f} saved '
              f'({1 - runs.mean() / fixed:.0%}); {args.trials} trials')
        print(f'  {"claim":32} {"metric":8} {"step/SD":>7} {"reprod.":>7} {"contra.":>7} '
              f'{"futile":>7} {"seeds":>6}' + ('  size' if args.sizes else ''))
        for pair in seq.pairs(table):
            sd = METRICS[pair.metric].prior_sd
            look = seq.replay(values[pair.claim.better, pair.metric],
                              values[pair.claim.worse, pair.metric], n, pair.step, sd)
            share = [float((look.code == c).mean()) for c in (1, 2, 3)]
            size = f'  {seq.seeds_needed(pair.step, sd)}' if args.sizes else ''
            print(f'  {pair.claim.text[:32]:32} {pair.metric:8} {pair.step / sd:7.2f} '
                  + ' '.join(f'{s:7.3f}' for s in share) + f' {look.n.mean():6.2f}' + size)


if __name__ == '__main__':
    main()
