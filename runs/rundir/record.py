"""run.json, the record of a run: read, written atomically, stamped."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Optional

from .paths import RECORD, PathLike
from .states import RECORDED


class RecordError(ValueError):
    """run.json exists but cannot be read as a record."""


def read_record(run_dir: PathLike) -> Optional[dict]:
    """The run's record; None when there is none; RecordError when it is unreadable."""
    path = Path(run_dir) / RECORD
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RecordError(f'{path}: {err}') from err
    if not isinstance(record, dict):
        raise RecordError(f'{path}: not a JSON object')
    if record.get('status') not in RECORDED:
        raise RecordError(f'{path}: unknown status {record.get("status")!r}; valid: '
                          + ', '.join(RECORDED))
    return record


def readable_record(run_dir: PathLike) -> Optional[dict]:
    """The run's record, or None when there is none or it cannot be read."""
    try:
        return read_record(run_dir)
    except RecordError:
        return None


def write_record(run_dir: PathLike, **fields: Any) -> dict:
    """Update run.json atomically (a reader never sees half a file)."""
    run_dir = Path(run_dir)
    try:
        record = read_record(run_dir) or {}
    except RecordError:
        record = {}
    record.update(fields)
    tmp = run_dir / f'{RECORD}.{os.getpid()}.tmp'
    tmp.write_text(json.dumps(record, indent=2, default=str) + '\n')
    os.replace(tmp, run_dir / RECORD)
    return record


def now() -> str:
    """The record's timestamps: local time to the second, ISO 8601."""
    return dt.datetime.now().isoformat(timespec='seconds')
