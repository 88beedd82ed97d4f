"""Reduced-cost full runs (issue 30): ``--schedule-scale F`` and ``--subset in100`` change the
recipe as docs/reduced_runs.md says, keep such runs apart from full ones, and refuse bad values.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablations import get_table
from ablations.compose import build_row_config
from ablations.reduction import Reduction, run_profile, split_profile
from runs.rundir import RunKey
from runs.rundir.identity import config_hash
from test_official_recipes import IMAGENET_TRAIN, mmengine_lrs

REPO = Path(__file__).resolve().parent.parent


def _full(task, profile, table='table4', row='conv2-concat', gpus=None):
    return build_row_config(table, row, task, profile=profile, data_root='data', gpus=gpus)


@pytest.mark.parametrize('name, profile, reduction', [
    ('full', 'full', Reduction()),
    ('full@0.1', 'full', Reduction(0.1)),
    ('full+in100', 'full', Reduction(subset='in100')),
    ('full@0.25+in100', 'full', Reduction(0.25, 'in100')),
    ('smoke', 'smoke', Reduction()),
])
def test_profile_names_round_trip(name, profile, reduction):
    assert split_profile(name) == (profile, reduction)
    assert run_profile(profile, reduction) == name


@pytest.mark.parametrize('bad', ['full@1', 'full@0.10', 'full@0', 'full+in1000', 'full@x'])
def test_profile_names_have_one_spelling(bad):
    with pytest.raises(ValueError):
        split_profile(bad)


def test_a_scaled_imagenet_run_decays_over_its_own_budget():
    """MambaVision-T at 0.1 on its official 32 GPUs: 32 of 320 epochs; every optimizer step's lr
    equals timm's CosineLRScheduler set up for the scaled run (cycle 31 and warm-up 2 epochs of
    the official 310 and 20, the 10 cooldown epochs scaled to 1) and stepped as the official
    train.py steps it: the cosine ends at lr_min, it is not a truncated 320-epoch curve."""
    from timm.scheduler import CosineLRScheduler
    cfg = _full('cls', 'full@0.1')
    assert cfg.train_cfg.max_epochs == 32
    n_iter = IMAGENET_TRAIN // 4096  # the official loader drops the last incomplete batch
    ours = mmengine_lrs(cfg.param_scheduler, cfg.optim_wrapper.optimizer.lr, 1, epochs=32,
                        length=n_iter)
    lr = cfg.optim_wrapper.optimizer.lr
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    # mambavision_tiny_1k.yaml: warmup_lr 1e-6, min_lr 5e-6 at lr 5e-3
    sched = CosineLRScheduler(opt, t_initial=31 * n_iter, lr_min=5e-6, warmup_lr_init=1e-6,
                              warmup_t=2 * n_iter, t_in_epochs=False)
    official = []
    for update in range(32 * n_iter):
        sched.step_update(num_updates=update + 1)
        official.append(opt.param_groups[0]['lr'])
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(official), rtol=1e-9, atol=0)
    assert official[-1] == pytest.approx(5e-6)
    # MESA's start ratio is kept: its divisor is the scaled 310
    [mesa] = [h for h in cfg.custom_hooks if h.type == 'MesaHook']
    assert mesa.epochs == 31


def test_the_ema_keeps_its_horizon_as_a_share_of_the_steps():
    full = [h for h in _full('cls', 'full').custom_hooks if h.type == 'StepEMAHook'][0].momentum
    scaled = _full('cls', 'full@0.1')
    ema = [h for h in scaled.custom_hooks if h.type == 'StepEMAHook'][0].momentum
    assert ema == pytest.approx(full / 0.1)
    both = _full('cls', 'full@0.1+in100')
    ema = [h for h in both.custom_hooks if h.type == 'StepEMAHook'][0].momentum
    assert ema == pytest.approx(full / (0.1 * 100 / 1000))


def test_scaled_detection_keeps_its_epochs_and_draws_a_part_of_each():
    full, scaled = _full('det', 'full', gpus=8), _full('det', 'full@0.1', gpus=8)
    assert scaled.train_cfg.max_epochs == full.train_cfg.max_epochs == 12
    assert scaled.train_dataloader.sampler.type == 'EpochFractionSampler'
    assert scaled.train_dataloader.sampler.fraction == 0.1
    warmup = [s for s in scaled.param_scheduler if s.type == 'LinearLR'][0]
    assert warmup.end == 100  # 1000 iterations x 0.1
    steps = [s for s in scaled.param_scheduler if s.type == 'MultiStepLR'][0]
    assert list(steps.milestones) == [8, 11]


def test_scaled_segmentation_runs_a_tenth_of_its_iterations():
    # on the official 16 GPUs x 1 image, then on 8 x 1 x accumulation 2 (twice the iterations)
    for gpus, iters in ((16, 16000), (8, 32000)):
        cfg = _full('seg', 'full@0.1', gpus=gpus)
        assert cfg.train_cfg.max_iters == iters
        assert cfg.fidelity['iters'] == 16000  # optimizer steps
        poly = [s for s in cfg.param_scheduler if s.type == 'PolyLR'][0]
        assert (poly.begin, poly.end) == (150 * iters // 16000, iters)  # warm-up 1500 x 0.1


def test_in100_selects_the_classes_and_a_100_way_head():
    cfg = _full('cls', 'full+in100')
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.type == 'ImageNetSubset'
        assert Path(dataset.wnids_file).name == 'imagenet100_cmc.txt'
    assert cfg.model.head.num_classes == 100 == cfg.data_preprocessor.num_classes
    assert 'engine.imagenet_subset' in cfg.custom_imports.imports
    det = _full('det', 'full+in100', gpus=8)
    assert any('in100 classification run' in d for d in det.fidelity['deviations'])


def test_a_reduced_run_is_another_run():
    full, scaled = _full('cls', 'full'), _full('cls', 'full@0.1')
    assert config_hash(full) != config_hash(scaled)
    assert RunKey.train('table4', 'full@0.1', 'conv2-concat', 'cls', 0).dir('w') != \
        RunKey.train('table4', 'full', 'conv2-concat', 'cls', 0).dir('w')
    assert scaled.fidelity['reduction'] == dict(schedule_scale=0.1, subset=None)
    assert any(d.startswith('schedule scaled by 0.1') for d in scaled.fidelity['deviations'])
    # nothing changes for a full run
    assert full.fidelity['reduction'] == dict(schedule_scale=1.0, subset=None)
    assert not any('scaled' in d for d in full.fidelity['deviations'])


def test_epoch_fraction_sampler_draws_a_new_part_each_epoch():
    import engine.samplers  # noqa: F401  (registers it)
    from mmengine.registry import DATA_SAMPLERS
    data = range(100)
    epochs = []
    for epoch in range(2):
        ranks = []
        for rank in range(2):
            sampler = DATA_SAMPLERS.build(dict(type='EpochFractionSampler', fraction=0.1,
                                               shuffle=True, seed=0),
                                          default_args=dict(dataset=data))
            sampler.rank, sampler.world_size = rank, 2
            sampler.num_samples = math.ceil(math.ceil(len(data) / 2) * 0.1)
            sampler.set_epoch(epoch)
            ranks.append(list(sampler))
        assert len(ranks[0]) == len(ranks[1]) == 5 and not set(ranks[0]) & set(ranks[1])
        epochs.append(set(ranks[0]) | set(ranks[1]))
    assert epochs[0] != epochs[1]


def _run_table(*args):
    return subprocess.run([sys.executable, '-m', 'tools.run_table', *args], cwd=REPO,
                          capture_output=True, text=True)


def _fake_data(root: Path) -> Path:
    for folder in ('imagenet/train', 'imagenet/val', 'coco/train2017', 'coco/val2017',
                   'coco/annotations', 'ade/ADEChallengeData2016/images/training',
                   'ade/ADEChallengeData2016/images/validation',
                   'ade/ADEChallengeData2016/annotations/training',
                   'ade/ADEChallengeData2016/annotations/validation'):
        (root / folder).mkdir(parents=True)
    for split in ('train', 'val'):
        (root / f'coco/annotations/instances_{split}2017.json').write_text('{}')
    return root


@pytest.mark.slow
def test_dry_run_shows_each_reduction(tmp_path):
    """The issue's 'done when': 32 ImageNet epochs on 100 classes, Mask R-CNN and UperNet at a
    tenth of their iterations, each reduction a deviation line; nothing written."""
    work = tmp_path / 'work'
    done = _run_table('table4', '--profile', 'full', '--data-root', str(_fake_data(tmp_path / 'd')),
                      '--gpus', '8', '--schedule-scale', '0.1', '--subset', 'in100', '--rows',
                      'conv2-concat', '--dry-run', '--work-dir', str(work))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert 'table4/full@0.1+in100/conv2-concat/cls/seed0' in out
    assert '32 epochs' in out and '16000 iters' in out
    assert 'deviation: schedule scaled by 0.1: 32 of 320 epochs' in out
    assert 'deviation: ImageNet-100, the 100 classes of CMC' in out
    assert 'each of the 12 epochs trains a new random 0.1 of the images' in out
    assert 'deviation: schedule scaled by 0.1: 16000 of 160000 iterations' in out
    assert not work.exists()


@pytest.mark.parametrize('args, message', [
    (['--profile', 'full', '--schedule-scale', '0'], "--schedule-scale 0.0 must be a number in"),
    (['--profile', 'full', '--schedule-scale', '1.5'], 'must be a number in (0, 1]'),
    (['--profile', 'full', '--subset', 'in1000'], "--subset 'in1000' is not known; valid: in100"),
    (['--schedule-scale', '0.1'], "reduce the full profile, not 'smoke'"),
])
def test_bad_reductions_are_one_line_and_exit_2(args, message, capsys, tmp_path):
    from tools import run_table
    with pytest.raises(SystemExit) as exit_:
        run_table.parse_args(['table4', '--data-root', str(tmp_path), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_reduced_report_says_what_its_cells_are(tmp_path, monkeypatch):
    """Runs of full@0.1: the report names its cells 'ours @0.1', never calls a gap a
    reproduction, labels its verdicts with the reduction and gives the official-curve caveat."""
    from runs.logs.early_ranking import reduced_run_caveat
    from test_reports import T1, seed_dir, train_line, val_line, write_run_json, write_scalars
    from tools import report as cli
    monkeypatch.chdir(tmp_path)
    for row, values in (('regular-noconv2', [0.80, 0.81]), ('causal-noconv2', [0.70, 0.71])):
        for seed, value in enumerate(values):
            d = seed_dir(tmp_path / 'work_dirs', row, 'cls', seed, profile='full@0.1')
            write_run_json(d)
            write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': value})])
    assert cli.main(['table4', '--out', 'out', '--no-complexity']) == 0
    text = (tmp_path / 'out' / 'table4.md').read_text()
    assert '> **Reduced runs (ours @0.1): not reproductions.**' in text
    assert '- Cells: ours @0.1 (published, ours - published).' in text
    line = next(l for l in text.splitlines()
                if l.startswith('| regular conv1 > causal conv1 | ImageNet top-1'))
    assert '| reproduced at @0.1 |' in line
    assert reduced_run_caveat(get_table('table4')) in text.replace('\n', ' ')
