"""The process layout of a run: how many nodes, how many tasks (processes) on each, so how many
processes train it (the world size). Decided here once, from ``--gpus``, ``--gpus-per-node``,
the launcher and the device; the batch plan (``ablations.compose``), the torchrun and
sbatch/srun commands, the run record and ``status`` all read it.

Each process holds one GPU (or, where there are none, is one CPU process standing in for a GPU).
torchrun starts the processes on this machine, one node. SLURM spreads them over the fewest nodes
of ``gpus_per_node`` that hold them with the same count on every node: 12 over nodes of 8 is 2
nodes x 6. A count that no such split holds exactly (13 over nodes of 8) is refused, since a
job of 2 x 7 would train at another world size than the plan's.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

LAUNCHERS = ('none', 'pytorch', 'slurm')
DEVICES = ('gpu', 'cpu')
# GPUs on one node of a cluster (``--gpus-per-node``; the environment's GPUS_PER_NODE by default).
GPUS_PER_NODE = int(os.environ.get('GPUS_PER_NODE', 8))


class LayoutError(ValueError):
    """A layout that cannot be started as asked; one line naming the numbers."""


@dataclass(frozen=True)
class ProcessLayout:
    """``nodes`` x ``tasks_per_node`` processes, each on one ``device`` (gpu, or a CPU process
    standing in for one), started by ``launcher``."""
    launcher: str
    device: str
    nodes: int
    tasks_per_node: int

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks_per_node

    @property
    def distributed(self) -> bool:
        """Whether a launcher starts the processes (else one plain process trains)."""
        return self.world_size > 1

    def describe(self) -> str:
        """'1 process', '4 processes', '12 processes: 2 nodes x 6' (GPUs or CPU processes)."""
        one, many = ('GPU', 'GPUs') if self.device == 'gpu' else ('CPU process', 'CPU processes')
        count = f'{self.world_size} {one if self.world_size == 1 else many}'
        return count + (f': {self.nodes} nodes x {self.tasks_per_node}' if self.nodes > 1 else '')

    def as_record(self) -> dict:
        return dict(launcher=self.launcher, device=self.device, nodes=self.nodes,
                    tasks_per_node=self.tasks_per_node, world_size=self.world_size)


def process_layout(gpus: int, launcher: str, device: str,
                   gpus_per_node: int = GPUS_PER_NODE) -> ProcessLayout:
    """The layout of a run of ``gpus`` processes; LayoutError when it cannot be started so."""
    if launcher not in LAUNCHERS:
        raise LayoutError(f'launcher {launcher!r}; valid: {", ".join(LAUNCHERS)}')
    if device not in DEVICES:
        raise LayoutError(f'device {device!r}; valid: {", ".join(DEVICES)}')
    if not isinstance(gpus, int) or gpus < 1:
        raise LayoutError(f'--gpus must be at least 1, got {gpus}')
    if launcher == 'none':
        if gpus > 1:
            raise LayoutError(f'--gpus {gpus} needs --launcher pytorch or slurm')
        return ProcessLayout(launcher, device, 1, 1)
    if launcher == 'pytorch':
        return ProcessLayout(launcher, device, 1, gpus)  # torchrun: this node
    if gpus_per_node < 1:
        raise LayoutError(f'--gpus-per-node must be at least 1, got {gpus_per_node}')
    nodes = math.ceil(gpus / gpus_per_node)
    if gpus % nodes:
        below, above = (gpus // nodes) * nodes, (gpus // nodes + 1) * nodes
        raise LayoutError(
            f'--gpus {gpus} does not split evenly over the {nodes} nodes of at most '
            f'{gpus_per_node} GPUs it needs (--gpus-per-node {gpus_per_node}); ask for '
            f'{below} or {above} ({nodes} nodes x {below // nodes} or {above // nodes})')
    return ProcessLayout(launcher, device, nodes, gpus // nodes)
