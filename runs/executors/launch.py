"""The command that starts a training or test process on a layout's processes: torchrun on this
node, srun inside a SLURM allocation, plain python for one process; as mmdet's dist_train.sh and
slurm_train.sh do it. And the environment every child process of the suite gets.
"""
from __future__ import annotations

import os
import sys
import zlib
from typing import Sequence

from engine.process_group import BASE_PORT
from runs.executors.process_layout import ProcessLayout
from runs.provenance import REPO


def distributed_command(module: str, module_args: Sequence[str], layout: ProcessLayout,
                        port_key: str, srun_options: Sequence[str] = ()) -> list[str]:
    """``python -m module ARGS`` on the layout's processes: torchrun for ``pytorch``, one srun
    task per process for ``slurm`` (inside a job's allocation; ``srun_options`` ask for
    resources when started from outside one), plain python for one process."""
    command = [sys.executable, '-u', '-m', module, *module_args]
    if not layout.distributed:
        return command
    if layout.launcher == 'pytorch':
        # A port per run (port_key), so that runs side by side on one node do not collide.
        port = BASE_PORT + zlib.crc32(port_key.encode()) % 2000
        return [sys.executable, '-m', 'torch.distributed.run',
                f'--nproc_per_node={layout.tasks_per_node}', f'--master_port={port}',
                *command[2:], '--launcher', 'pytorch']
    return ['srun', *srun_options, '--kill-on-bad-exit=1', *command, '--launcher', 'slurm']


def python_env() -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH, so that a child
    started anywhere (a run's job, a pilot, torchrun's workers) imports the suite's packages."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get('PYTHONPATH')) if p))
