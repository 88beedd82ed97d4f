"""Every GPU count, for real, on CPU processes: the gloo backend stands in for nccl, so the whole
multi-process path runs here and in CI (issue 20). The world-size invariance of the recipes is
tests/test_world_size_invariance.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablations.compose import build_row_config
from engine.distribute_bn import distribute_bn
from runs.executors.launch import python_env
from runs.datasets.tiny_datasets import make_tiny_datasets

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_tiny_datasets(tmp_path_factory.mktemp('data'))


@pytest.mark.slow
def test_two_process_run_stops_resumes_and_reports_its_world_size(data, tmp_path):
    """``--launcher pytorch --gpus 2`` on a CPU machine: two gloo processes train the smoke row;
    SIGTERM stops both, a rerun resumes where the last checkpoint left off, rank 0 alone writes
    checkpoints and logs, and the record, status and report state world size 2."""
    import signal
    import time

    from runs import rundir
    from tools import report as report_cli

    work = tmp_path / 'work'
    args = ['table4', '--rows', 'conv2-concat', '--tasks', 'cls', '--launcher', 'pytorch',
            '--gpus', '2', '--work-dir', str(work), '--data-root', str(data), '--no-report']
    command = [sys.executable, '-m', 'tools.run_table', *args]
    run_dir = work / 'table4' / 'smoke' / 'conv2-concat' / 'cls' / 'seed0'
    runner = subprocess.Popen(command, cwd=REPO, env=python_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not (run_dir / 'last_checkpoint').exists():  # the first checkpoint, then stop
        assert time.monotonic() < deadline and runner.poll() is None, runner.stdout.read()
        time.sleep(0.2)
    record = rundir.read_record(run_dir)
    runner.send_signal(signal.SIGTERM)
    out, _ = runner.communicate(timeout=180)
    assert runner.returncode == 130, out
    assert rundir.recorded_state(rundir.read_record(run_dir), run_dir) == 'interrupted'
    assert rundir.lock_holder(run_dir) is None
    assert not _alive(record['child_pid']), 'torchrun outlived the stopped run'
    # the furthest point saved: where the rerun must resume (a periodic or a preemption save)
    saved_iters = [torch.load(p, map_location='cpu', weights_only=False)['meta']['iter']
                   for p in run_dir.glob('*.pth')]

    rerun = subprocess.run(command, cwd=REPO, env=python_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert 'no GPU here: each GPU of a run is a CPU process (gloo backend)' in rerun.stdout
    record = rundir.read_record(run_dir)
    assert record['status'] == 'finished' and record['attempts'] == 2
    assert record['fidelity']['gpus'] == 2 and record['fidelity']['device'] == 'cpu'
    assert record['fidelity']['effective_batch'] == 2 * record['fidelity']['per_gpu_batch']
    # The second session resumed from where the first stopped, not from scratch.
    sessions = sorted(p for p in run_dir.iterdir() if p.is_dir() and rundir.TIMESTAMP.fullmatch(
        p.name))
    assert len(sessions) == 2
    resumed = sessions[-1] / f'{sessions[-1].name}.log'
    found = [int(m) for m in re.findall(r'resumed epoch: \d+, iter: (\d+)', resumed.read_text())]
    assert found and found[0] == max(saved_iters) > 0, (saved_iters, resumed.read_text()[-2000:])
    # Rank 0 alone writes: one text log and one scalars file per session, each step once.
    for session in sessions:
        assert [p.name for p in session.glob('*.log')] == [f'{session.name}.log']
    steps = [json.loads(line)['step'] for session in sessions
             for line in (session / 'vis_data' / 'scalars.json').read_text().splitlines()
             if 'loss' in line]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    kept = [p.name for p in run_dir.glob('*.pth') if p.name.startswith(('epoch_', 'iter_'))]
    assert len(kept) == 1 and not list(run_dir.glob('preempt_*')), kept  # max_keep_ckpts 1

    status = subprocess.run([sys.executable, '-m', 'tools.status', 'table4', '--work-dir',
                             str(work)], cwd=REPO, env=python_env(), capture_output=True,
                            text=True)
    line = next(l for l in status.stdout.splitlines() if 'conv2-concat/cls' in l)
    assert 'finished' in line and '100%' in line, status.stdout
    out = tmp_path / 'report'
    assert report_cli.main(['table4', '--work-dir', str(work), '--out', str(out),
                            '--no-complexity']) == 0
    assert 'effective batch 32 = 2 CPU processes x 16 x 1 accumulation' in \
        (out / 'table4.md').read_text()


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def _distribute_bn_worker(rank: int, world: int, port: int, mode: str, results) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world)
    try:
        bn = torch.nn.BatchNorm2d(3)
        bn.running_mean.fill_(float(rank))
        bn.running_var.fill_(1.0 + 2 * rank)
        touched = distribute_bn(bn, mode)
        results.put((rank, touched, bn.running_mean.tolist(), bn.running_var.tolist()))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize('mode, mean, var', [('reduce', 0.5, 2.0), ('broadcast', 0.0, 1.0)])
def test_distribute_bn_over_two_gloo_processes(mode, mean, var):
    """The official MambaVision trainer's dist_bn: rank-local BN statistics become one set."""
    import multiprocessing
    ctx = multiprocessing.get_context('fork')
    results = ctx.Queue()
    port = 29400 + os.getpid() % 500
    procs = [ctx.Process(target=_distribute_bn_worker, args=(rank, 2, port, mode, results))
             for rank in range(2)]
    for proc in procs:
        proc.start()
    got = sorted(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    for rank, touched, means, variances in got:
        assert touched == 2 and means == [mean] * 3 and variances == [var] * 3, (rank, got)


def test_only_the_mambavision_recipe_distributes_bn():
    """dist_bn 'reduce' in every official MambaVision yaml; MobileMamba's trainer leaves it off."""
    mv = build_row_config('table4', 'conv2-concat', 'cls', profile='full', data_root='data')
    mm = build_row_config('mobilemamba_mrffi', 'official', 'cls', profile='full',
                          data_root='data')
    assert dict(type='DistributeBNHook', mode='reduce') in [dict(h) for h in mv.custom_hooks]
    assert not any(h.type == 'DistributeBNHook' for h in mm.custom_hooks)
