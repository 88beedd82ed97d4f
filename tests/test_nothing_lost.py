"""Nothing lost (issue 21): a checkpoint save killed at any moment leaves the old or the new
checkpoint, never a truncated one; a NaN loss stops the run with its reason in the record, and
a rerun fails the same way; a full disk during a save keeps the previous checkpoint and the run
resumes once there is space; a preempted training saves after its current iteration and the
resumed run ends bit-identical to one left alone (epoch-based cls stopped mid-epoch,
iteration-based seg stopped between checkpoints).

The toy trainings (tests/toy_training.py) go through the real tools/train.py, runs.executors.job and
mmengine Runner; the preemption tests train the smoke MambaVision configs.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runs import rundir
from runs.executors.job import run_job
from runs.executors.resume import readable
from toy_training import PYTHONPATH, toy_config

REPO = Path(__file__).resolve().parent.parent
TRAIN = REPO / 'tools' / 'train.py'


def _record_run(run_dir: Path, config: Path) -> None:
    """A run dir as the runner writes it: a record whose command trains ``config``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_record(run_dir, status='queued', task='cls', cwd=str(REPO),
                        command=[sys.executable, str(TRAIN), str(config), '--work-dir',
                               str(run_dir), '--resume'])


def _last(run_dir: Path) -> Path:
    return Path((run_dir / 'last_checkpoint').read_text().strip())


def _checkpoint_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.suffix == '.pth' and not
                  p.name.startswith('.'))


@pytest.mark.slow
def test_a_kill_during_a_save_leaves_the_old_or_the_new_checkpoint(tmp_path):
    """SIGKILL while a checkpoint (150 MB) is being written: the kill lands mid-write (the
    atomic write's temporary file is left behind, a fraction of a whole checkpoint and
    unreadable), no file under a checkpoint name is truncated, and the previous checkpoint,
    which last_checkpoint still names, is whole: it loads, and the training resumes from it."""
    from backbones.checkpoint_io import load_checkpoint
    ballast_mb = 150
    config = toy_config(tmp_path / 'toy.py', ballast_mb=ballast_mb, by_epoch=False, length=6,
                        keep=1)  # a save after every iteration, the one before it kept
    work = tmp_path / 'work'
    proc = subprocess.Popen([sys.executable, str(TRAIN), str(config), '--work-dir', str(work)],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=PYTHONPATH),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # engine.atomic_checkpoint.atomic_write writes `.<name>.<pid>.tmp`, then renames it
    partial = re.compile(rf'\.iter_(\d+)\.pth\.{proc.pid}\.tmp')
    whole = ballast_mb * 2 ** 20  # the ballast alone: every checkpoint is bigger
    deadline = time.monotonic() + 120
    caught = None  # (temporary file, the checkpoint it was becoming, its size just before)
    try:
        while caught is None:
            assert proc.poll() is None and time.monotonic() < deadline, \
                'no save was ever caught in the middle of its write'
            for path in work.iterdir() if work.is_dir() else ():
                found = partial.fullmatch(path.name)
                if not found or int(found.group(1)) < 2:  # a save with one before it
                    continue
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # renamed meanwhile
                    continue
                if 0 < size < whole // 2:
                    proc.kill()
                    caught = (path, int(found.group(1)), size)
                    break
    finally:
        proc.kill()
        proc.wait()
    tmp, iteration, seen = caught
    # The kill landed mid-write: the temporary file is still there (not renamed into place),
    # no bigger than a fraction of a checkpoint, and not a readable archive.
    assert tmp.is_file(), f'{tmp.name} was renamed into place: the kill came after the write'
    left = tmp.stat().st_size
    assert seen <= left < whole, (seen, left)
    assert not readable(tmp)
    assert not (work / f'iter_{iteration}.pth').exists()
    # Nothing under a checkpoint name is truncated; the previous checkpoint is the one named.
    files = _checkpoint_files(work)
    assert [p.name for p in files] == [f'iter_{iteration - 1}.pth'], files
    assert all(readable(p) for p in files)
    previous = _last(work)
    assert previous == work / f'iter_{iteration - 1}.pth' and readable(previous)
    state = load_checkpoint(previous)
    assert state['meta']['iter'] == iteration - 1
    assert int(state['state_dict']['steps']) == iteration - 1  # the toy counts its steps
    assert state['state_dict']['ballast'].numel() == ballast_mb * 2 ** 18  # 4 bytes each
    # mmengine resumes from it (the temporary file is no checkpoint to it) and ends the run.
    done = subprocess.run([sys.executable, str(TRAIN), str(config), '--work-dir', str(work),
                           '--resume'], cwd=REPO, env=dict(os.environ, PYTHONPATH=PYTHONPATH),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f'resumed epoch: 0, iter: {iteration - 1}' in done.stdout + done.stderr
    assert _last(work).name == 'iter_6.pth' and readable(_last(work))


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_a_rerun_fails_the_same_way(tmp_path, monkeypatch):
    monkeypatch.setenv('PYTHONPATH', PYTHONPATH)
    run_dir = tmp_path / 'run'
    config = toy_config(tmp_path / 'toy.py', nan_at=7, length=3, samples=4)  # 4 iters/epoch
    _record_run(run_dir, config)
    for attempt in (1, 2):
        assert run_job(run_dir) == 1
        record = rundir.read_record(run_dir)
        assert record['status'] == 'failed'
        assert record['error'] == 'loss became nan at iter 7 (epoch 2)', record['error']
        # The last good checkpoint is kept, and nothing of the NaN epoch was saved.
        assert _last(run_dir).name == 'epoch_1.pth' and readable(_last(run_dir))
        assert not (run_dir / 'epoch_2.pth').exists()
    assert 'resumed epoch: 1, iter: 4' in (run_dir / rundir.CONSOLE).read_text()
    from runs.commands.table_status import run_state
    key = rundir.RunKey.train('t', 'smoke', 'r', 'cls', 0)
    assert run_state(key, run_dir, rundir.read_record(run_dir), {}) == \
        ('failed', 'loss became nan at iter 7 (epoch 2)')


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason='mounts a small tmpfs (needs root)')
def test_a_full_disk_keeps_the_previous_checkpoint_and_the_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv('PYTHONPATH', PYTHONPATH)
    disk = tmp_path / 'disk'
    disk.mkdir()
    # Room for one 4 MB checkpoint and the logs, not for a second checkpoint beside it.
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', str(disk)], check=True)
    try:
        run_dir = disk / 'run'
        config = toy_config(tmp_path / 'toy.py', ballast_mb=4, by_epoch=False, length=3,
                            keep=2)
        _record_run(run_dir, config)
        assert run_job(run_dir) == 1
        record = rundir.read_record(run_dir)
        assert record['status'] == 'failed'
        assert record['error'].startswith('no space left on device while saving iter_2.pth'), \
            record['error']
        assert [p.name for p in _checkpoint_files(run_dir)] == ['iter_1.pth']
        assert _last(run_dir).name == 'iter_1.pth' and readable(_last(run_dir))
        # Space freed: the rerun resumes from the kept checkpoint and finishes.
        subprocess.run(['mount', '-o', 'remount,size=40m', str(disk)], check=True)
        assert run_job(run_dir) == 0
        assert rundir.read_record(run_dir)['status'] == 'finished'
        assert 'resumed epoch: 0, iter: 1' in (run_dir / rundir.CONSOLE).read_text()
        assert _last(run_dir).name == 'iter_3.pth'
    finally:
        subprocess.run(['umount', str(disk)], check=False)


# --- preemption: resume at the next sample, bit-identical ------------------------------------

@pytest.fixture(scope='module')
def smoke_data(tmp_path_factory):
    from runs.datasets.tiny_datasets import make_tiny_datasets
    return make_tiny_datasets(tmp_path_factory.mktemp('data') / 'smoke')


def _train(config: Path, work: Path, name: str, *extra: str) -> int:
    """tools/train.py in this process; mmengine's named instances (logger, visualizer) are
    per process, so each training here gets its own names."""
    from tools.train import main
    try:
        main([str(config), '--work-dir', str(work), *extra, '--cfg-options',
              f'experiment_name={name}', f'visualizer.name=vis-{name}'])
    except SystemExit as stop:
        return stop.code
    return 0


def _scalars(work: Path) -> dict:
    """{(iter, key): value} of every logged metric, over all of a work dir's runs."""
    found = {}
    for log in sorted(work.glob('*/vis_data/scalars.json')):
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            for key, value in entry.items():
                if key not in ('time', 'data_time', 'eta', 'memory', 'iter', 'epoch', 'step'):
                    found[(entry.get('step'), key)] = value
    return found


def _same_state(a: Path, b: Path) -> None:
    from backbones.checkpoint_io import load_checkpoint
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    for part in ('state_dict', 'ema_state_dict'):
        assert (part in ca) == (part in cb), part
        if part not in ca:
            continue
        assert ca[part].keys() == cb[part].keys()
        for key in ca[part]:
            assert torch.equal(ca[part][key], cb[part][key]), f'{part}.{key} differs'
    # Both sides' optimizer state: the same parameters, the same entries, equal values.
    sa, sb = ca['optimizer']['state'], cb['optimizer']['state']
    assert sa.keys() == sb.keys()
    for index in sa:
        assert sa[index].keys() == sb[index].keys(), index
        for key in sa[index]:
            assert torch.equal(torch.as_tensor(sa[index][key]), torch.as_tensor(sb[index][key]))


def _preempt_and_compare(cfg, tmp_path, stop_at: int, final: str) -> tuple[Path, Path]:
    """Train ``cfg`` once left alone and once sent SIGTERM after iteration ``stop_at`` and
    resumed; both must end with the same weights, EMA, optimizer state and logged metrics."""
    alone, stopped = tmp_path / 'alone', tmp_path / 'stopped'
    cfg.dump(str(tmp_path / 'config.py'))
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='SignalAtIter',
                                                                  at=stop_at)]
    cfg.custom_imports = dict(imports=list(cfg.custom_imports['imports']) + ['toy_training'],
                              allow_failed_imports=False)
    cfg.dump(str(tmp_path / 'config_signal.py'))
    assert _train(tmp_path / 'config.py', alone, 'alone') == 0
    assert _train(tmp_path / 'config_signal.py', stopped, 'stopped') == 128 + signal.SIGTERM
    saved = _last(stopped)
    assert saved.name == f'preempt_iter_{stop_at}.pth' and readable(saved)
    assert _train(tmp_path / 'config.py', stopped, 'resumed', '--resume') == 0
    _same_state(alone / final, stopped / final)
    logged_alone, logged_stopped = _scalars(alone), _scalars(stopped)
    assert any(step == stop_at + 1 and 'loss' in key for step, key in logged_alone)
    assert logged_alone == logged_stopped
    # Work redone per preemption: none (the resumed run's first iteration is stop_at + 1).
    resumed_log = sorted(stopped.glob('*/vis_data/scalars.json'))[-1]
    first = json.loads(resumed_log.read_text().splitlines()[0])
    assert first['step'] == stop_at + 1, first
    assert not list(stopped.glob('preempt_iter_*.pth'))  # dropped at the next regular save
    return alone, stopped


@pytest.mark.slow
def test_preempted_cls_run_resumes_mid_epoch_bit_identical(tmp_path, smoke_data,
                                                          restore_signals):
    """Epoch-based cls with the full recipe's EMA and MESA (active in epoch 2): SIGTERM after
    iteration 5, the second of epoch 2's three."""
    from mmengine.config import Config

    from ablations.compose import build_row_config
    cfg = build_row_config('table4', 'conv2-concat', 'cls', data_root=smoke_data)
    full = Config.fromfile(str(REPO / 'cls_configs/mambavision/mambavision-t_in1k.py'))
    cfg.custom_hooks = full.custom_hooks
    cfg.train_dataloader.batch_size = 8
    cfg.train_dataloader.dataset.indices = 24
    cfg.val_dataloader.dataset.indices = 8
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=True, interval=1,
                                        max_keep_ckpts=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=True)
    _preempt_and_compare(cfg, tmp_path, stop_at=5, final='epoch_2.pth')


@pytest.mark.slow
def test_preempted_seg_run_resumes_between_checkpoints_bit_identical(tmp_path, smoke_data,
                                                                   restore_signals):
    """Iteration-based UperNet, a checkpoint every 8 iterations: SIGTERM after iteration 10."""
    from ablations.compose import build_row_config
    cfg = build_row_config('table4', 'conv2-concat', 'seg', data_root=smoke_data)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=12, val_interval=12)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=8,
                                        max_keep_ckpts=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1, log_metric_by_epoch=False)
    cfg.val_dataloader.dataset.indices = 4
    _preempt_and_compare(cfg, tmp_path, stop_at=10, final='iter_12.pth')


# --- a stop the training handles is an interruption, not a failure -----------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def _job(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'runs.executors.job', str(run_dir)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH), capture_output=True,
                          text=True, timeout=300)


def _status_line(run_dir: Path) -> str:
    """The state ``status`` tells from the record and the lock."""
    from runs.commands.table_status import run_state
    key = rundir.RunKey.train('t', 'smoke', 'r', 'cls', 0)
    return run_state(key, run_dir, rundir.read_record(run_dir), {})[0]


@pytest.mark.parametrize('sig', STOP_SIGNALS, ids=lambda s: s.name)
def test_a_training_that_stopped_on_its_own_signal_is_interrupted(tmp_path, sig):
    """The job's side, with a stand-in training that ends as engine.trainer ends after a signal
    sent to it (its stop line, exit 128 + signal): the record says interrupted, not failed."""
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    line = f'train: stopped by {sig.name} after iteration 17; saved {run_dir}/preempt_iter_17.pth'
    rundir.write_record(run_dir, status='queued', task='cls', cwd=str(REPO), command=[
        sys.executable, '-c', f'import sys; print({line!r}, file=sys.stderr); '
                              f'sys.exit({128 + sig})'])
    done = _job(run_dir)
    record = rundir.read_record(run_dir)
    assert (done.returncode, record['status'], record['returncode']) == \
        (128 + sig, 'interrupted', 128 + sig), done.stderr
    assert record['error'].startswith(f'stopped by {sig.name} after iteration 17')
    assert _status_line(run_dir) == 'interrupted'


def test_a_training_that_exits_non_zero_without_a_stop_line_still_failed(tmp_path):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    rundir.write_record(run_dir, status='queued', task='cls', cwd=str(REPO), command=[
        sys.executable, '-c', 'import sys; print("train: stopped by nothing"); sys.exit(130)'])
    assert _job(run_dir).returncode == 1
    assert rundir.read_record(run_dir)['status'] == 'failed'
    assert _status_line(run_dir) == 'failed'


@pytest.mark.slow
def test_a_signal_to_the_real_training_leaves_it_interrupted_and_resumable(tmp_path):
    """``kill -INT`` on the training process itself, mid-run, through the real job and trainer:
    it saves ``preempt_iter_N.pth``, the record says interrupted (status too), and the next
    attempt resumes from iteration N. (SIGTERM and SIGUSR1 take the trainer's same path; the
    job's side of all three is the stand-in test above.)"""
    sig = signal.SIGINT
    config = toy_config(tmp_path / 'toy.py', by_epoch=False, length=10 ** 6, interval=10 ** 6)
    run_dir = tmp_path / 'run'
    _record_run(run_dir, config)
    console = run_dir / rundir.CONSOLE
    job = subprocess.Popen([sys.executable, '-m', 'runs.executors.job', str(run_dir)], cwd=REPO,
                           env=dict(os.environ, PYTHONPATH=PYTHONPATH),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while 'Iter(train) [' not in (console.read_text() if console.exists() else ''):
        assert job.poll() is None and time.monotonic() < deadline, 'the training never started'
        time.sleep(0.2)
    os.kill(rundir.read_record(run_dir)['child_pid'], sig)
    assert job.wait(120) == 128 + sig
    record = rundir.read_record(run_dir)
    iteration = int(record['error'].split(' after iteration ')[1].split()[0])
    assert record['status'] == 'interrupted' and _status_line(run_dir) == 'interrupted'
    assert (run_dir / f'preempt_iter_{iteration}.pth').is_file()
    # The next attempt resumes there: stopped again through the job this time.
    job = subprocess.Popen([sys.executable, '-m', 'runs.executors.job', str(run_dir)], cwd=REPO,
                           env=dict(os.environ, PYTHONPATH=PYTHONPATH),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while f'resumed epoch: 0, iter: {iteration}' not in console.read_text():
        assert job.poll() is None and time.monotonic() < deadline + 120, console.read_text()[-2000:]
        time.sleep(0.2)
    job.terminate()
    job.wait(120)
    assert rundir.read_record(run_dir)['attempts'] == 2


def test_toy_preemption_resume_in_process_ends_where_an_uninterrupted_run_ends(
        tmp_path, restore_signals, monkeypatch):
    """The quick stand-in of the preemption tests: the real trainer (engine.trainer) in this
    process on the toy, stopped by a real SIGTERM after iteration 6 of 12, saves there and
    exits 128 + 15; resumed, it ends with the weights of a run left alone."""
    from engine import trainer
    # As under the job, which holds the run's lock: in one process a second training of the
    # same dir would find its own first lock still open.
    monkeypatch.setenv('SUITE_RUN_LOCK_FD', '-1')
    base = toy_config(tmp_path / 'toy.py', by_epoch=True, length=3, samples=4)  # 12 iterations
    stopped = tmp_path / 'stopped.py'
    stopped.write_text("_base_ = ['toy.py']\n"
                       "custom_hooks = [dict(type='SignalAtIter', at=6, signum=15)]\n")

    def train(config: Path, work: Path, name: str) -> None:
        trainer.main([str(config), '--work-dir', str(work), '--resume',
                      '--cfg-options', f'experiment_name={name}'])

    train(base, tmp_path / 'alone', 'alone')
    with pytest.raises(SystemExit) as stop:
        train(stopped, tmp_path / 'work', 'first')
    assert stop.value.code == 128 + signal.SIGTERM
    assert _last(tmp_path / 'work').name == 'preempt_iter_6.pth'
    train(stopped, tmp_path / 'work', 'resumed')  # the hook fires after iteration 6 only
    final = [torch.load(d / 'epoch_3.pth', map_location='cpu', weights_only=False)['state_dict']
             for d in (tmp_path / 'alone', tmp_path / 'work')]
    assert torch.equal(final[0]['w'], final[1]['w']) and int(final[1]['steps']) == 12


def test_an_inf_loss_stops_the_run_like_a_nan(tmp_path, restore_signals, monkeypatch):
    """docs/nothing_lost.md: a NaN *or Inf* loss stops the run with its reason. The real trainer
    in-process on the toy whose loss becomes inf at step 7 (epoch 2 of 4-step epochs): exit 3,
    the reason in failure.txt, nothing of epoch 2 saved."""
    from engine import trainer
    monkeypatch.setenv('SUITE_RUN_LOCK_FD', '-1')  # as under the job (see the test above)
    config = toy_config(tmp_path / 'toy.py', nan_at=7, bad='inf', length=3, samples=4)
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as stop:
        trainer.main([str(config), '--work-dir', str(work), '--cfg-options',
                      'experiment_name=inf'])
    assert stop.value.code == 3
    assert (work / rundir.FAILURE_NOTE).read_text() == 'loss became inf at iter 7 (epoch 2)\n'
    assert _last(work).name == 'epoch_1.pth' and not (work / 'epoch_2.pth').exists()
