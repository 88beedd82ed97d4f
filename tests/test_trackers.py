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


def _logger_interval(run_dir: Path) -> int:
    """Every how many batches mmengine's LoggerHook logs the train scalars: the run's config."""
    from mmengine.config import Config
    return Config.fromfile(str(run_dir / 'config.py')).default_hooks.logger.interval


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
    # the checkpoint the next attempt resumes from, and the iteration it holds (its own meta)
    from backbones.checkpoint_io import load_checkpoint
    resume_from = Path((run_dir / 'last_checkpoint').read_text().strip())
    resumed_iter = load_checkpoint(resume_from)['meta']['iter']
    assert resume_from.name == f'preempt_iter_{resumed_iter}.pth'
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
    per_epoch = max(ours['loss']) // max(ours['accuracy/top1'])  # 48 iterations, 6 epochs

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
    # the resumed attempt goes on from its checkpoint's iteration, not from W&B step 0: mmengine
    # logs the train scalars after every `interval`-th batch of an epoch (the run's config.py),
    # at the iteration (8 batches an epoch here, a multiple of the interval); an epoch that
    # ended at the stop is validated first, at the iteration it ended on
    assert f'resumed epoch: {(resumed_iter - 1) // per_epoch}, iter: {resumed_iter}' in \
        (run_dir / rundir.CONSOLE).read_text()
    interval = _logger_interval(run_dir)
    assert (interval, per_epoch) == (4, 8)
    within = resumed_iter % per_epoch
    first_train = resumed_iter - within + (within // interval + 1) * interval
    first_logged = resumed_iter if within == 0 else first_train
    resumed = attempts[1]['history']
    assert min(min(steps) for steps in resumed.values()) == first_logged
    assert min(resumed['loss']) == first_train
    assert max(attempts[0]['history']['loss']) == resumed_iter - resumed_iter % interval
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


# --- the toy training (tests/toy_training.py) through the trackers' real backends ------------

TOY_KEY = RunKey.train('table4', 'smoke', 'conv2-concat', 'cls', 0)  # a run's identity only


def _toy_run_with_trackers(work: Path, trackers: list[str], *, samples: int, interval: int,
                           epochs: int, stop_at: int | None = None) -> tuple[Path, dict]:
    """A run dir as the runner leaves it for the toy: its tracker runs opened (run.json) and
    their mmengine backends in its config.py (``open_tracker_runs``, ``add_trackers``); batches
    of one sample, ``samples`` an epoch, a validation after each epoch, the train scalars logged
    every ``interval`` batches; ``stop_at``: SIGTERM after that iteration."""
    from mmengine.config import Config

    from runs.tracking.tracker_runs import add_trackers, open_tracker_runs
    from toy_training import toy_config
    run_dir = TOY_KEY.dir(work)
    run_dir.mkdir(parents=True)
    cfg = Config.fromfile(str(toy_config(work / 'toy.py', length=epochs, samples=samples)))
    cfg.default_hooks.logger.interval = interval
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=1)
    cfg.val_dataloader = dict(batch_size=1, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              dataset=dict(type='ToyNumbers', size=2))
    cfg.val_cfg = dict()
    # mmengine's own metric: its evaluation logs its timings (val/time in W&B)
    cfg.val_evaluator = dict(type='DumpResults', out_file_path=str(work / 'val.pkl'))
    if stop_at is not None:
        cfg.custom_hooks = [dict(type='SignalAtIter', at=stop_at)]
    opened = open_tracker_runs(TOY_KEY, trackers, run_dir, work, None, 'toy', None)
    rundir.write_record(run_dir, status='queued', config_hash='toy', tracker_runs=opened)
    add_trackers(cfg, run_dir, TOY_KEY, opened)
    cfg.dump(str(run_dir / 'config.py'))
    return run_dir, opened


def _toy_attempt(run_dir: Path, env: dict) -> int:
    """One attempt of the toy run, as the job starts a training (``engine.trainer --resume``)."""
    from toy_training import PYTHONPATH
    done = subprocess.run([sys.executable, '-m', 'engine.trainer', str(run_dir / 'config.py'),
                           '--work-dir', str(run_dir), '--resume'], cwd=REPO,
                          env=dict(env, PYTHONPATH=PYTHONPATH), capture_output=True,
                          text=True, timeout=300)
    with open(run_dir / rundir.CONSOLE, 'a') as console:  # for a failing assertion to show
        console.write(done.stdout + done.stderr)
    return done.returncode


@pytest.fixture
def toy_env(tmp_path, monkeypatch) -> dict:
    """W&B offline with its settings kept in the test; MLflow's file store beside the runs."""
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    for name in ('WANDB_ENTITY', 'WANDB_PROJECT', 'MLFLOW_EXPERIMENT_NAME'):
        monkeypatch.delenv(name, raising=False)
    return dict(os.environ, WANDB_MODE='offline', HOME=str(tmp_path / 'home'))


@pytest.mark.slow
def test_wandb_steps_after_a_resume_at_an_epoch_end_go_on_from_its_iteration(tmp_path,
                                                                             toy_env):
    """Stopped after the last iteration of epoch 1 (iteration 6 of 6-batch epochs), the run
    resumes from preempt_iter_6.pth: its first W&B step is 6 (epoch 1's validation, at the
    iteration that epoch ended on, which the stopped attempt never ran), then the train scalars
    at the next multiple of the log interval, 8."""
    samples, interval = 6, 2
    run_dir, opened = _toy_run_with_trackers(tmp_path, ['wandb'], samples=samples,
                                             interval=interval, epochs=3, stop_at=samples)
    assert _toy_attempt(run_dir, toy_env) == 128 + signal.SIGTERM
    from backbones.checkpoint_io import load_checkpoint
    resume_from = Path((run_dir / 'last_checkpoint').read_text().strip())
    resumed_iter = load_checkpoint(resume_from)['meta']['iter']
    assert (resume_from.name, resumed_iter) == ('preempt_iter_6.pth', 6)
    assert _toy_attempt(run_dir, toy_env) == 0
    attempts = _wandb_attempts(run_dir)
    assert len(attempts) == 2 and {a['run'].run_id for a in attempts} == {opened['wandb']['id']}
    first, resumed = (a['history'] for a in attempts)
    # epoch-based: the train scalars after every `interval`-th batch of an epoch, at the
    # iteration; each evaluation at the iteration its epoch ended on
    assert first['loss'].keys() == {2, 4, 6} and 'val/time' not in first
    within = resumed_iter % samples
    first_train = resumed_iter - within + (within // interval + 1) * interval
    first_logged = resumed_iter if within == 0 else first_train
    assert (first_logged, first_train) == (6, 8)
    assert min(min(steps) for steps in resumed.values()) == first_logged
    assert min(resumed['loss']) == first_train
    assert resumed['val/time'].keys() == {6, 12, 18}
    assert resumed['loss'].keys() == {8, 10, 12, 14, 16, 18}


@pytest.mark.slow
def test_wandb_entity_and_mlflow_experiment_name_reach_the_trackers(tmp_path, toy_env,
                                                                     monkeypatch):
    """docs/trackers.md: the W&B run is in WANDB_ENTITY's project; the MLflow run in the
    experiment MLFLOW_EXPERIMENT_NAME names (instead of <table>/<profile>). Read back from the
    offline W&B run's own run record and MLflow's file store."""
    entity, experiment = 'ablation-lab-7f3', 'my-mamba-ablations-2c9'
    # the runner (which opens the tracker runs) and its trainings share one environment
    names = dict(WANDB_ENTITY=entity, WANDB_PROJECT='suite-entity-test',
                 MLFLOW_EXPERIMENT_NAME=experiment)
    for name, value in names.items():
        monkeypatch.setenv(name, value)
    env = dict(toy_env, **names)
    run_dir, opened = _toy_run_with_trackers(tmp_path, ['wandb', 'mlflow'], samples=4,
                                             interval=2, epochs=1)
    assert _toy_attempt(run_dir, env) == 0, (run_dir / rundir.CONSOLE).read_text()[-3000:]
    (attempt,) = _wandb_attempts(run_dir)
    assert (attempt['run'].entity, attempt['run'].project) == (entity, 'suite-entity-test')
    assert attempt['history']['loss'].keys() == {2, 4}
    from mlflow.tracking import MlflowClient
    client = MlflowClient((tmp_path / MLFLOW_STORE).as_uri())
    found = client.get_experiment_by_name(experiment)
    assert found is not None and opened['mlflow']['experiment'] == experiment
    runs = client.search_runs([found.experiment_id])
    assert [r.info.run_id for r in runs] == [opened['mlflow']['run_id']]
    assert runs[0].info.status == 'FINISHED'
    assert _mlflow_series(client, runs[0].info.run_id, 'loss').keys() == {2, 4}
    assert client.get_experiment_by_name('table4/smoke') is None
    assert {e.name for e in client.search_experiments()} <= {experiment, 'Default'}


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
