"""The process group of one training or test process: on GPUs mmengine sets it up (nccl); where
there are none, the N CPU processes that stand in for a run's N GPUs talk over gloo, so the
whole distributed path (DDP, the sampler's sharding, gradient accumulation, the EMA, MESA,
rank-0 checkpoints and logs, resume) runs as on GPUs. The process layout itself is decided
before the processes start (``runs.executors.process_layout``).
"""
from __future__ import annotations

import os
import subprocess
from typing import Optional

# The port torchrun and mmengine's slurm launcher default to; a run's own port is offset from it.
BASE_PORT = 29500


def _slurm_environment() -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT of an srun task, as mmengine's
    slurm launcher derives them (without its ``torch.cuda.set_device``)."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        hosts = subprocess.run(['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']],
                               capture_output=True, text=True, check=True).stdout.split()
        os.environ['MASTER_ADDR'] = hosts[0]
    os.environ.setdefault('MASTER_PORT', str(BASE_PORT))


def prepare_distributed(cfg, launcher: str) -> Optional[str]:
    """Set up a training or test process of a multi-process run on CPU: the gloo process group
    (mmengine's own set-up pins a CUDA device first and fails without one) and DDP without
    device ids. Returns the backend it set up; None where mmengine does it (GPUs) or nothing is
    distributed (launcher none)."""
    if launcher == 'none':
        return None
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available():
        return None
    if launcher == 'slurm':
        _slurm_environment()
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    # What mmengine's own DDP wrapping does, less the device ids a CPU module may not have.
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    return 'gloo'
