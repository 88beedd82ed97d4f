"""Params and FLOPs of each row's model, for the columns beside the metrics.

The reporter knows nothing of models: the row's config comes from ``ablations.compose`` and
the count from ``backbones.model_complexity``, both imported only here and only when asked, so a
missing toolkit turns into an ``error: ...`` cell instead of a missing report. Results are
cached per row in the output folder, keyed by the model config and input size.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

from ablations import AblationTable

CACHE_NAME = 'complexity_cache.json'
# The model the paper counts is the full one, whatever profile the runs used.
PROFILE = 'full'


def row_model_config(table: str, row: str):
    """The row's classification config (mmengine Config) in the full profile."""
    from ablations.compose import build_row_config

    # The full profile asks where the data lives; counting a model reads no data.
    return build_row_config(table, row, 'cls', profile=PROFILE, data_root='data')


def measure_model(cfg, input_size: int) -> dict:
    """Build ``cfg.model`` through its toolkit's registry and count it at ``input_size``."""
    from backbones.build import build_model_from_config
    from backbones.model_complexity import measure_complexity
    model = build_model_from_config(cfg)
    model.eval()
    # (C, H, W): one image, no batch dimension, at the paper's input size.
    result = measure_complexity(model, (3, input_size, input_size))
    return dict(params=int(result['params']), flops=int(result['flops']))


def _config_key(cfg, input_size: int) -> str:
    data = cfg.to_dict()
    text = json.dumps(data.get('model'), sort_keys=True, default=str)
    own = (data.get('ablation') or {}).get('table_file')
    if own:  # a table file's mixer changes without its config: its file's hash counts too
        text += own['sha256']
    return hashlib.sha256(f'{input_size}:{text}'.encode()).hexdigest()[:16]


def _short_error(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [''])[0]
    text = f'{type(err).__name__}: {first}' if first else type(err).__name__
    # A cell, not a traceback; the full message goes to the warnings.
    return text if len(text) <= 80 else text[:77] + '...'


def complexity_of_rows(table: AblationTable, out_dir: Path,
                       config_of: Optional[Callable] = None,
                       measure: Optional[Callable] = None
                       ) -> tuple[dict[str, dict], list[str]]:
    """``{slug: {'params', 'flops'}}`` or ``{slug: {'error': text}}`` for every row, and
    warnings. Errors are not cached: a later report tries again."""
    # Looked up at call time so that tests can replace the model-building functions.
    config_of = config_of or row_model_config
    measure = measure or measure_model
    cache_file = out_dir / CACHE_NAME
    cache: dict = {}
    if cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text())
        except ValueError:
            cache = {}
    results: dict[str, dict] = {}
    failures: dict[str, list[str]] = {}  # message -> rows, so one cause is one warning
    for row in table.rows:
        try:
            cfg = config_of(table.name, row.slug)
            key = _config_key(cfg, table.input_size)
            hit: Optional[dict] = cache.get(f'{table.name}/{row.slug}')
            if hit and hit.get('key') == key:
                results[row.slug] = dict(params=hit['params'], flops=hit['flops'])
                continue
            results[row.slug] = measure(cfg, table.input_size)
            cache[f'{table.name}/{row.slug}'] = dict(key=key, **results[row.slug])
        except Exception as err:  # noqa: BLE001 - any failure becomes a cell, not a crash
            results[row.slug] = dict(error=_short_error(err))
            failures.setdefault(f'{type(err).__name__}: {err}', []).append(row.slug)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(cache, indent=1, sort_keys=True))
    warnings = [f'params/FLOPs of {", ".join(rows)}: {message}'
                for message, rows in failures.items()]
    return results, warnings
