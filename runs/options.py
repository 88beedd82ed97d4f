"""The commands' options as typed values: parsed once in the fronts (``tools/``) into frozen
dataclasses, read by the engine, never changed after parsing.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

from ablations import TASKS
from ablations.reduction import Reduction, run_profile
from runs.executors.local import LocalOptions
from runs.executors.slurm import SlurmOptions
from runs.provenance import REPO
from runs.tracking.tracker_runs import TRACKERS

DEFAULT_WORK_DIR = REPO / 'work_dirs'


def frozen_gpus(per_task: Mapping[str, int]) -> Mapping[str, int]:
    """A read-only ``task -> GPUs`` map (options never change after parsing)."""
    return types.MappingProxyType(dict(per_task))


@dataclass(frozen=True)
class TableOptions:
    """What ``./run_all.sh <table>`` was asked to do, parsed once by its front
    (``tools/run_table.py``). ``executor``: the local or the SLURM executor's own options; the
    launcher is the executor's (``LocalOptions.launcher``, or SLURM's)."""
    tables: tuple[str, ...]
    profile: str = 'smoke'
    rows: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    seeds: int = 1
    gpus: Mapping[str, int] = field(default_factory=lambda: frozen_gpus({t: 1 for t in TASKS}))
    executor: Union[LocalOptions, SlurmOptions] = LocalOptions()
    rerun_stale: bool = False
    data_root: Optional[Path] = None
    work_dir: Path = DEFAULT_WORK_DIR
    dry_run: bool = False
    report: bool = True
    report_dir: Optional[Path] = None
    trackers: tuple[str, ...] = ()
    reduction: Reduction = Reduction()  # --schedule-scale, --subset (full profile)
    # --seeds auto --max-seeds N: seeds in rounds until each claim resolves (None: --seeds N)
    max_seeds: Optional[int] = None

    @property
    def launcher(self) -> str:
        return 'slurm' if isinstance(self.executor, SlurmOptions) else self.executor.launcher

    @property
    def run_profile(self) -> str:
        """The profile the runs' identity and dirs carry (``full@0.1+in100`` when reduced)."""
        return run_profile(self.profile, self.reduction)


def split_csv(value: Optional[str]) -> list[str]:
    """``'a, b,,c'`` -> ``['a', 'b', 'c']`` (``--rows``, ``--tasks``, ``--gpus`` lists)."""
    return [v.strip() for v in (value or '').split(',') if v.strip()]



def parse_gpus(value: str) -> dict[str, int]:
    """``8`` (every task) or ``cls=32,det=8,seg=8`` (tasks not named get 1)."""
    try:
        if '=' not in value:
            count = int(value)
            per_task = {t: count for t in TASKS}
        else:
            per_task = {t: 1 for t in TASKS}
            for part in value.split(','):
                task, _, count = part.partition('=')
                task = task.strip()
                if task not in TASKS:
                    raise ValueError(f'unknown task {task!r} in --gpus {value}; valid: '
                                     + ', '.join(TASKS))
                per_task[task] = int(count)
    except ValueError as err:
        if 'unknown task' in str(err):
            raise
        raise ValueError(f'--gpus {value!r} is neither N nor task=N,...; e.g. 8 or '
                         'cls=32,det=8,seg=8') from None
    bad = {t: n for t, n in per_task.items() if n < 1}
    if bad:
        raise ValueError(f'--gpus must be at least 1 per task, got {bad}')
    return per_task


def parse_vis(value: Optional[str]) -> list[str]:
    """``tensorboard,wandb,mlflow`` (any of them) -> the trackers; ValueError naming the valid
    ones."""
    trackers = split_csv(value)
    bad = [t for t in trackers if t not in TRACKERS]
    if bad:
        raise ValueError(f'unknown tracker(s) {", ".join(bad)} in --vis; valid: '
                         f'{", ".join(TRACKERS)}')
    return list(dict.fromkeys(trackers))
