"""`./run_all.sh status`: a running run's progress (from its mmengine log), elapsed time and ETA,
and the exit status (0 only when every run has finished). Planted run dirs, a real lock."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import pytest

import ablations
from runs import rundir
from ablations import get_table
from runs.rundir.identity import run_config
from tools.status import main as status_main


@pytest.fixture
def one_run_table():
    """table5's first row alone (ImageNet only): one run per seed."""
    table5 = get_table('table5')
    ablations.TABLES['status_test'] = replace(table5, name='status_test',
                                              rows=(table5.rows[0], ), claims=())
    yield ablations.TABLES['status_test']
    del ablations.TABLES['status_test']


def _ago(seconds: float) -> str:
    return (dt.datetime.now() - dt.timedelta(seconds=seconds)).isoformat(timespec='seconds')


def test_progress_eta_and_exit_status(tmp_path, capsys, one_run_table):
    key = rundir.RunKey.train('status_test', 'smoke', one_run_table.rows[0].slug, 'cls', 0)
    run_dir = key.dir(tmp_path)
    run_dir.mkdir(parents=True)
    argv = ['status_test', '--work-dir', str(tmp_path)]

    # Nothing has run: pending, exit 1.
    assert status_main(argv) == 1
    assert re.search(r'^pending\s', capsys.readouterr().out, re.M)

    # Running for 10 minutes, in epoch 3 of 10 at batch 5 of 10: 25 % done, so 30 min to go.
    _, config_hash = run_config(key, data_root=None, work_dir=None)
    rundir.write_record(run_dir, table=key.table, row=key.row, task='cls', seed=0,
                        profile='smoke', status='running', started=_ago(600), ended=None,
                        schedule=dict(by_epoch=True, total=10), config_hash=config_hash, gpus=1)
    log = run_dir / '20260101_000000' / '20260101_000000.log'
    log.parent.mkdir()
    log.write_text('12/03 10:00:00 - mmengine - INFO - Epoch(train)  [2][10/10]  lr: 1e-3\n'
                   '12/03 10:01:00 - mmengine - INFO - Epoch(train)  [3][ 5/10]  lr: 1e-3\n')
    with rundir.RunLock(run_dir) as held:  # a live training holds it
        assert held
        assert status_main(argv) == 1
    line = capsys.readouterr().out
    assert re.search(r'^running\s+-\s+25%\s+10m0\ds\s+30m0\ds\s+status_test/smoke/', line,
                     re.M), line

    # Its training died without an end: interrupted, still exit 1.
    assert status_main(argv) == 1
    assert re.search(r'^interrupted\s', capsys.readouterr().out, re.M)

    # Finished (under the config the table generates today): exit 0.
    rundir.write_record(run_dir, status='finished', ended=_ago(0), returncode=0)
    assert status_main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r'^finished\s', out, re.M) and 'status_test: 1 run(s): 1 finished' in out
