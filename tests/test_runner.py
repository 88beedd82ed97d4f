"""The table runner: row expansion, config generation, data-root checks, and the bookkeeping of
finished, resumed, failed and locked runs, on real mmengine runs of the smoke profile."""
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import ablations
from ablations import TABLES, get_table
from ablations.compose import DATA_LAYOUT, build_row_config, check_data_root
from runs.rundir import handover_checkpoint
from runs.datasets.tiny_datasets import make_tiny_datasets
from runs import rundir
from runs.rundir import RunLock
from runs.executors.process_layout import process_layout
from runs.table.graph import plan_runs, train_command
from tools.run_table import main, parse_args

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def smoke_data(tmp_path_factory):
    return make_tiny_datasets(tmp_path_factory.mktemp('data') / 'smoke')


def test_plan_expands_rows_tasks_and_seeds(tmp_path):
    table = get_table('table4')
    planned = plan_runs(table, None, None, 2, tmp_path, 'full')
    assert len(planned) == 5 * 3 * 2
    # classification first within a row and seed: det/seg start from its checkpoint
    assert [r.key.task for r in planned[:3]] == ['cls', 'det', 'seg']
    assert planned[1].depends_on is planned[0] and planned[0].depends_on is None
    assert planned[0].dir == tmp_path / 'table4' / 'full' / 'causal-noconv2' / 'cls' / 'seed0'
    some = plan_runs(table, ['conv2-gate', 'conv1 - conv2 - concat'], ['seg', 'cls'], 1, tmp_path)
    assert [(r.key.row, r.key.task) for r in some] == [
        ('conv2-gate', 'cls'), ('conv2-gate', 'seg'), ('conv2-concat', 'cls'),
        ('conv2-concat', 'seg')]


@pytest.mark.parametrize('bad,message', [
    (dict(rows=['nope']), "unknown row 'nope' in table4; valid rows: causal-noconv2"),
    (dict(tasks=['depth']), 'unknown task(s) depth for table4; its tasks: cls, det, seg'),
    (dict(seeds=0), '--seeds must be at least 1'),
])
def test_plan_rejects_bad_input_naming_the_choices(tmp_path, bad, message):
    kwargs = {**dict(rows=None, tasks=None, seeds=1), **bad}
    with pytest.raises(ValueError) as err:
        plan_runs(get_table('table4'), kwargs['rows'], kwargs['tasks'], kwargs['seeds'], tmp_path)
    assert message in str(err.value)


def test_unknown_table_lists_the_known_ones(capsys):
    assert main(['table9']) == 2
    err = capsys.readouterr().err
    assert "unknown ablation table 'table9'" in err and 'table4, table5, tableS1' in err


def test_data_root_check_shows_the_expected_layout(tmp_path, smoke_data):
    for task in ('cls', 'det', 'seg'):
        with pytest.raises(FileNotFoundError) as err:
            check_data_root(task, tmp_path / 'missing')
        assert DATA_LAYOUT[task]['layout'] in str(err.value)
        assert check_data_root(task, smoke_data).is_dir()
    (tmp_path / 'coco').mkdir()
    with pytest.raises(FileNotFoundError, match='lacks train2017'):
        check_data_root('det', tmp_path)
    with pytest.raises(ValueError, match='full profile needs --data-root'):
        build_row_config('table4', 'conv2-concat', 'cls', profile='full')


@pytest.mark.slow
def test_full_profile_dry_run_shows_slurm_jobs(capsys, tmp_path):
    assert main(['table4', '--profile', 'full', '--launcher', 'slurm', '--gpus', 'cls=16,det=8',
                 '--partition', 'gpu', '--dry-run', '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    commands = [line.strip() for line in lines if line.startswith('  srun') or
                line.startswith('  ' + sys.executable)]
    assert len(commands) == 15 and not any(tmp_path.iterdir())
    first = commands[0].split()
    assert first[:2] == ['srun', '--kill-on-bad-exit=1']
    assert first[-3:] == ['--resume', '--launcher', 'slurm']
    assert str(tmp_path / 'table4/full/causal-noconv2/cls/seed0/config.py') in first
    # the cls job spans 2 nodes of 8 GPUs; det on one node; seg (1 GPU) runs train.py alone
    assert '--nodes=2 --ntasks-per-node=8 --gres=gpu:8 --cpus-per-task=5 --partition=gpu' in out
    assert '--nodes=1 --ntasks-per-node=8 --gres=gpu:8' in out
    assert 'after table4/full/causal-noconv2/cls/seed0' in out


def test_torchrun_command():
    cmd = train_command(Path('/w/config.py'), Path('/w'), process_layout(4, 'pytorch', 'cpu'))
    assert cmd[:4] == [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=4']
    assert cmd[-2:] == ['--launcher', 'pytorch']
    assert parse_args(['table4', '--gpus', '2']).launcher == 'pytorch'  # torchrun by default
    with pytest.raises(SystemExit):
        parse_args(['table4', '--gpus', '2', '--launcher', 'none'])


def _registry_for(cfg):
    scope = cfg.default_scope
    if scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS


@pytest.mark.slow
@pytest.mark.parametrize('table', list(TABLES))
@pytest.mark.parametrize('profile', ['smoke', 'full'])
def test_every_row_config_builds_its_model(table, profile, smoke_data, tmp_path):
    """Every (row, task) config of every table builds, and the row's flags reach the backbone."""
    import backbones  # noqa: F401  (registers the backbones)
    from mmengine.registry import DefaultScope, init_default_scope
    table = get_table(table)
    for row in table.rows:
        for task in table.tasks:
            cfg = build_row_config(table, row, task, profile=profile, data_root=smoke_data,
                                   work_dir=tmp_path)
            cfg.dump(str(tmp_path / 'config.py'))  # the runner's record must round-trip
            # The row's flags are in every config, the full det/seg ones included.
            backbone_cfg = cfg.model.backbone
            for key, value in row.backbone_overrides(task).items():
                got = backbone_cfg[key]
                if isinstance(value, dict):
                    assert {k: got[k] for k in value} == value, (row.slug, task, key)
                else:
                    assert (tuple(got) == tuple(value) if isinstance(value, tuple)
                            else got == value), (row.slug, task, key)
            if profile == 'full' and task != 'cls':
                continue  # full-size detectors/segmentors: the smoke build covers the wiring
            init_default_scope(cfg.default_scope)
            model = _registry_for(cfg).build(cfg.model)
            assert type(model.backbone).__name__ == backbone_cfg.type
            DefaultScope._instance_dict.clear()


def test_smoke_config_is_the_base_plus_overlays(smoke_data):
    cfg = build_row_config('table4', 'causal-noconv2', 'det', data_root=smoke_data, seed=3)
    assert cfg.model.backbone.mixer_cfg.conv1 == 'causal'
    assert cfg.model.backbone.mixer_cfg.fusion == 'gate'
    assert cfg.model.roi_head.bbox_head.num_classes == 3
    assert cfg.train_cfg.max_iters == 40
    assert cfg.val_evaluator.ann_file == str(smoke_data / 'coco/annotations/instances_val2017.json')
    assert cfg.randomness.seed == 3
    full = build_row_config('table4', 'causal-noconv2', 'det', profile='full', data_root='/data')
    assert full.train_cfg.max_epochs == 12 and full.model.neck.in_channels == [80, 160, 320, 640]
    assert full.train_dataloader.dataset.data_root == '/data/coco'


def _scalars(run_dir: Path) -> list[dict]:
    (log,) = run_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in log.read_text().splitlines()]


MISSING_WEIGHTS = '/nonexistent/broken_row_weights.pth'


@pytest.fixture
def runner_table():
    """table4's official row plus a row whose training crashes, registered as 'runner_test'.
    Its model builds and runs (the check before queuing passes it); its pretrained weights are
    missing, which only the training finds."""
    table4 = get_table('table4')
    broken = replace(table4.row('conv2-concat'), slug='broken', name='broken', overrides=dict(
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=MISSING_WEIGHTS)))
    table = replace(table4, name='runner_test', rows=(table4.row('conv2-concat'), broken),
                    claims=())
    ablations.TABLES['runner_test'] = table
    yield table
    del ablations.TABLES['runner_test']


def _dir(work: Path, row: str, task: str = 'cls', profile: str = 'smoke', table='runner_test'):
    return rundir.RunKey.train(table, profile, row, task, 0).dir(work)


@pytest.mark.slow
def test_smoke_runs_learn_skip_resume_record_failures_and_go_stale(
        tmp_path, smoke_data, capsys, runner_table, monkeypatch):
    """A real smoke classification run beats chance; running again skips it; an interrupted run
    resumes from its checkpoint; a crashing row is recorded as failed while the others go on
    (two runs at once with --jobs 2), and its det run is blocked; a live training of a run is
    never started twice. Then the run's identity: a smoke result never stands in for a full
    run, and a finished run whose row changed is stale: not skipped silently, rerun only when
    asked, its old result kept."""
    args = ['--work-dir', str(tmp_path), '--tasks', 'cls', '--data-root', str(smoke_data),
            '--no-report']
    # --jobs 2: both runs start before either ends (with one job at a time, the second would
    # start only after the first ended).
    assert main(['runner_test', *args, '--jobs', '2']) == 1  # broken failed, the good one ran
    events = [line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith(('[start]', '[1/2]', '[2/2]'))]
    assert events == ['[start]', '[start]', '[1/2]', '[2/2]'], events
    good, bad = _dir(tmp_path, 'conv2-concat'), _dir(tmp_path, 'broken')
    assert rundir.read_record(good)['status'] == 'finished'
    # The cores are split between the two runs at once: each training saw its half (torch's
    # own thread count, printed by the training), not the whole machine.
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    for run_dir in (good, bad):
        threads = re.findall(r'^train: (\d+) CPU thread\(s\) per process, 0 GPU',
                             (run_dir / rundir.CONSOLE).read_text(), re.M)
        assert threads == [str(share)], (run_dir.name, threads, share)
    status = rundir.read_record(bad)
    assert status['status'] == 'failed' and status['returncode'] != 0
    assert MISSING_WEIGHTS in Path(status['console_log']).read_text()
    # The failed cls run's det run waits for it, then is blocked, never trained.
    assert main(['runner_test', '--work-dir', str(tmp_path), '--rows', 'broken', '--tasks',
                 'cls,det', '--data-root', str(smoke_data), '--no-report']) == 1
    assert 'runner_test/smoke/broken/det/seed0: blocked' in capsys.readouterr().out
    blocked = rundir.read_record(_dir(tmp_path, 'broken', 'det'))
    assert blocked['status'] == 'blocked' and 'did not finish' in blocked['error']
    assert not list(_dir(tmp_path, 'broken', 'det').glob('*.pth'))
    # The full recipe's structure: epoch-based, validated every epoch, EMA and MESA.
    top1 = [s['accuracy/top1'] for s in _scalars(good) if 'accuracy/top1' in s]
    assert len(top1) == 6 and top1[-1] > 25.0 + 15.0, f'no better than chance: {top1}'
    assert 'loss_mesa' in (good / 'console.log').read_text()
    # the hand-over a det/seg run of this row starts from: the recipe's best EMA checkpoint
    assert (good / rundir.HANDOVER).resolve() == handover_checkpoint(good).resolve()
    assert handover_checkpoint(good).name.startswith('best_accuracy_top1')

    capsys.readouterr()
    assert main(['runner_test', '--rows', 'conv2-concat', *args]) == 0
    assert 'conv2-concat/cls/seed0: skip (finished)' in capsys.readouterr().out

    # Interrupted after its last checkpoint: mmengine resumes and only evaluates again.
    rundir.write_record(good, status='running')
    assert main(['runner_test', '--rows', 'conv2-concat', *args]) == 0
    console = (good / 'console.log').read_text()
    assert 'resumed epoch: 6, iter: 48' in console
    assert rundir.read_record(good)['status'] == 'finished'

    # A live training holds the run's lock: the runner says so and starts nothing.
    with RunLock(good) as held:
        assert held
        rundir.write_record(good, status='running')
        capsys.readouterr()
        assert main(['runner_test', '--rows', 'conv2-concat', *args]) == 0
        assert 'a live training holds it' in capsys.readouterr().out
    rundir.write_record(good, status='finished')


    # The full profile's run is another run in another dir (dry run: nothing is trained here).
    capsys.readouterr()
    assert main(['runner_test', '--rows', 'conv2-concat', *args, '--profile', 'full',
                 '--dry-run']) == 0
    assert 'runner_test/full/conv2-concat/cls/seed0' in capsys.readouterr().out

    # The row's flags change: the finished run is stale.
    args = [*args, '--rows', 'conv2-concat']
    changed = replace(runner_table, rows=(replace(runner_table.row('conv2-concat'), overrides=dict(
        mixer_cfg=dict(conv1='regular', conv2=True, fusion='gate'))), runner_table.rows[1]))
    monkeypatch.setitem(ablations.TABLES, 'runner_test', changed)
    capsys.readouterr()
    assert main(['runner_test', *args]) == 0
    out = capsys.readouterr().out
    assert 'stale (its config changed since it ran)' in out and '--rerun-stale' in out
    from tools.status import main as status_main
    assert status_main(['runner_test', '--work-dir', str(tmp_path), '--profile', 'smoke',
                        '--rows', 'conv2-concat', '--tasks', 'cls']) == 1
    assert 'stale' in capsys.readouterr().out
    old_hash = rundir.read_record(good)['config_hash']
    assert old_hash
    assert main(['runner_test', *args, '--rerun-stale']) == 0
    assert rundir.read_record(good)['config_hash'] != old_hash
    kept = list((tmp_path / 'runner_test' / '.superseded').glob('smoke/conv2-concat/cls/seed0-*'))
    assert len(kept) == 1 and (kept[0] / 'run.json').exists()


@pytest.mark.slow
def test_killed_runner_leaves_no_training_behind(tmp_path, smoke_data, runner_table, capsys):
    """SIGKILL of the runner (OOM killer, dropped login) takes its training with it, and a
    rerun never trains the same run twice side by side."""
    import time
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    code = ('import sys; from dataclasses import replace; import ablations; '
            't = ablations.get_table("table4"); '
            'ablations.TABLES["runner_test"] = replace(t, name="runner_test", '
            'rows=(t.row("conv2-concat"),), claims=()); '
            'from tools.run_table import main; sys.exit(main(sys.argv[1:]))')
    args = ['runner_test', '--work-dir', str(tmp_path), '--rows', 'conv2-concat', '--tasks',
            'cls', '--data-root', str(smoke_data), '--no-report']
    run_dir = _dir(tmp_path, 'conv2-concat')

    def start_training(previous_child=None):
        """A runner in a process of its own, once its training process is recorded."""
        runner = subprocess.Popen([sys.executable, '-c', code, *args], env=env,
                                  cwd=env['PYTHONPATH'])
        deadline = time.monotonic() + 120
        while (rundir.read_record(run_dir) or {}).get('child_pid') in (None, previous_child):
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.2)
        record = rundir.read_record(run_dir)
        return runner, record['pid'], record['child_pid']

    def kill_and_check(runner, job_pid, train_pid):
        runner.kill()
        runner.wait()
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in (job_pid, train_pid)):
            assert time.monotonic() < deadline, 'the training outlived its killed runner'
            time.sleep(0.2)
        assert rundir.lock_holder(run_dir) is None
        assert rundir.recorded_state(rundir.read_record(run_dir), run_dir) == 'interrupted'

    runner, job_pid, train_pid = start_training()
    kill_and_check(runner, job_pid, train_pid)

    # The rerun trains the interrupted run again (a new training process); a second rerun while
    # that one lives finds the run's lock held and starts no training of its own.
    runner, job_pid, second_pid = start_training(previous_child=train_pid)
    assert second_pid != train_pid and not _alive(train_pid)
    capsys.readouterr()
    assert main(args) == 0
    assert 'a live training holds it' in capsys.readouterr().out
    assert rundir.read_record(run_dir)['child_pid'] == second_pid and _alive(second_pid)
    kill_and_check(runner, job_pid, second_pid)  # cheap: the rerun is not trained to the end


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False
