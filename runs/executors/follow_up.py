"""What follows a table's runs once every one has ended: the report, or under ``--seeds auto``
the decision that queues the next round. The local executor runs it; the SLURM one queues it as
a job of its own, named after it (``<table>-report``, ``<table>-decision``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class FollowUp:
    command: Sequence[str]
    name: str = 'report'  # SLURM: job <table>-<name>, script <name>.sbatch, log <name>-<id>.out
    does: str = 'writes the report'  # what the queued job's line says it does
