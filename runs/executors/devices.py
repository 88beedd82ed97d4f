"""What this machine (or a SLURM partition) offers a run's processes: GPUs, or cores for CPU
processes that stand in for them.

A run asks for ``--gpus N``. Where there are GPUs, each of its N processes gets one and the
processes talk over nccl (mmengine sets that up). Where there are none, N CPU processes stand in
for the N GPUs, talk over gloo and share the cores: the whole distributed path (DDP, the
sampler's sharding, gradient accumulation, the EMA, MESA, rank-0 checkpoints and logs, resume)
then runs as on GPUs, which is how it is tested on CPU machines and in CI.
"""
from __future__ import annotations

import os
import subprocess
from typing import Mapping, Optional


def visible_gpus() -> list[str]:
    """The GPUs this machine offers, as CUDA_VISIBLE_DEVICES entries ([] without CUDA)."""
    try:
        import torch
        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001  (no usable CUDA: a CPU machine)
        count = 0
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible:
        return [d for d in visible.split(',') if d.strip()][:count]
    return [str(i) for i in range(count)]


def cores() -> int:
    """The cores this process may use (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_process(processes: int, jobs: int = 1) -> int:
    """Each CPU process's share of the cores when ``jobs`` runs of ``processes`` run at once."""
    return max(1, cores() // max(1, processes * jobs))


def describe_local(gpus_per_task: Mapping[str, int], jobs: int = 1) -> str:
    """One line on what the runs' ``--gpus`` will be on this machine; ValueError (one line) when
    the machine cannot give a run what it asks for."""
    gpus = visible_gpus()
    most = max(gpus_per_task.values())
    if gpus:
        if most > len(gpus):
            raise ValueError(f'--gpus {most}: this machine has {len(gpus)} GPU(s) '
                             f'(CUDA_VISIBLE_DEVICES {",".join(gpus)}); ask for at most '
                             f'{len(gpus)}')
        return f'{len(gpus)} GPU(s) here; a run of N GPUs takes N of them (nccl)'
    if most > cores():
        raise ValueError(f'--gpus {most}: this machine has no GPU, and CPU processes stand in '
                         f'for GPUs only up to its {cores()} cores; ask for at most {cores()}')
    if most == 1:
        return 'no GPU here: each run trains in one CPU process'
    return (f'no GPU here: each GPU of a run is a CPU process (gloo backend), '
            f'{threads_per_process(most, jobs)} core(s) each')


def slurm_has_gpus(partition: Optional[str] = None) -> bool:
    """Whether the SLURM partition's nodes (the default partition's without one) offer GPUs, a
    ``gpu`` GRES. A partition sinfo does not list (or no sinfo: a dry run away from the cluster)
    counts as a GPU partition, the usual case; a listed one without GPUs (a CPU cluster, the
    test cluster) runs CPU processes."""
    command = ['sinfo', '-h', '-o', '%G|%P'] + (['-p', partition] if partition else [])
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return True
    lines = [line.split('|') for line in out.splitlines() if '|' in line]
    if not partition:
        lines = [parts for parts in lines if parts[1].endswith('*')]  # the default partition
    if not lines:
        return True
    return any('gpu' in parts[0] for parts in lines)
