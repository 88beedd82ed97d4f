"""``--vis tensorboard,wandb,mlflow``: a smoke run streams to the three trackers through mmengine's
backends; interrupted and resumed, it stays one run in each, whose series equal mmengine's
scalars; nothing secret lands in the run dir or the tracking store. Read back with each tool's
own reader: TensorBoard's EventAccumulator, MLflow's client on its file store, and for W&B
(offline mode, as a researcher without network would run) the records of its run files decoded
with W&B's own protobuf schema (wandb 0.31 ships its reader only in its Go core; the framing
parsed here is the LevelDB log format those files use)."""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runs import rundir
from runs.rundir import RunKey
from runs.executors.launch import python_env
from runs.tracking.tracker_runs import TENSORBOARD_DIR, WANDB_DIR, MLFLOW_STORE

REPO = Path(__file__).resolve().parent.parent
# Stand-ins for a researcher's credentials: none may be written anywhere a run writes.
SECRETS = dict(WANDB_API_KEY='sekret0wandb0key0' + '7' * 23,
               MLFLOW_TRACKING_TOKEN='sekret-mlflow-token-4d2c',
               MLFLOW_TRACKING_PASSWORD='sekret-mlflow-password-9f1e')


def _mmengine_series(run_dir: Path, key: str, train: bool = False) -> dict[int, float]:
    """step -> value over every attempt's scalars.json, a later attempt overriding (``train``:
    from the train logs only, which carry the iteration)."""
    series = {}
    for path in sorted(run_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if key in entry and (not train or 'iter' in entry):
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


def _wandb_records(path: Path):
    """The records of one W&B run file: a 7-byte header (':W&B', magic, version), then LevelDB
    log blocks of 32 KiB, each record in chunks (full, or first/middle/last) of a 7-byte header
    (crc, length, type) and data; each record a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2
    data = path.read_bytes()
    assert data[:4] == b':W&B', path
    pos, block, pending = 7, 32768, b''
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack('<IHB', data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b''
            yield record


def _wandb_attempts(run_dir: Path) -> list[dict]:
    """Each offline W&B run the run wrote, oldest first: its run record, its config and its
    history as {key: {W&B step: value}}."""
    attempts = []
    for path in sorted(run_dir.glob(f'{WANDB_DIR}/offline-run-*/run-*.wandb')):
        run, history, config = None, {}, {}
        for record in _wandb_records(path):
            kind = record.WhichOneof('record_type')
            if kind == 'run':
                run = record.run
                config.update({i.key: json.loads(i.value_json) for i in run.config.update})
            elif kind == 'config':
                config.update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == 'history':
                items = {i.key or '/'.join(i.nested_key): json.loads(i.value_json)
                         for i in record.history.item}
                for key, value in items.items():
                    history.setdefault(key, {})[record.history.step.num] = value
        attempts.append(dict(run=run, history=history, config=config))
    return attempts


def _mlflow_series(client, run_id: str, key: str) -> dict[int, float]:
    """step -> value, a later-logged value overriding (a resumed attempt logs again from its
    checkpoint)."""
    series = {}
    for metric in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp):
        series[metric.step] = metric.value
    return series


def _close(a: dict[int, float], b: dict[int, float]) -> bool:
    return a.keys() == b.keys() and all(
        abs(a[s] - b[s]) <= 1e-5 * max(1.0, abs(b[s])) for s in b)


@pytest.mark.slow
def test_trackers_are_one_run_across_a_resume(tmp_path):
    # (the first --vis run installs tensorboard, wandb and mlflow, whose readers are used below)
    env = python_env()
    env.pop('MLFLOW_TRACKING_URI', None)  # MLflow's file store beside the runs
    env.update(SECRETS, WANDB_MODE='offline', WANDB_PROJECT='suite-test',
               HOME=str(tmp_path / 'home'))  # W&B's own cache and settings stay in the test
    command = [sys.executable, '-m', 'tools.run_table', 'table4', '--rows', 'conv2-concat',
               '--tasks', 'cls', '--vis', 'tensorboard,wandb,mlflow', '--work-dir',
               str(tmp_path), '--no-report']
    run_dir = RunKey.train('table4', 'smoke', 'conv2-concat', 'cls', 0).dir(tmp_path)
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
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
    assert rundir.read_record(run_dir)['status'] == 'interrupted'
    opened = rundir.read_record(run_dir)['tracker_runs']
    os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')
    from mlflow.tracking import MlflowClient
    client = MlflowClient((tmp_path / MLFLOW_STORE).as_uri())
    # the stopped attempt is not left RUNNING in MLflow
    assert client.get_run(opened['mlflow']['run_id']).info.status == 'KILLED'
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    record = rundir.read_record(run_dir)
    assert record['status'] == 'finished' and record['attempts'] == 2
    assert record['trackers'] == ['tensorboard', 'wandb', 'mlflow']
    assert record['tracker_runs'] == opened  # the same tracker runs, continued
    name = 'table4/smoke/conv2-concat/cls/seed0'
    ours = {key: _mmengine_series(run_dir, key) for key in ('loss', 'lr', 'accuracy/top1')}
    assert all(ours.values()) and max(ours['loss']) == 48  # through to the last iteration

    # TensorBoard: one folder for both attempts, one curve
    folder = run_dir / TENSORBOARD_DIR
    assert len(list(folder.glob('events.out.tfevents.*'))) == 2
    assert [p.name for p in folder.iterdir() if p.is_dir()] == []
    for key, series in ours.items():
        assert _close(_tensorboard_series(folder, key), series), key

    # W&B: each attempt an offline run with the one id, steps continuing: synced, one run
    attempts = _wandb_attempts(run_dir)
    assert len(attempts) == 2
    assert {a['run'].run_id for a in attempts} == {opened['wandb']['id']}
    for attempt in attempts:
        run = attempt['run']
        assert (run.project, run.display_name, run.run_group, run.job_type) == \
            ('suite-test', name, 'table4/smoke/conv2-concat/cls', 'cls')
        assert set(run.tags) == {'table4', 'smoke', 'conv2-concat', 'cls', 'seed0'}
        suite = attempt['config']['suite']  # the run's identity and recipe
        assert (suite['config_hash'], suite['seed'], suite['fidelity']) == (
            record['config_hash'], 0, record['fidelity'])
    first_steps = attempts[0]['history']['loss'].keys()
    resumed_steps = attempts[1]['history']['loss'].keys()
    # the resumed attempt goes on from its checkpoint's iteration, not from W&B step 0
    assert min(first_steps) < min(resumed_steps) <= max(first_steps) + min(first_steps)
    wandb = {}
    for attempt in attempts:
        for key, values in attempt['history'].items():
            wandb.setdefault(key, {}).update(values)
    for key in ('loss', 'lr'):  # W&B's step is the iteration, as mmengine's train step
        assert _close(wandb[key], ours[key]), key
    # the evaluations' timings apart from the train ones they share a row with
    assert _close(wandb['time'], _mmengine_series(run_dir, 'time', train=True))
    assert len(wandb['val/time']) == len(ours['accuracy/top1'])
    # validation: mmengine steps it by epoch; W&B at the iteration that epoch ended on
    per_epoch = max(ours['loss']) // max(ours['accuracy/top1'])
    assert _close({step // per_epoch: v for step, v in wandb['accuracy/top1'].items()},
                  ours['accuracy/top1'])

    # MLflow: one run in the table's experiment, tagged for grouping, finished
    experiment = client.get_experiment_by_name('table4/smoke')
    found = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in found] == [opened['mlflow']['run_id']]
    run = found[0]
    assert run.info.status == 'FINISHED' and run.info.run_name == name
    assert {k: run.data.tags[k] for k in ('table', 'profile', 'row', 'task', 'seed',
                                          'config_hash')} == dict(
        table='table4', profile='smoke', row='conv2-concat', task='cls', seed='0',
        config_hash=record['config_hash'])
    assert run.data.params['fidelity.effective_batch'] == \
        str(record['fidelity']['effective_batch'])
    for key, series in ours.items():
        assert _close(_mlflow_series(client, run.info.run_id, key), series), key

    # nothing secret anywhere a run writes: run dir (W&B's files included), the MLflow store
    for root in (run_dir, tmp_path / MLFLOW_STORE):
        for path in root.rglob('*'):
            if path.is_file():
                data = path.read_bytes()
                leaked = [k for k, v in SECRETS.items() if v.encode() in data]
                assert not leaked, f'{leaked} in {path}'


def test_unknown_tracker_is_one_line_and_exit_2(capsys):
    from tools.run_table import main as run_table
    with pytest.raises(SystemExit) as exc:
        run_table(['table4', '--vis', 'tensorboard,neptune', '--dry-run'])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert 'neptune' in err and 'valid: tensorboard, wandb, mlflow' in err


def test_wandb_without_an_account_stops_before_any_run(tmp_path, monkeypatch, capsys):
    """Online W&B with no API key would stop each training at its first log line, hours into
    a queue: the table command says so at once, in one line, exit 2."""
    from tools.run_table import main as run_table
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.delenv('WANDB_MODE', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.netrc from `wandb login`
    assert run_table(['table4', '--rows', 'conv2-concat', '--tasks', 'cls', '--vis', 'wandb',
                      '--work-dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'WANDB_API_KEY' in err and 'offline' in err, err
    assert not (tmp_path / 'table4').exists()


def test_a_tracking_uri_with_credentials_stays_out_of_config_and_record(monkeypatch):
    from runs.tracking.tracker_runs import _public_uri, mlflow_uri
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'https://ann:pa55@mlflow.lab:5000/x?token=t0k')
    assert mlflow_uri(Path('/work')) is None  # the config says: read it at run time
    assert _public_uri('https://ann:pa55@mlflow.lab:5000/x?token=t0k') == \
        'https://mlflow.lab:5000/x'
    monkeypatch.delenv('MLFLOW_TRACKING_URI')
    assert mlflow_uri(Path('/work')) == 'file:///work/mlruns'
