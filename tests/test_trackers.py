"""``--vis tensorboard``: a smoke run streams to TensorBoard through mmengine's backend, and an
interrupted and resumed run stays one TensorBoard run whose series equal mmengine's scalars.
Read back with TensorBoard's own reader. (W&B and MLflow are not wired yet.)"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import runs
from runs import RunKey
from runs.launch import python_env
from runs.trackers import TENSORBOARD_DIR

REPO = Path(__file__).resolve().parent.parent


def _mmengine_series(run_dir: Path, key: str) -> dict[int, float]:
    """step -> value over every attempt's scalars.json, a later attempt overriding."""
    series = {}
    for path in sorted(run_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if key in entry:
                series[entry['step']] = entry[key]
    return series


def _tensorboard_series(folder: Path, key: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder))
    events.Reload()
    series = {}
    for event in sorted(events.Scalars(key), key=lambda e: e.wall_time):
        series[event.step] = event.value
    return series


@pytest.mark.slow
def test_tensorboard_is_one_run_across_a_resume(tmp_path):
    # (the first --vis tensorboard run installs tensorboard, whose reader is used below)
    command = [sys.executable, '-m', 'tools.run_table', 'table4', '--rows', 'conv2-concat',
               '--tasks', 'cls', '--vis', 'tensorboard', '--work-dir', str(tmp_path),
               '--no-report']
    run_dir = RunKey.train('table4', 'smoke', 'conv2-concat', 'cls', 0).dir(tmp_path)
    first = subprocess.Popen(command, cwd=REPO, env=python_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not (run_dir / 'last_checkpoint').exists():
            assert first.poll() is None and time.monotonic() < deadline, 'no checkpoint'
            time.sleep(0.2)
        first.send_signal(signal.SIGTERM)  # stops the run; the next invocation resumes it
        first.wait(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert runs.read_record(run_dir)['status'] == 'interrupted'
    assert subprocess.run(command, cwd=REPO, env=python_env(), capture_output=True).returncode == 0
    record = runs.read_record(run_dir)
    assert record['status'] == 'finished' and record['attempts'] == 2
    assert record['trackers'] == ['tensorboard']

    # one TensorBoard folder for both attempts: one run, one curve
    folder = run_dir / TENSORBOARD_DIR
    assert len(list(folder.glob('events.out.tfevents.*'))) == 2
    assert [p.name for p in folder.iterdir() if p.is_dir()] == []
    for key in ('loss', 'lr', 'accuracy/top1'):
        ours, board = _mmengine_series(run_dir, key), _tensorboard_series(folder, key)
        assert ours and board.keys() == ours.keys(), key
        assert all(abs(board[s] - ours[s]) <= 1e-5 * max(1.0, abs(ours[s])) for s in ours), key
    assert max(_tensorboard_series(folder, 'loss')) == 48  # through to the last iteration


def test_unknown_tracker_is_one_line_and_exit_2(capsys):
    from tools.run_table import main as run_table
    with pytest.raises(SystemExit) as exc:
        run_table(['table4', '--vis', 'tensorboard,neptune', '--dry-run'])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert 'neptune' in err and 'valid: tensorboard' in err
