"""Time our selective scan against mamba-ssm's ``selective_scan_ref`` on the backbones' shapes.

    python benchmarks/bench_selective_scan.py [--threads 2] [--repeats 5] [--ref-repeats 3]
                                              [--full] [--shapes 0,1]

Both are timed in the same run on CPU, float32, with the inputs of training: delta through
softplus with a bias, D given, every input requiring grad. "fwd" is a forward under
``torch.no_grad()``; "fwd+bwd" is a forward with autograd plus ``backward()``. Times are the
best of ``--repeats`` runs after one warm-up (the reference: best of ``--ref-repeats``, after
one small warm-up call only, its runs taking seconds); the best, not the mean, because on a
shared machine the noise only ever adds time, and the runs of ours and of the reference take
turns so that bursts of load fall on both. The reference backward grows with L squared
(minutes at L = 3136), so for the long shape it is timed only with ``--full``; otherwise it is
measured at two shorter lengths and extrapolated with a*L + b*L^2, and the row says so.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Callable, Dict, List, NamedTuple, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backbones.ops import selective_scan  # noqa: E402


class Shape(NamedTuple):
    name: str
    batch: int
    dim: int
    seqlen: int
    d_state: int
    groups: Optional[int] = None   # grouped B/C: (batch, G, N, L)
    long: bool = False             # reference backward too slow to time by default


SHAPES = [
    Shape('MambaVision-T stage 3', 32, 160, 196, 8),
    Shape('MambaVision-T stage 4', 32, 320, 49, 8),
    Shape('MobileMamba-S6 stage 1 (2 dirs x 320, G=2)', 8, 640, 196, 1, groups=2),
    Shape('long sequence', 2, 192, 3136, 16, long=True),
]
SHORT_LENGTHS = (196, 392)   # where the long shape's reference backward is measured


def make_inputs(shape: Shape, seqlen: Optional[int] = None, seed: int = 0) -> Dict:
    gen = torch.Generator().manual_seed(seed)
    batch, dim, d_state = shape.batch, shape.dim, shape.d_state
    seqlen = seqlen or shape.seqlen
    bc_shape = ((batch, d_state, seqlen) if shape.groups is None
                else (batch, shape.groups, d_state, seqlen))

    def randn(*size):
        return torch.randn(*size, generator=gen)

    inputs = dict(
        u=randn(batch, dim, seqlen), delta=randn(batch, dim, seqlen) - 2,
        A=-torch.arange(1, d_state + 1, dtype=torch.float32).repeat(dim, 1),   # Mamba's init
        B=randn(*bc_shape), C=randn(*bc_shape), D=torch.ones(dim),
        delta_bias=0.5 * randn(dim))
    return {k: v.requires_grad_() for k, v in inputs.items()}


def scan_runs(inputs: Dict, backend: str) -> Dict[str, Callable[[], None]]:
    """The two timed workloads of one backend: 'fwd' and 'fwdbwd'."""
    def forward():
        with torch.no_grad():
            selective_scan(**inputs, delta_softplus=True, backend=backend)

    def forward_backward():
        for tensor in inputs.values():
            tensor.grad = None
        selective_scan(**inputs, delta_softplus=True, backend=backend).sum().backward()

    return {'fwd': forward, 'fwdbwd': forward_backward}


def best_times(runs: Dict[str, Callable[[], None]], repeats: Dict[str, int]) -> Dict[str, float]:
    """Best wall time in ms of each run over its ``repeats``, the runs taking turns.

    Taking turns (ours, reference, ours, ...) lets a burst of load from other processes fall on
    both sides of a ratio rather than on one.
    """
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for turn in range(max(repeats.values())):
        for name, fn in runs.items():
            if turn < repeats[name]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * min(values) for name, values in times.items()}


def extrapolate(lengths: List[int], times: List[float], target: int) -> float:
    """Fit t = a*L + b*L^2 through two points and evaluate it at ``target``.

    Noisy timings can make a coefficient negative; then the longer point is scaled alone, by
    (target / L) (b < 0: linear) or (target / L)^2 (a < 0: quadratic).
    """
    (l1, l2), (t1, t2) = lengths, times
    b = (t2 / l2 - t1 / l1) / (l2 - l1)
    a = t1 / l1 - b * l1
    if b < 0:
        return t2 * target / l2
    if a < 0:
        return t2 * (target / l2) ** 2
    return a * target + b * target ** 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads (default 2)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs of ours')
    parser.add_argument('--ref-repeats', type=int, default=3, help='timed runs of the reference')
    parser.add_argument('--full', action='store_true',
                        help='also time the reference backward at L=3136 (takes minutes)')
    parser.add_argument('--shapes', default=None,
                        help='comma-separated indices into the shape list (default: all)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = SHAPES if args.shapes is None else [SHAPES[int(i)] for i in args.shapes.split(',')]

    print(f'selective scan, CPU float32, {torch.get_num_threads()} thread(s), torch '
          f'{torch.__version__}, {platform.processor() or platform.machine()}')
    print('fwd: forward under no_grad; fwd+bwd: forward with autograd + backward; '
          f'best of {args.repeats} (ours) / {args.ref_repeats} (reference) runs, in ms\n')
    header = (f'{"shape":<44} {"(B, D, L, N)":<20} {"ref fwd":>9} {"ours fwd":>9} {"x":>7} '
              f'{"ref f+b":>10} {"ours f+b":>9} {"x":>7}')
    # Pay mamba-ssm's import and first-call costs before any timing.
    scan_runs(make_inputs(Shape('warm-up', 1, 4, 8, 2)), 'reference')['fwdbwd']()
    print(header)
    print('-' * len(header))
    notes = []
    target_ratio = None
    for shape in shapes:
        dims = f'({shape.batch}, {shape.dim}, {shape.seqlen}, {shape.d_state})'
        inputs = make_inputs(shape)
        runs, repeats = {}, {}
        for side, backend, count in (('ours', 'torch', args.repeats),
                                     ('ref', 'reference', args.ref_repeats)):
            for mode, fn in scan_runs(inputs, backend).items():
                if side == 'ref' and mode == 'fwdbwd' and shape.long and not args.full:
                    continue
                runs[f'{side} {mode}'], repeats[f'{side} {mode}'] = fn, count
        for name in ('ours fwd', 'ours fwdbwd'):   # warm-up: cheap for ours only
            runs[name]()
        timed = best_times(runs, repeats)
        ours = {'fwd': timed['ours fwd'], 'fwdbwd': timed['ours fwdbwd']}
        ref = {'fwd': timed['ref fwd'], 'fwdbwd': timed.get('ref fwdbwd')}
        ref_fb = ref.get('fwdbwd')
        mark = ''
        if ref_fb is None:
            short, short_ours = [], []
            for length in SHORT_LENGTHS:
                short_inputs = make_inputs(shape, length)
                pair = {'ref': scan_runs(short_inputs, 'reference')['fwdbwd'],
                        'ours': scan_runs(short_inputs, 'torch')['fwdbwd']}
                pair['ours']()
                timed = best_times(pair, {'ref': args.ref_repeats, 'ours': args.repeats})
                short.append(timed['ref'])
                short_ours.append(timed['ours'])
            ref_fb = extrapolate(list(SHORT_LENGTHS), short, shape.seqlen)
            mark = '*'
            measured = ', '.join(
                f'{r:.0f} vs ours {o:.1f} ms ({r / o:.0f}x) at L={length}'
                for length, r, o in zip(SHORT_LENGTHS, short, short_ours))
            notes.append(
                f'* {shape.name}: reference fwd+bwd NOT measured at L={shape.seqlen} (minutes) '
                f'but extrapolated with a*L + b*L^2 from {measured}. Use --full to measure it.')
        fwd_ratio, fb_ratio = ref['fwd'] / ours['fwd'], ref_fb / ours['fwdbwd']
        if shape is SHAPES[0]:
            target_ratio = fb_ratio
        ref_fb_text = f'{ref_fb:.1f}{mark}'
        print(f'{shape.name:<44} {dims:<20} {ref["fwd"]:>9.1f} {ours["fwd"]:>9.1f} '
              f'{fwd_ratio:>6.1f}x {ref_fb_text:>10} {ours["fwdbwd"]:>9.1f} '
              f'{fb_ratio:>6.1f}x{mark}')
        del inputs
    if notes:
        print()
        print('\n'.join(notes))
    if target_ratio is not None:
        verdict = 'met' if target_ratio >= 10 else 'NOT met'
        print(f'\ntarget: >= 10x fwd+bwd at {SHAPES[0].name} -> {target_ratio:.1f}x ({verdict})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
