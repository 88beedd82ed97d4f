"""What every executor does, as one protocol; the table code chooses one, once (:func:`executor_for`).

An executor takes the runs with their dependencies (``Run.depends_on``), starts them, and says
each one's outcome (``Run.outcome``: finished, failed, blocked, locked by another live
training, or queued where the scheduler runs them later). A third scheduler is one new module
that implements :class:`Executor` and an options dataclass, plus a line in :func:`executor_for`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol, Union

from runs.executors.follow_up import FollowUp
from runs.executors.local import LocalExecutor, LocalOptions
from runs.executors.process_layout import ProcessLayout
from runs.executors.slurm import SlurmExecutor, SlurmOptions
from runs.table.graph import Run

ExecutorOptions = Union[LocalOptions, SlurmOptions]


class Executor(Protocol):
    name: str
    # Whether a run may wait on an upstream run that is queued or running elsewhere (SLURM's
    # afterok); else such a run is deferred to the next invocation.
    follows_queued: bool

    def device(self, profile: str) -> str:
        """'gpu' or 'cpu': what each process of a run of this profile trains on."""

    def layout(self, gpus: int, profile: str) -> ProcessLayout:
        """The processes a run of ``gpus`` GPUs starts (``process_layout``; LayoutError)."""

    def preflight(self, planned: list[Run], dry_run: bool = False) -> None:
        """Say what the runs will get; ValueError when they cannot get it. Writes nothing."""

    def queued(self) -> dict:
        """Job id -> (state, reason) of what the scheduler still holds ({} for none)."""

    def describe(self, run: Run) -> list[str]:
        """The dry run's lines on how this executor would start the run (besides its command)."""

    def execute(self, todo: list[Run], every: list[Run],
                follow_up: Optional[FollowUp] = None) -> None:
        """Start ``todo`` and set each one's outcome; ``follow_up`` (the report, or the --seeds
        auto decision): run or queued once every run of ``every`` has ended."""


def executor_for(options: ExecutorOptions, work_dir: Path) -> Executor:
    """The executor the options are for."""
    if isinstance(options, SlurmOptions):
        return SlurmExecutor(options, work_dir)
    return LocalExecutor(options, work_dir)
