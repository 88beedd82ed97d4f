"""Every selected row of a table checked before anything is queued or written: its flags, the
mixer types it names, and its backbone built at the smoke sizes with one forward pass.

A row's flags are keyword arguments of the backbone, so the backbone is what knows them: each
(row, task) backbone is built from the smoke config its run would start from
(``ablations.compose``) and run once on a batch of 64 px images in eval mode; a mixer or MRFFI
operator the row names by ``type`` must map its input to the same shape and dtype
(docs/mixers.md), and every stage map must come out finite. The first failure is one line naming
the table (its file, for a table of your own), the row, the task, and the bad key or value with
the valid choices the backbone gives.
"""
from __future__ import annotations

import copy
import inspect
import json
import re
from typing import Iterable, Optional

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS

import backbones  # noqa: F401  (registers the backbones in MODELS)

from .compose import build_row_config, merge_row
from .schema import AblationTable, Row
from .table_files import table_file_of

# The smoke profile's images: a batch of two, 64 px.
INPUT = (2, 3, 64, 64)
# A row without overrides: the task's smoke config is built once, each row merged into a copy.
BARE_ROW = Row('(no overrides)', 'row-check')
# Keys of a backbone config that name a replaceable module by ``type`` (docs/mixers.md).
MIXER_KEYS = ('mixer_cfg', 'global_op_cfg', 'local_op_cfg')
# What a backbone passes its mixers itself: never one of the row's keys.
WIDTH_ARGS = ('d_model', 'channels')
UNEXPECTED_KEY = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


class RowError(ValueError):
    """A row that would fail in its training job, said in one line before anything runs."""


def check_rows(table: AblationTable, runs: Iterable[tuple[str, str]]) -> int:
    """Check the backbone of each (row slug, task) in ``runs``; RowError at the first that fails.
    Returns the number of distinct backbones built (rows and tasks often share one)."""
    entry = table_file_of(table)
    where = str(entry.path) if entry else table.name
    bases: dict[str, dict] = {}  # task -> its smoke backbone before any row's overrides
    checked: set[str] = set()
    for slug, task in dict.fromkeys(runs):
        try:
            if task not in bases:
                bases[task] = build_row_config(table, BARE_ROW, task, profile='smoke') \
                    .model.backbone.to_dict()
            cfg = Config(dict(model=dict(backbone=copy.deepcopy(bases[task]))))
            merge_row(cfg, table.row(slug), task)
            backbone = cfg.model.backbone.to_dict()
            key = json.dumps(backbone, sort_keys=True, default=repr)
            if key not in checked:
                check_backbone(backbone)
                checked.add(key)
        except Exception as err:  # noqa: BLE001  (any failure of the row is the user's to see)
            raise RowError(f'{where}: row {slug!r} ({task}): {explain(err)}') from None
    return len(checked)


def check_backbone(cfg: dict) -> None:
    """Build ``cfg`` (a backbone config) and run it once on :data:`INPUT`; ValueError unless
    every mixer it names keeps its input's shape and dtype and every output is a finite
    (batch, C, H, W) map."""
    model = MODELS.build(cfg)
    mixers = _mixer_classes(cfg)
    hooks = [m.register_forward_hook(_keeps_shape) for m in model.modules() if type(m) in mixers]
    model.eval()
    try:
        with torch.no_grad():
            outs = model(torch.randn(INPUT))
    finally:
        for hook in hooks:
            hook.remove()
    for i, out in enumerate(outs if isinstance(outs, (tuple, list)) else (outs,)):
        if not (torch.is_tensor(out) and out.dim() == 4 and out.shape[0] == INPUT[0]):
            raise ValueError(f'stage output {i} is {_shape(out)}, not a (batch, C, H, W) map of '
                             f'the {INPUT[0]} input images')
        if not torch.isfinite(out).all():
            raise ValueError(f'stage output {i} {tuple(out.shape)} is not finite at init')


def explain(err: BaseException) -> str:
    """One line for a row's failure: an unknown keyword is named with the valid ones; the
    backbones' own ValueErrors already name the bad value and the choices."""
    text = (str(err).strip().splitlines() or [''])[0]
    match = UNEXPECTED_KEY.search(text)
    cls = _registered(match.group(1)) if isinstance(err, TypeError) and match else None
    if cls is not None:
        return f'{match.group(1)} has no key {match.group(2)!r}; valid keys: {_keys(cls)}'
    return text if isinstance(err, ValueError) else f'{type(err).__name__}: {text}'


def _mixer_classes(cfg: dict) -> set[type]:
    """The classes the config names by ``type`` under :data:`MIXER_KEYS`."""
    found = set()
    for key in MIXER_KEYS:
        value = cfg.get(key)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            type_ = item.get('type') if isinstance(item, dict) else None
            cls = MODELS.get(type_) if isinstance(type_, str) else type_
            if inspect.isclass(cls):
                found.add(cls)
    return found


def _keeps_shape(module: nn.Module, args: tuple, output) -> None:
    x = args[0]
    if not torch.is_tensor(output) or output.shape != x.shape or output.dtype != x.dtype:
        raise ValueError(f'{type(module).__name__} maps {tuple(x.shape)} {x.dtype} to '
                         f'{_shape(output)}; a mixer keeps its input\'s shape and dtype '
                         f'(docs/mixers.md)')


def _shape(value) -> str:
    return f'{tuple(value.shape)} {value.dtype}' if torch.is_tensor(value) else \
        type(value).__name__


def _registered(name: str) -> Optional[type]:
    """The class registered under ``name`` in MODELS or a registry below it."""
    stack = [MODELS]
    while stack:
        registry = stack.pop()
        cls = registry.module_dict.get(name)
        if cls is not None:
            return cls
        stack.extend(registry.children.values())
    return None


def _keys(cls: type) -> str:
    params = inspect.signature(cls).parameters.values()
    return ', '.join(p.name for p in params if p.name not in WIDTH_ARGS
                     and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
