"""A run's config as the table generates it today, and whether a finished run still matches it.

Both the runner (before it skips a finished run) and the readers (``status``, the reporter) ask
here, so that "stale" means one thing. Builds configs (``ablations.compose``), so it needs
mmengine; ``runs`` alone does not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ablations.compose import build_row_config

from . import RunKey, cls_run_dir, config_hash, readable_record

# A stand-in data root for configs built only to be hashed: paths are not part of the hash.
_ANY_DATA_ROOT = Path('data')


def run_config(key: RunKey, *, data_root: Optional[Path], work_dir: Optional[Path],
               gpus: int = 1, pretrained: Optional[Path] = None, upstream: Optional[str] = None):
    """(config, hash) of one training run."""
    cfg = build_row_config(key.table, key.row, key.task, profile=key.profile,
                           data_root=data_root if data_root is not None else _ANY_DATA_ROOT,
                           work_dir=work_dir, seed=key.seed, pretrained=pretrained, gpus=gpus)
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
        _, today = run_config(key, data_root=None, work_dir=None, gpus=int(record.get('gpus') or 1),
                              pretrained=Path(record['pretrained']) if record.get('pretrained')
                              else None, upstream=record.get('upstream_hash'))
    except Exception as err:  # the row or its config no longer builds
        return f'its config no longer builds ({err})'
    if today != recorded:
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
