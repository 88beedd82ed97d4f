"""``status`` follows what was queued: the table command's selection (``--rows``, ``--tasks``,
``--seeds``) and ``--wait``. Records are planted as the runner writes them; the lock of a live
run is a real flock held by this process. The same on the real SLURM cluster: test_slurm.py."""
from __future__ import annotations

import socket
import re
import threading
import time

import pytest

from runs import rundir
from runs.rundir import RunKey
from tools.status import main as status_main

ROW = 'conv2-concat'


def plant(work, row, task, status, seed=0, **fields):
    run_dir = RunKey.train('table4', 'smoke', row, task, seed).dir(work)
    run_dir.mkdir(parents=True, exist_ok=True)
    fields.setdefault('returncode', 0 if status == 'finished' else None)
    rundir.write_record(run_dir, status=status, started=rundir.now(), **fields)
    return run_dir


def _listed(out: str) -> list[str]:
    return re.findall(r'(table4/smoke/\S+/seed\d+)', out)


def test_selection_shows_only_the_selected_runs(tmp_path, capsys):
    for task in ('cls', 'det', 'seg'):
        plant(tmp_path, ROW, task, 'finished', ended=rundir.now())
    # the whole table: the other 12 runs were never queued
    assert status_main(['table4', '--work-dir', str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert '3 finished, 12 pending' in out, out
    # the row that was queued: all finished, exit 0
    assert status_main(['table4', '--work-dir', str(tmp_path), '--rows', ROW]) == 0
    out = capsys.readouterr().out
    assert _listed(out) == [f'table4/smoke/{ROW}/{t}/seed0' for t in ('cls', 'det', 'seg')]
    assert 'table4: 3 run(s): 3 finished' in out
    # --tasks and --seeds as the table command takes them: two seeds of every row's cls run
    assert status_main(['table4', '--work-dir', str(tmp_path), '--tasks', 'cls',
                        '--seeds', '2']) == 1
    listed = _listed(capsys.readouterr().out)
    assert len(listed) == 10 and all('/cls/' in name for name in listed), listed
    assert f'table4/smoke/{ROW}/cls/seed1' in listed


@pytest.mark.parametrize('argv, names', [
    (['--rows', 'nope'], ["'nope'", 'conv2-concat']),
    (['--tasks', 'pose'], ['pose', 'cls, det, seg']),
    (['--seeds', '0'], ['--seeds', '0']),
    (['--wait', '--poll', '0'], ['--poll', '0']),
])
def test_a_bad_selection_is_one_line_and_exit_2(tmp_path, capsys, argv, names):
    assert status_main(['table4', '--work-dir', str(tmp_path), *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert all(name in err for name in names), err


def test_wait_blocks_until_the_selected_runs_end(tmp_path, capsys):
    """A live run (its lock held, as a training holds it) finishes while status waits; another
    row's run stays live and is not waited on, since it is not selected."""
    cls_dir = plant(tmp_path, ROW, 'cls', 'running', host=socket.gethostname())
    other = plant(tmp_path, 'conv2-gate', 'cls', 'running', host=socket.gethostname())
    live, other_live = rundir.RunLock(cls_dir), rundir.RunLock(other)
    assert live.acquire() and other_live.acquire()

    def finish():
        time.sleep(1.5)
        rundir.write_record(cls_dir, status='finished', returncode=0, ended=rundir.now())
        live.release()

    thread = threading.Thread(target=finish)
    try:
        t0 = time.monotonic()
        thread.start()
        assert status_main(['table4', '--work-dir', str(tmp_path), '--rows', ROW,
                            '--tasks', 'cls', '--wait', '--poll', '0.2']) == 0
        assert time.monotonic() - t0 >= 1.5  # it did wait for the run to end
        out = capsys.readouterr().out
        assert re.search(rf'running +table4/smoke/{ROW}/cls/seed0', out), out
        assert re.search(rf'finished +table4/smoke/{ROW}/cls/seed0', out), out
        assert 'conv2-gate' not in out
    finally:
        thread.join()
        live.release()
        other_live.release()


def test_wait_exits_1_when_a_selected_run_failed_or_was_never_queued(tmp_path, capsys):
    plant(tmp_path, ROW, 'cls', 'failed', returncode=1, ended=rundir.now())
    det = plant(tmp_path, ROW, 'det', 'queued', depends_on=str(
        RunKey.train('table4', 'smoke', ROW, 'cls', 0).dir(tmp_path)))
    assert det.exists()
    # cls failed, det is blocked behind it: both ended, not finished
    assert status_main(['table4', '--work-dir', str(tmp_path), '--rows', ROW,
                        '--tasks', 'cls,det', '--wait', '--poll', '0.1']) == 1
    out = capsys.readouterr().out
    assert 'table4: 2 run(s): 1 failed, 1 blocked' in out, out
    # seg was never queued: --wait says so at once instead of waiting forever
    assert status_main(['table4', '--work-dir', str(tmp_path), '--rows', ROW,
                        '--wait', '--poll', '0.1']) == 1
    out = capsys.readouterr().out
    assert 'never queued (pending)' in out and f'{ROW}/seg/seed0' in out, out
