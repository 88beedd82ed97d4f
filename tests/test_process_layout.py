"""The process layout is decided once: the world size the batch is planned for is the number of
processes the launcher starts, for every --gpus, --gpus-per-node and launcher.

For each combination the expected process count is read back from what would start the run,
not from the layout itself: torchrun's ``--nproc_per_node`` in the training command, and
``--nodes`` x ``--ntasks-per-node`` (or ``--ntasks``) of the sbatch script, whose srun starts
one task per slot of the allocation. The planned world size is the fidelity record's, which
the batch plan of ``ablations.compose`` wrote.
"""
from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ablations import get_table
from runs.executors.local import LocalExecutor, LocalOptions
from runs.executors.process_layout import LayoutError, ProcessLayout, process_layout
from runs.executors.slurm import SlurmExecutor, SlurmOptions, sbatch_script
from runs.rundir.identity import run_config
from runs.table.graph import plan_runs, train_command

REPO = Path(__file__).resolve().parent.parent
GPUS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
PER_NODE = (1, 2, 4, 8)


def started_by_torchrun(command: list[str]) -> int:
    """Processes a local training command starts: torchrun's --nproc_per_node, else one."""
    for part in command:
        if part.startswith('--nproc_per_node='):
            return int(part.split('=')[1])
    return 1


def started_by_sbatch(script: str) -> int:
    """Processes an sbatch script's srun starts: one per task of the allocation."""
    found = dict(re.findall(r'^#SBATCH --(nodes|ntasks-per-node|ntasks)=(\d+)$', script, re.M))
    if 'ntasks' in found:
        return int(found['ntasks'])
    return int(found['nodes']) * int(found['ntasks-per-node'])


def planned_world_size(run) -> int:
    """The world size the batch plan used: the fidelity record of the run's config."""
    return _planned(run.key, run.layout.world_size)


@functools.lru_cache(maxsize=None)
def _planned(key, world_size: int) -> int:
    cfg, _ = run_config(key, data_root=None, work_dir=None, gpus=world_size)
    return cfg.fidelity['gpus']


def full_cls_run(gpus: int):
    table = get_table('table4')
    (run,) = plan_runs(table, ['conv2-concat'], ['cls'], 1, Path('/w'), 'full',
                       {'cls': gpus, 'det': 1, 'seg': 1})
    return run


def _slurm(per_node: int, has_gpus: bool) -> SlurmExecutor:
    return SlurmExecutor(SlurmOptions(partition='gpu', gpus_per_node=per_node), Path('/w'),
                         partition_has_gpus=has_gpus)  # without asking sinfo


@pytest.mark.parametrize('gpus', GPUS)
def test_torchrun_starts_the_planned_world_size(gpus):
    run = full_cls_run(gpus)
    run.layout = LocalExecutor(LocalOptions(launcher='pytorch'), Path('/w')).layout(gpus, 'full')
    started = started_by_torchrun(train_command(Path('/w/config.py'), Path('/w'), run.layout))
    assert started == gpus == planned_world_size(run)


@pytest.mark.parametrize('has_gpus', (True, False), ids=('gpu-partition', 'cpu-partition'))
@pytest.mark.parametrize('per_node', PER_NODE)
@pytest.mark.parametrize('gpus', GPUS)
def test_sbatch_starts_the_planned_world_size_or_refuses(gpus, per_node, has_gpus):
    run = full_cls_run(gpus)
    executor = _slurm(per_node, has_gpus)
    nodes = -(-gpus // per_node)  # the fewest nodes that hold the run
    if gpus % nodes:
        with pytest.raises(LayoutError, match=rf'--gpus {gpus} .* {nodes} nodes'):
            executor.layout(gpus, 'full')
        return
    run.layout = executor.layout(gpus, 'full')
    script = sbatch_script(run, executor.options)
    assert started_by_sbatch(script) == gpus == planned_world_size(run)
    per_task = re.search(r'--gres=gpu:(\d+)', script)
    if has_gpus:  # each node's GPUs: one per task there
        assert int(per_task.group(1)) == gpus // nodes
    else:
        assert per_task is None


def test_the_layout_of_a_smoke_run_on_slurm_is_cpu_processes():
    run = full_cls_run(1)
    run.layout = _slurm(8, True).layout(1, 'smoke')
    assert run.layout == ProcessLayout('slurm', 'cpu', 1, 1)
    assert '#SBATCH --ntasks=1\n' in sbatch_script(run, SlurmOptions())


def test_one_process_needs_no_launcher_and_more_do():
    assert process_layout(1, 'none', 'cpu').world_size == 1
    with pytest.raises(LayoutError, match='--gpus 2 needs --launcher pytorch or slurm'):
        process_layout(2, 'none', 'gpu')


@pytest.mark.slow
def test_the_dry_run_plans_what_sbatch_starts():
    """The measurement of the issue, through the command: 12 GPUs on nodes of 8 were planned as
    12 while sbatch asked for 2 x 8 = 16; now both say 12 (2 nodes x 6)."""
    out = subprocess.run(
        [sys.executable, '-m', 'tools.run_table', 'table4', '--profile', 'full', '--data-root',
         '/nonexistent', '--launcher', 'slurm', '--gpus', '12', '--gpus-per-node', '8',
         '--partition', 'gpu', '--rows', 'conv2-concat', '--tasks', 'cls', '--dry-run',
         '--work-dir', '/nonexistent/work'], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    planned = int(re.search(r'effective batch \d+ = (\d+) GPUs', out.stdout).group(1))
    nodes = int(re.search(r'--nodes=(\d+)', out.stdout).group(1))
    per_node = int(re.search(r'--ntasks-per-node=(\d+)', out.stdout).group(1))
    assert planned == nodes * per_node == 12, out.stdout


def test_a_layout_no_node_count_holds_is_refused_before_anything_is_written(tmp_path):
    out = subprocess.run(
        [sys.executable, '-m', 'tools.run_table', 'table4', '--profile', 'full', '--data-root',
         str(tmp_path), '--launcher', 'slurm', '--gpus', '13', '--gpus-per-node', '8',
         '--rows', 'conv2-concat', '--tasks', 'cls', '--work-dir', str(tmp_path / 'work')],
        cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        'run_all.sh: error: --gpus 13 does not split evenly over the 2 nodes of at most 8 GPUs '
        'it needs (--gpus-per-node 8); ask for 12 or 14 (2 nodes x 6 or 7)']
    assert not (tmp_path / 'work').exists()
