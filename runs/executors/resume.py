"""Where a stopped run resumes: the job's side of resume (the training's side, which saves and
restores the position within an epoch and every RNG, is ``engine.preemption``).

mmengine resumes from the checkpoint named in the run dir's ``last_checkpoint``. Before each
attempt the job makes that a whole, readable file (:func:`repair_resume_point`); which runs
resume in place at all, and which start afresh because their config changed, is decided with
the table (``runs.table.decide``).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Optional

CHECKPOINT = re.compile(r'(epoch|iter)_(\d+)\.pth')


def readable(path: Path) -> bool:
    """Whether a torch checkpoint file is whole: a zip archive whose members all pass their CRC
    (torch.save's format), read without unpickling anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def checkpoints(run_dir: Path) -> list[Path]:
    """mmengine's epoch_N.pth / iter_N.pth in a run dir, newest (highest N) first."""
    found = [(int(m.group(2)), p) for p in run_dir.iterdir()
             if (m := CHECKPOINT.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def repair_resume_point(run_dir: Path) -> Optional[str]:
    """Make mmengine's ``last_checkpoint`` name a readable checkpoint. Returns a sentence saying
    what was done when something was wrong, else None.

    mmengine resumes from the file named in ``last_checkpoint``; a truncated one (a job killed
    while saving, a full disk) would fail the same way on every rerun. Unreadable files are kept,
    renamed ``*.unreadable``, never deleted.
    """
    for tmp in run_dir.glob('.*.tmp'):  # a save cut short (engine.atomic_checkpoint.atomic_write)
        tmp.unlink(missing_ok=True)
    marker = run_dir / 'last_checkpoint'
    if not marker.exists():
        return None
    text = marker.read_text().strip()
    named = Path(text) if text else run_dir / '(empty last_checkpoint)'
    if named.is_file() and readable(named):
        return None
    why = 'missing' if not named.exists() else 'unreadable'
    if named.is_file():
        named.rename(named.with_name(named.name + '.unreadable'))
    for candidate in checkpoints(run_dir):
        if readable(candidate):
            marker.write_text(str(candidate))
            return f'last checkpoint {named.name} is {why}; resuming from {candidate.name} instead'
        candidate.rename(candidate.with_name(candidate.name + '.unreadable'))
    marker.rename(marker.with_name('last_checkpoint.unreadable'))
    return f'last checkpoint {named.name} is {why} and no older one is readable; training restarts'
