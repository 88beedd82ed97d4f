"""The table runner: row expansion, config generation, data-root checks, and the bookkeeping of
finished, resumed, failed and locked runs, on real mmengine runs of the smoke profile."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import ablations
from ablations import TABLES, get_table
from tools.make_tiny_datasets import make_tiny_datasets
from tools.row_config import DATA_LAYOUT, build_row_config, check_data_root
from tools.run_table import RunLock, Run, main, parse_args, plan_runs, read_status, train_command

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def smoke_data(tmp_path_factory):
    return make_tiny_datasets(tmp_path_factory.mktemp('data') / 'smoke')


def test_plan_expands_rows_tasks_and_seeds(tmp_path):
    table = get_table('table4')
    runs = plan_runs(table, None, None, 2, tmp_path)
    assert len(runs) == 5 * 3 * 2
    # classification first within a row and seed: det/seg start from its checkpoint
    assert [r.task for r in runs[:3]] == ['cls', 'det', 'seg']
    assert runs[0].dir == tmp_path / 'table4' / 'causal-noconv2' / 'cls' / 'seed0'
    some = plan_runs(table, ['conv2-gate', 'conv1 - conv2 - concat'], ['seg', 'cls'], 1, tmp_path)
    assert [(r.row, r.task) for r in some] == [('conv2-gate', 'cls'), ('conv2-gate', 'seg'),
                                               ('conv2-concat', 'cls'), ('conv2-concat', 'seg')]


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


def test_full_profile_dry_run_prints_slurm_commands(capsys, tmp_path):
    assert main(['table4', '--profile', 'full', '--launcher', 'slurm', '--gpus', '16',
                 '--partition', 'gpu', '--dry-run', '--work-dir', str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line.strip() for line in lines if line.startswith('  ')]
    assert len(commands) == 15 and not any(tmp_path.iterdir())
    first = commands[0].split()
    assert first[:8] == ['srun', '--partition=gpu', '--job-name=table4-causal-noconv2-cls',
                         '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                         '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert first[-3:] == ['--resume', '--launcher', 'slurm']
    assert str(tmp_path / 'table4/causal-noconv2/cls/seed0/config.py') in first


def test_torchrun_command():
    cmd = train_command(Path('/w/config.py'), Path('/w'), 'pytorch', 4, None, 'job')
    assert cmd[:4] == [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=4']
    assert cmd[-2:] == ['--launcher', 'pytorch']
    with pytest.raises(SystemExit):
        parse_args(['table4', '--gpus', '2'])  # several GPUs need a launcher


def _registry_for(cfg):
    scope = cfg.default_scope
    if scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS


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
            init_default_scope(cfg.default_scope)
            if profile == 'full' and task != 'cls':
                continue  # full-size detectors/segmentors: the smoke build covers the wiring
            model = _registry_for(cfg).build(cfg.model)
            backbone_cfg = cfg.model.backbone
            for key, value in row.backbone_overrides(task).items():
                got = backbone_cfg[key]
                if isinstance(value, dict):
                    assert {k: got[k] for k in value} == value
                else:
                    assert tuple(got) == tuple(value) if isinstance(value, tuple) else got == value
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


@pytest.mark.slow
def test_smoke_runs_learn_skip_resume_and_record_failures(tmp_path, smoke_data, capsys):
    """A real smoke classification run beats chance; running again skips it; an interrupted run
    resumes from its checkpoint; a crashing row is recorded as failed while the others go on."""
    table4 = get_table('table4')
    broken = replace(table4.row('conv2-concat'), slug='broken', name='broken',
                     overrides=dict(mixer_cfg=dict(fusion='bogus')))
    table = replace(table4, name='runner_test', rows=(table4.row('conv2-concat'), broken),
                    claims=())
    args = ['--work-dir', str(tmp_path), '--tasks', 'cls', '--data-root', str(smoke_data),
            '--no-report', '--quiet']
    ablations.TABLES['runner_test'] = table
    try:
        assert main(['runner_test', *args]) == 1  # the broken row failed, the good one ran
        good = tmp_path / 'runner_test/conv2-concat/cls/seed0'
        bad = tmp_path / 'runner_test/broken/cls/seed0'
        assert read_status(good)['status'] == 'finished'
        status = read_status(bad)
        assert status['status'] == 'failed' and status['returncode'] != 0
        assert "fusion" in Path(status['console_log']).read_text()
        top1 = [s['accuracy/top1'] for s in _scalars(good) if 'accuracy/top1' in s]
        assert len(top1) == 1 and top1[0] > 25.0 + 15.0, f'no better than chance: {top1}'

        out = capsys.readouterr().out
        assert main(['runner_test', '--rows', 'conv2-concat', *args]) == 0
        assert 'conv2-concat/cls/seed0: skipped' in capsys.readouterr().out

        # Interrupted after its last checkpoint: mmengine resumes and only evaluates again.
        status = json.loads((good / 'run.json').read_text())
        (good / 'run.json').write_text(json.dumps({**status, 'status': 'running'}))
        assert main(['runner_test', '--rows', 'conv2-concat', *args]) == 0
        console = (good / 'console.log').read_text()
        assert 'resumed epoch: 0, iter: 48' in console
        assert read_status(good)['status'] == 'finished'

        with RunLock(good) as held:
            assert held
            (good / 'run.json').write_text(json.dumps({**status, 'status': 'running'}))
            assert main(['runner_test', '--rows', 'conv2-concat', *args]) == 0
            assert 'locked' in capsys.readouterr().out
        del out
    finally:
        del ablations.TABLES['runner_test']
