"""How a training or test script runs on several GPUs: one definition for the table's executors
(``runs.graph.train_command``) and eval (``runs.evaluate``), as mmdet's dist_train.sh /
slurm_train.sh do it; and the environment every child process of the suite gets."""
from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path
from typing import Sequence

from runs import REPO

LAUNCHERS = ('none', 'pytorch', 'slurm')


def distributed_command(script: Path, script_args: Sequence[str], launcher: str, gpus: int,
                        port_key: str, srun_options: Sequence[str] = ()) -> list[str]:
    """``python script ARGS`` on ``gpus`` devices: torchrun for ``pytorch``, one srun task per
    GPU for ``slurm`` (inside a job's allocation; ``srun_options`` ask for resources when
    started from outside one), plain python for one GPU or the CPU."""
    command = [sys.executable, '-u', str(script), *script_args]
    if launcher == 'pytorch' and gpus > 1:
        # A port per run (port_key), so that runs side by side on one node do not collide.
        port = 29500 + zlib.crc32(port_key.encode()) % 2000
        return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}',
                f'--master_port={port}', *command[2:], '--launcher', 'pytorch']
    if launcher == 'slurm' and gpus > 1:
        return ['srun', *srun_options, '--kill-on-bad-exit=1', *command, '--launcher', 'slurm']
    return command


def python_env() -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH, so that a child
    started anywhere (a run's job, a pilot, torchrun's workers) imports the suite's packages."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get('PYTHONPATH')) if p))
