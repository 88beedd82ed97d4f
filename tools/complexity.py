"""Parameters and FLOPs of a config's model or of a backbone variant, against the papers.

    python tools/complexity.py CONFIG [--shape 224 | --shape H W]
    python tools/complexity.py --model mambavision --arch T [--shape 224] [--num-classes 1000]
    python tools/complexity.py --model mambavision --arch all

The counting is ``backbones.model_complexity`` (FLOPs are multiply-accumulates, the papers' unit; the
``w/o attn`` column leaves attention out, as fvcore does); the published numbers are MambaVision's
Table 1 (``ablations.mambavision_tables.TABLE1_COMPLEXITY``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run by path
    sys.path.insert(0, str(REPO))

from ablations.mambavision_tables import TABLE1_COMPLEXITY, TABLE1_SHAPE  # noqa: E402
from backbones.build import build_model_from_config  # noqa: E402
from backbones.model_complexity import (  # noqa: E402
    MODEL_TYPES,
    _input_shape,
    build_variant,
    measure_complexity,
)

# Published (params M, GFLOPs) per (family, variant).
PAPER = {('mambavision', arch): numbers for arch, numbers in TABLE1_COMPLEXITY.items()}


def _row(name: str, result: dict, paper: Optional[tuple]) -> str:
    p, f = result['params'] / 1e6, result['flops'] / 1e9
    f_noattn = (result['flops'] - result['attn_flops']) / 1e9
    ref = f'{paper[0]:>8.1f} {paper[1]:>8.1f}' if paper else f'{"-":>8} {"-":>8}'
    return (f'{name:<28} {p:>9.2f} {f:>9.3f} {f_noattn:>9.3f} {result["scan_flops"] / 1e9:>8.4f} '
            f'{ref}')


def _header() -> str:
    return (f'{"model":<28} {"params M":>9} {"GFLOPs":>9} {"w/o attn":>9} {"scan":>8} '
            f'{"paper M":>8} {"paper G":>8}')


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='an mmengine config whose `model` to count')
    parser.add_argument('--model', choices=sorted(MODEL_TYPES), help='a backbone family')
    parser.add_argument('--arch', default='T', help="variant, or 'all' (with --model)")
    parser.add_argument('--num-classes', type=int, default=1000,
                        help='MambaVision: add the official head for this many classes (0: none)')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='S or H W')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    if (args.config is None) == (args.model is None):
        parser.error('give either a CONFIG or --model (with --arch)')
    try:
        return _measure(args)
    except (ValueError, KeyError, OSError, SyntaxError, ImportError) as err:
        # A user mistake (bad arch, shape or config file): one line, exit 2.
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if args.config and args.config not in why:
            why = f'config {args.config}: {why}'
        print(f'complexity: error: {why}', file=sys.stderr)
        sys.exit(2)


def _measure(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(args.threads)
    shape = _input_shape(args.shape)
    if args.config is not None:
        if not Path(args.config).is_file():
            raise FileNotFoundError(f'config {args.config}: no such file')
        try:
            model = build_model_from_config(args.config)
        except (KeyError, AttributeError) as err:
            raise ValueError(f'config {args.config}: no buildable `model` ({err})') from None
    at_paper_shape = shape[1:] == TABLE1_SHAPE
    print(f'input {shape[0]}x{shape[1]}x{shape[2]}, batch 1; FLOPs = multiply-accumulates')
    print(_header())
    results = []
    if args.config:
        result = measure_complexity(model, shape)
        print(_row(Path(args.config).name, result, None))
        results.append(result)
        return results
    if args.arch.lower() == 'all':
        archs = [a for (m, a) in PAPER if m == args.model]
    else:
        archs = [args.arch]
    for arch in archs:
        model = build_variant(args.model, arch, args.num_classes)
        result = measure_complexity(model, shape)
        known = (at_paper_shape and args.num_classes == 1000)
        paper = PAPER.get((args.model, arch.upper())) if known else None
        print(_row(f'{args.model}-{arch}', result, paper))
        results.append(dict(result, arch=arch, paper=paper))
    return results


if __name__ == '__main__':
    main()
