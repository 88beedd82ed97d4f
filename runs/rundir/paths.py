"""Where a run's files are: the layout of a work dir and the names of a run dir's files.

    <work_dir>/<table>/<profile>/<row>/<task>/seed<k>/       a training run
    <work_dir>/<table>/<profile>/<row>/<task>/eval-<tag>/    an evaluation of a checkpoint
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

RECORD = 'run.json'
CONFIG = 'config.py'
CONSOLE = 'console.log'
# A link to the checkpoint a finished run hands on (det/seg start from their row's cls run).
HANDOVER = 'final.pth'
# Beside a profile's runs (<work_dir>/<table>/<profile>/): where --seeds auto left each claim.
SEED_ROUNDS = 'seed_rounds.json'

SEED_DIR = re.compile(r'seed(\d+)')
EVAL_DIR = re.compile(r'eval-([0-9a-f]{6,64})')
TIMESTAMP = re.compile(r'\d{8}_\d{6}')
PathLike = Union[str, Path]


@dataclass(frozen=True)
class RunKey:
    """Which run a dir holds. ``tag`` is ``seed<k>`` for training, ``eval-<sha>`` for an eval."""
    table: str
    profile: str
    row: str
    task: str
    tag: str

    @classmethod
    def train(cls, table: str, profile: str, row: str, task: str, seed: int) -> 'RunKey':
        return cls(table, profile, row, task, f'seed{seed}')

    @classmethod
    def eval(cls, table: str, profile: str, row: str, task: str, sha256: str) -> 'RunKey':
        return cls(table, profile, row, task, f'eval-{sha256[:12]}')

    @property
    def kind(self) -> str:
        return 'eval' if self.tag.startswith('eval-') else 'train'

    @property
    def seed(self) -> Optional[int]:
        match = SEED_DIR.fullmatch(self.tag)
        return int(match.group(1)) if match else None

    @property
    def name(self) -> str:
        return f'{self.table}/{self.profile}/{self.row}/{self.task}/{self.tag}'

    def dir(self, work_dir: PathLike) -> Path:
        return Path(work_dir) / self.table / self.profile / self.row / self.task / self.tag


def cls_run_dir(run_dir: PathLike) -> Path:
    """The dir of the classification run of the same row and seed, which det/seg start from."""
    run_dir = Path(run_dir)
    return run_dir.parents[1] / 'cls' / run_dir.name


def table_root(work_dir: PathLike, table: str) -> Path:
    """``<work_dir>/<table>``, or ``work_dir`` itself when it already is that folder."""
    work_dir = Path(work_dir)
    root = work_dir / table
    if not root.is_dir() and work_dir.name == table:
        return work_dir
    return root


def iter_run_dirs(work_dir: PathLike, table: str, profiles: Optional[tuple[str, ...]] = None,
                  rows: Optional[set[str]] = None, tasks: Optional[tuple[str, ...]] = None,
                  ) -> Iterator[tuple[RunKey, Path, Optional[str]]]:
    """Every run dir of a table on disk, as ``(key, dir, None)``; a folder that does not fit the
    layout comes as ``(None, folder, why)`` so that callers can say why they ignored it."""
    root = table_root(work_dir, table)
    if not root.is_dir():
        return
    for profile_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.')):
        if profiles is not None and profile_dir.name not in profiles:
            yield None, profile_dir, f'not a profile ({", ".join(profiles)})'
            continue
        for row_dir in sorted(p for p in profile_dir.iterdir() if p.is_dir()):
            if rows is not None and row_dir.name not in rows:
                yield None, row_dir, f'not a row of {table}'
                continue
            for task_dir in sorted(p for p in row_dir.iterdir() if p.is_dir()):
                if tasks is not None and task_dir.name not in tasks:
                    yield None, task_dir, f'{table} has no task {task_dir.name!r}'
                    continue
                for run_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
                    if not (SEED_DIR.fullmatch(run_dir.name) or EVAL_DIR.fullmatch(run_dir.name)):
                        yield None, run_dir, 'not a seed<k> or eval-<sha> folder'
                        continue
                    yield (RunKey(table, profile_dir.name, row_dir.name, task_dir.name,
                                  run_dir.name), run_dir, None)


def handover_checkpoint(cls_run_dir: PathLike) -> Optional[Path]:
    """The checkpoint a det/seg run of the same row starts from: the cls run's best one.

    Both ImageNet recipes report (and the papers' downstream runs start from) the best EMA epoch,
    which ``save_best`` keeps however many regular checkpoints are pruned; its ``state_dict``
    holds the EMA weights (mmengine's EMAHook swaps them in when saving). Without a best file
    (a recipe that does not validate) the file named in ``last_checkpoint``. None if neither.
    """
    run_dir = Path(cls_run_dir)
    best = sorted(run_dir.glob('best_*.pth'), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    marker = run_dir / 'last_checkpoint'
    if marker.exists():
        path = Path(marker.read_text().strip())
        if path.exists():
            return path
    return None
