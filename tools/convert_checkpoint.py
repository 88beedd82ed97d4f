"""Convert an official checkpoint into one this suite's configs load.

    python tools/convert_checkpoint.py {mambavision,mobilemamba} SRC DST
        [--arch T | --config CONFIG] [--ema] [--strict]

SRC: an official file (ImageNet, or an mmdet/mmseg downstream one). Its weights are taken from
"state_dict", else "model", else the file itself (``--ema``: "state_dict_ema" first), with any
"module." prefix stripped; the family's ``convert_official_state_dict`` renames them. DST gets
``{'state_dict': ..., 'meta': ...}`` (mmengine's layout): ``mmpretrain.apis.init_model(cfg, DST)``
loads an ImageNet one, ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``
a backbone. The keys are then checked against our model, built from ``--config`` (its whole
``model``), or from ``--arch`` (inferred from the weights when not given, for MambaVision):
missing and unexpected keys and shape mismatches are listed.
"""
from __future__ import annotations

import argparse
import importlib
import pickle
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FAMILIES = {'mambavision': 'backbones.mambavision', 'mobilemamba': 'backbones.mobilemamba'}
MODEL_TYPE = {'mambavision': 'MambaVision', 'mobilemamba': 'MobileMamba'}


def load_official(path: str, ema: bool = False) -> dict:
    """The weights of an official checkpoint file, with any "module." prefix stripped."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        # timm-trained files also pickle their argparse Namespace ("args"), which the safe
        # loader refuses; only ever point this tool at files you trust.
        print(f'note: {path} holds non-tensor objects; loading it with weights_only=False')
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path}: expected a dict of weights, got {type(ckpt).__name__}')
    keys = (['state_dict_ema'] if ema else []) + ['state_dict', 'model']
    for key in keys:
        if isinstance(ckpt.get(key), dict):
            if ema and key != 'state_dict_ema':
                print(f'note: {path} has no state_dict_ema; using "{key}"')
            ckpt = ckpt[key]
            break
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in ckpt.items()}


def convert(family: str, state_dict: dict) -> dict:
    if family not in FAMILIES:
        raise ValueError(f'family must be one of {list(FAMILIES)}, got {family!r}')
    module = importlib.import_module(FAMILIES[family])
    return module.convert_official_state_dict(state_dict)


def infer_mambavision_arch(state_dict: dict) -> Optional[str]:
    """The MambaVision variant whose widths and depths these (converted) weights have."""
    from backbones.mambavision import ARCH_SETTINGS
    prefix = 'backbone.'
    stem = state_dict.get(prefix + 'patch_embed.conv_down.3.weight')
    if stem is None:
        return None
    dim, in_dim = stem.shape[0], stem.shape[1]
    depths = [0] * 4
    for key in state_dict:
        m = re.match(r'backbone\.levels\.(\d)\.blocks\.(\d+)\.', key)
        if m:
            depths[int(m[1])] = max(depths[int(m[1])], int(m[2]) + 1)
    for name, arch in ARCH_SETTINGS.items():
        if (arch['dim'], arch['in_dim'], list(arch['depths'])) == (dim, in_dim, depths):
            return name
    return None


def reference_state_dict(family: str, converted: dict, arch: Optional[str] = None,
                         config: Optional[str] = None) -> tuple[dict, str]:
    """Our model's state dict to compare with, and what it was built from.

    From a config: the whole model. From an arch: the backbone (under "backbone."), plus for an
    ImageNet MambaVision file the classifier (final norm and head.fc); keys outside these are
    the detector's/segmentor's own and are left unchecked.
    """
    if config is not None:
        from tools.complexity import build_model_from_config
        return build_model_from_config(config).state_dict(), f'config {config}'
    import backbones  # noqa: F401  (registers the backbones)
    from mmengine.registry import MODELS
    if family == 'mambavision':
        arch = arch or infer_mambavision_arch(converted)
        if arch is None:
            raise ValueError('cannot tell the MambaVision variant from the weights; pass --arch')
        downstream = any(k.startswith('backbone.outnorm') for k in converted)
        classifier = 'head.fc.weight' in converted
        if downstream:
            backbone = MODELS.build(dict(type='MambaVision', arch=arch, out_norm=True))
        else:
            backbone = MODELS.build(dict(type='MambaVision', arch=arch, out_indices=(3, ),
                                         final_norm=True))
        ref = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
        if classifier:
            out_features = converted['head.fc.weight'].shape[0]
            ref['head.fc.weight'] = torch.empty(out_features, backbone.dims[3])
            ref['head.fc.bias'] = torch.empty(out_features)
        what = 'downstream backbone' if downstream else 'classifier'
        return ref, f'MambaVision-{arch} {what}'
    if arch is None:
        raise ValueError('pass --arch (or --config) to check the keys of this family')
    backbone = MODELS.build(dict(type=MODEL_TYPE[family], arch=arch))
    ref = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    if 'head.l.weight' in converted:  # an ImageNet MobileMamba file: its BN1d + Linear head
        from backbones.mobilemamba import BNLinear
        head = BNLinear(backbone.embed_dims[-1], converted['head.l.weight'].shape[0])
        ref.update({'head.' + k: v for k, v in head.state_dict().items()})
        return ref, f'{family}-{arch} classifier'
    return ref, f'{family}-{arch}'


def compare_keys(converted: dict, reference: dict, checked_prefixes: Optional[tuple] = None
                 ) -> dict:
    """Missing / unexpected keys and shape mismatches of ``converted`` against ``reference``.

    ``checked_prefixes``: only keys starting with one of these count as unexpected (the rest
    are reported as unchecked).
    """
    ignore = 'num_batches_tracked'
    missing = sorted(k for k in reference if k not in converted and ignore not in k)
    extra = [k for k in converted if k not in reference and ignore not in k]
    if checked_prefixes is not None:
        unchecked = sorted(k for k in extra if not k.startswith(checked_prefixes))
        extra = [k for k in extra if k.startswith(checked_prefixes)]
    else:
        unchecked = []
    shapes = sorted(k for k in converted if k in reference and hasattr(converted[k], 'shape')
                    and tuple(converted[k].shape) != tuple(reference[k].shape))
    return dict(missing=missing, unexpected=sorted(extra), shape_mismatch=shapes,
                unchecked=unchecked)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('family', choices=sorted(FAMILIES))
    parser.add_argument('src')
    parser.add_argument('dst')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--arch', help='variant to check the keys against (default: inferred)')
    group.add_argument('--config', help='config whose model to check the keys against')
    parser.add_argument('--ema', action='store_true', help='take "state_dict_ema" if present')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 1 on any missing/unexpected key or shape mismatch')
    args = parser.parse_args(argv)

    converted = convert(args.family, load_official(args.src, args.ema))
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    meta = dict(converted_from=str(args.src), family=args.family,
                converter=f'{FAMILIES[args.family]}.convert_official_state_dict')
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')

    reference, what = reference_state_dict(args.family, converted, args.arch, args.config)
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
