"""Models from configs, and weights into models: the one way the suite's tools, runs and
reports build a config's model outside a Runner, load a checkpoint's weights into it, and fold
its BatchNorms for inference.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Union

import torch.nn as nn

if TYPE_CHECKING:
    from mmengine.config import Config

# Parts of a model that may carry a ``fuse()`` (our MobileMamba backbone and its BN+Linear head).
FUSABLE_PARTS = ('backbone', 'neck', 'head')


def build_model_from_config(cfg: Union['Config', str, Path]) -> nn.Module:
    """``cfg.model`` built through the registry of the config's toolkit (its ``default_scope``).

    Only that toolkit is imported: an mmpretrain config never imports mmdet, and so on. The
    default scope is switched for the build only, not for the rest of the process.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings
    if not isinstance(cfg, Config):
        cfg = Config.fromfile(str(cfg))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    scope = cfg.get('default_scope')
    if not scope:
        from mmengine.registry import MODELS
        return MODELS.build(cfg.model)
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


def load_weights(model: nn.Module, state_dict: dict) -> None:
    """Load ``state_dict`` into ``model``; anything missing but BN step counters is an error."""
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith('num_batches_tracked')]
    if missing or result.unexpected_keys:
        raise ValueError(f'weights do not fit the model: {len(missing)} missing (e.g. '
                         f'{missing[:2]}), {len(result.unexpected_keys)} unexpected (e.g. '
                         f'{result.unexpected_keys[:2]})')


def fuse_bn(model: nn.Module) -> list[str]:
    """Fold BatchNorms into the layers before them, in place; the names of the parts fused."""
    device = next(model.parameters()).device
    model.eval()
    fused = []
    for name in FUSABLE_PARTS:
        part = getattr(model, name, None)
        if callable(getattr(part, 'fuse', None)):
            part.fuse()
            fused.append(name)
    if not fused:
        raise ValueError(f'--fuse-bn: {type(model).__name__} has no part with a fuse() '
                         f'(looked at {", ".join(FUSABLE_PARTS)})')
    model.to(device)
    return fused
