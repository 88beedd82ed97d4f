"""Build the official-MobileMamba fixture of tests/test_eval.py from an official checkout.

    ./run_all.sh python tools/make_mobilemamba_fixture.py CHECKOUT [--out FILE] [--commit SHA]

CHECKOUT: a copy of https://github.com/lewandofskee/MobileMamba (its ``model/`` and ``util/``
folders are what is imported). The script builds a tiny instance of the official
``MobileMamba`` class (the official S6 layout at smoke widths), gives every weight a random
value and every BatchNorm non-trivial statistics, and saves its logits on a fixed input together
with its state dict, in the official names, as the official trainer saves them (under "net").
The test converts that state dict and compares our model's logits with the official ones.

Batch 1 only: on CPU the official SS2D merges its two scan directions with a broadcast that
mixes the samples of a batch (../shared/reference/mobilemamba.md); at batch 1 it is exact.
fvcore, which the official module imports only to count FLOPs, is replaced by a stub when it is
not installed.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run by path
    sys.path.insert(0, str(REPO))
from runs import git_commit  # noqa: E402

DEFAULT_OUT = REPO / 'tests' / 'fixtures' / 'mobilemamba_official_tiny.pt'
# Keyword arguments of the official MobileMamba class: S6's ratios and kernels at tiny
# widths (48, 32, 32): global/local/identity splits 32/9/7, 16/6/10 and 16/9/7 channels,
# every part present, in under 1 MB.
OFFICIAL_KWARGS = dict(embed_dim=[48, 32, 32], depth=[1, 1, 1], global_ratio=[0.8, 0.7, 0.6],
                       local_ratio=[0.2, 0.2, 0.3], kernels=[7, 5, 3], drop_path=0.,
                       ssm_ratio=2, num_classes=10)
# Odd and non-square: stage maps 5x6, 3x3 and 2x2 exercise the wavelet's padding and the scan
# order.
INPUT_SHAPE = (1, 3, 80, 96)
SEED = 0


def import_official(checkout: Path):
    """The official ``model.mobilemamba.mobilemamba`` module, imported from ``checkout``."""
    if not (checkout / 'model' / 'mobilemamba' / 'mobilemamba.py').is_file():
        raise SystemExit(f'{checkout}: not a MobileMamba checkout (no '
                         f'model/mobilemamba/mobilemamba.py)')
    sys.path.insert(0, str(checkout))
    try:
        importlib.import_module('fvcore.nn')
    except ImportError:
        stub = types.ModuleType('fvcore.nn')
        for name in ('FlopCountAnalysis', 'flop_count_str', 'flop_count', 'parameter_count'):
            setattr(stub, name, None)
        sys.modules['fvcore'] = types.ModuleType('fvcore')
        sys.modules['fvcore.nn'] = stub
    return importlib.import_module('model.mobilemamba.mobilemamba')


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Every trainable weight away from its init (zero-initialised BNs included), BN stats set."""
    for name, p in model.named_parameters():
        if not p.requires_grad:  # the fixed Haar filter banks
            continue
        p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.copy_(torch.randn(n, generator=generator) * 0.3 + 1.0)
            m.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)



def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkout', type=Path, help='an official MobileMamba checkout')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    parser.add_argument('--commit', help='the checkout\'s commit (default: asked from git)')
    args = parser.parse_args(argv)
    official = import_official(args.checkout.resolve())
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = official.MobileMamba(**OFFICIAL_KWARGS)
    randomize(model, generator)
    model.eval()
    x = torch.randn(INPUT_SHAPE, generator=generator)
    with torch.no_grad():
        logits = model(x)
    state_dict = {k: v.clone() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(net=state_dict, input=x, logits=logits, kwargs=OFFICIAL_KWARGS,
                    source=dict(repo='lewandofskee/MobileMamba',
                                commit=(args.commit or git_commit(args.checkout, short=False)
                                        or 'unknown'),
                                cls='model.mobilemamba.mobilemamba.MobileMamba',
                                device='cpu', torch=str(torch.__version__))),
               args.out)
    size = args.out.stat().st_size
    print(f'wrote {args.out} ({size / 1024:.0f} KiB, {len(state_dict)} tensors, logits '
          f'{tuple(logits.shape)})')
    return args.out


if __name__ == '__main__':
    main()
