"""A run's config as the table generates it today, and whether a finished run still matches it.

Both the runner (before it skips a finished run) and the readers (``status``, the reporter) ask
here, so that "stale" means one thing. Builds configs (``ablations.compose``, imported
when a config is built: the hash alone needs no toolkit).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from .paths import RunKey, cls_run_dir
from .record import readable_record

# Keys whose values are locations, not recipe: two runs that differ only there are the same run.
PATH_KEYS = frozenset({'work_dir', 'data_root', 'ann_file', 'checkpoint', 'load_from', 'resume',
                       'launcher'})


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
                if str(k) not in PATH_KEYS}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value != value:
        return 'nan'
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def config_hash(cfg: Any, upstream: Optional[str] = None) -> str:
    """A hash of a resolved config with every path left out (:data:`PATH_KEYS`). ``upstream``:
    the config hash of the run this one starts from, so a det run goes stale with its cls run."""
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    text = json.dumps([_canonical(data), upstream], sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# A stand-in data root for configs built only to be hashed: paths are not part of the hash.
_ANY_DATA_ROOT = Path('data')


def run_config(key: RunKey, *, data_root: Optional[Path], work_dir: Optional[Path],
               gpus: int = 1, pretrained: Optional[Path] = None, upstream: Optional[str] = None,
               import_modules: bool = True):
    """(config, hash) of one training run; ``import_modules``: as ``build_row_config``'s."""
    from ablations.compose import build_row_config
    cfg = build_row_config(key.table, key.row, key.task, profile=key.profile,
                           data_root=data_root if data_root is not None else _ANY_DATA_ROOT,
                           work_dir=work_dir, seed=key.seed, pretrained=pretrained, gpus=gpus,
                           import_modules=import_modules)
    return cfg, config_hash(cfg, upstream)


def stale_reason(key: RunKey, run_dir: Path, record: dict) -> Optional[str]:
    """Why a finished run no longer matches what the table generates, or None when it does.

    Its own config is rebuilt with the GPU count and hand-over it ran with; a det/seg run is also
    stale when the classification run it started from was rerun or is itself stale.
    """
    recorded = record.get('config_hash')
    if not recorded:
        return 'its record has no config hash (made before runs were hashed)'
    try:
        cfg, today = run_config(key, data_root=None, work_dir=None,
                                gpus=int(record.get('gpus') or 1),
                                pretrained=Path(record['pretrained']) if record.get('pretrained')
                                else None, upstream=record.get('upstream_hash'),
                                import_modules=False)  # only hashed: no model built
    except Exception as err:  # the row or its config no longer builds
        return f'its config no longer builds ({err})'
    if today != recorded:
        ran_with = record.get('table_file') or {}  # a table of your own: its file's sha256
        if ran_with.get('sha256') not in (None, cfg.ablation.get('table_file', {}).get('sha256')):
            return f'its table file {ran_with.get("path")} changed since it ran'
        return 'its config changed since it ran'
    if record.get('upstream_hash') and key.task != 'cls':
        cls_dir = cls_run_dir(run_dir)
        upstream = readable_record(cls_dir)
        if upstream is None:
            return None
        if upstream.get('config_hash') != record['upstream_hash']:
            return 'the classification run it started from was rerun since'
        cls_key = RunKey(key.table, key.profile, key.row, 'cls', key.tag)
        if stale_reason(cls_key, cls_dir, upstream) is not None:
            return 'the classification run it started from is stale'
    return None
