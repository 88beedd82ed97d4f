"""Official checkpoints into this suite's layout: read a file, unwrap its weights (EMA or not),
tell its family and variant from the key names, rename with the family's
``convert_official_state_dict``, and compare the keys with our model's. The command line is
``tools/convert_checkpoint.py``; ``runs.commands.evaluate`` uses the same functions.
"""
from __future__ import annotations

import importlib
import re
from typing import Optional

import torch

from . import MODEL_TYPES
from .build import build_model_from_config
from .checkpoint_io import CheckpointError, UnsafeCheckpointError, load_checkpoint  # noqa: F401

FAMILIES = {'mambavision': 'backbones.mambavision', 'mobilemamba': 'backbones.mobilemamba'}


# Where checkpoints keep their weights: timm and mmengine ("state_dict"), the official
# MambaVision loader ("model"), the official MobileMamba trainer ("net", its EMA "net_E").
WEIGHT_KEYS = ('state_dict', 'model', 'net')
EMA_KEYS = ('state_dict_ema', 'net_E', 'model_ema')


def read_checkpoint(path) -> dict:
    """The object a checkpoint file holds, a dict; CheckpointError for anything else (and
    UnsafeCheckpointError for a file whose unpickling would run code: see checkpoint_io)."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: not a checkpoint: expected a dict of weights, got '
                              f'{type(ckpt).__name__}')
    return ckpt


def unwrap(ckpt: dict, ema: bool = False) -> tuple[dict, Optional[str]]:
    """The weights in a checkpoint and the key they were under (None: the file itself).

    ``ema``: the EMA weights when the file has them (else the plain ones). Any "module."
    prefix is stripped.
    """
    keys = (EMA_KEYS if ema else ()) + WEIGHT_KEYS
    where = next((k for k in keys if isinstance(ckpt.get(k), dict)), None)
    weights = ckpt[where] if where else ckpt
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in weights.items()}, where


def load_official(path: str, ema: bool = False) -> dict:
    """The weights of an official checkpoint file, with any "module." prefix stripped."""
    weights, where = unwrap(read_checkpoint(path), ema)
    if ema and where not in EMA_KEYS:
        print(f'note: {path} has no EMA weights ({", ".join(EMA_KEYS)}); using '
              f'"{where or "the file itself"}"')
    if not any(torch.is_tensor(v) for v in weights.values()):
        raise CheckpointError(f'{path}: holds no tensors, not a checkpoint of weights')
    return weights


def detect_family(state_dict: dict) -> Optional[str]:
    """Which backbone family a (converted or official) state dict holds, from its key names."""
    names = {k[len('backbone.'):] if k.startswith('backbone.') else k for k in state_dict}
    if any(k.startswith('levels.') for k in names) and \
            any(k.startswith('patch_embed.conv_down.') for k in names):
        return 'mambavision'
    if any(re.match(r'blocks[123]\.', k) for k in names) and \
            any(k.startswith('patch_embed.') for k in names):
        return 'mobilemamba'
    return None


def summarize_keys(report: dict, limit: int = 2) -> str:
    """One line: the counts of missing / unexpected / mismatched keys, with a few examples."""
    parts = []
    for name, label in (('missing', 'missing'), ('unexpected', 'unexpected'),
                        ('shape_mismatch', 'shape mismatches')):
        keys = report[name]
        if keys:
            shown = ', '.join(keys[:limit]) + (', ...' if len(keys) > limit else '')
            parts.append(f'{len(keys)} {label} ({shown})')
    return '; '.join(parts) or 'keys match'


def convert(family: str, state_dict: dict) -> dict:
    if family not in FAMILIES:
        raise ValueError(f'family must be one of {list(FAMILIES)}, got {family!r}')
    module = importlib.import_module(FAMILIES[family])
    return module.convert_official_state_dict(state_dict)


def infer_mambavision_arch(state_dict: dict) -> Optional[str]:
    """The MambaVision variant whose widths and depths these (converted) weights have."""
    from .mambavision import ARCH_SETTINGS
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
        return build_model_from_config(config).state_dict(), f'config {config}'
    from mmengine.registry import MODELS  # the backbones registered themselves there
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
    backbone = MODELS.build(dict(type=MODEL_TYPES[family], arch=arch))
    ref = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    if 'head.l.weight' in converted:  # an ImageNet MobileMamba file: its BN1d + Linear head
        from .mobilemamba import BNLinear
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
