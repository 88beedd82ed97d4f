"""Convert an official checkpoint into one this suite's configs load.

    python tools/convert_checkpoint.py {mambavision,mobilemamba} SRC DST
        [--arch T | --config CONFIG] [--ema] [--strict] [--trust-checkpoint]

SRC: an official file (ImageNet, or an mmdet/mmseg downstream one). Its weights are taken from
"state_dict", else "model", else "net", else the file itself (``--ema``: "state_dict_ema" or
"net_E" first), with any "module." prefix stripped; the family's ``convert_official_state_dict`` renames them. DST gets
``{'state_dict': ..., 'meta': ...}`` (mmengine's layout): ``mmpretrain.apis.init_model(cfg, DST)``
loads an ImageNet one, ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``
a backbone. The keys are then checked against our model, built from ``--config`` (its whole
``model``), or from ``--arch`` (inferred from the weights when not given, for MambaVision):
missing and unexpected keys and shape mismatches are listed. A file that is not a checkpoint,
a checkpoint of the other family, a bad arch or config: a one-line error and exit status 2; so is
a file whose unpickling would run code (``backbones.checkpoint_io``), unless ``--trust-checkpoint``.
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

from backbones.checkpoint_io import trust_checkpoints  # noqa: E402
from backbones.convert import (FAMILIES, CheckpointError, compare_keys, convert,  # noqa: E402
                               detect_family, load_official, reference_state_dict)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('family', choices=sorted(FAMILIES))
    parser.add_argument('src')
    parser.add_argument('dst')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--arch', help='variant to check the keys against (default: inferred)')
    group.add_argument('--config', help='config whose model to check the keys against')
    parser.add_argument('--ema', action='store_true',
                        help='take the EMA weights ("state_dict_ema", "net_E") if present')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 1 on any missing/unexpected key or shape mismatch')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load SRC with weights_only=False (only a file you trust fully: '
                             'unpickling can run code)')
    args = parser.parse_args(argv)
    trust_checkpoints(args.trust_checkpoint)
    try:
        return _convert_and_check(args)
    except (ValueError, OSError) as err:
        # A user mistake (bad file, arch, family or config): one line, exit 2.
        print(f'convert_checkpoint: error: {str(err).splitlines()[0]}', file=sys.stderr)
        sys.exit(2)


def _convert_and_check(args: argparse.Namespace) -> dict:
    if args.config is not None and not Path(args.config).is_file():
        raise CheckpointError(f'--config {args.config}: no such file')
    weights = load_official(args.src, args.ema)
    found = detect_family(weights)
    if found is not None and found != args.family:
        raise CheckpointError(f'{args.src} holds {found} weights, not {args.family}; '
                              f'run: convert_checkpoint.py {found} ...')
    converted = convert(args.family, weights)
    reference, what = reference_state_dict(args.family, converted, args.arch, args.config)
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    meta = dict(converted_from=str(args.src), family=args.family,
                converter=f'{FAMILIES[args.family]}.convert_official_state_dict')
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')

    prefixes = None if args.config else ('backbone.', 'head.')
    report = compare_keys(converted, reference, prefixes)
    print(f'checked against {what}:')
    for name in ('missing', 'unexpected', 'shape_mismatch'):
        keys = report[name]
        print(f'  {name} keys ({len(keys)}){":" if keys else ""}')
        for key in keys:
            print(f'    {key}')
    if report['unchecked']:
        print(f'  not checked ({len(report["unchecked"])} keys outside the backbone, e.g. '
              f'{report["unchecked"][0]})')
    bad = report['missing'] or report['unexpected'] or report['shape_mismatch']
    if args.strict and bad:
        sys.exit(1)
    return report


if __name__ == '__main__':
    main()
