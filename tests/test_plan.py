"""`./run_all.sh plan`: the extrapolation arithmetic, the written plan, a broken config and an
end-to-end pilot through the real mmengine Runner on generated full-size data."""
from __future__ import annotations

import json
import math

import pytest

from runs.commands.planner import (TRAIN_SET_SIZES, estimate_at, full_config, iters_per_epoch, load_plan,
                          pilot_config, schedule_of, table_totals, total_iters)
from tools.plan import main

CLS = dict(by_epoch=True, epochs=320, batch_per_gpu=128, train_set_size=TRAIN_SET_SIZES['cls'])
DET = dict(by_epoch=True, epochs=12, batch_per_gpu=2, train_set_size=TRAIN_SET_SIZES['det'])
SEG = dict(by_epoch=False, max_iters=160_000, batch_per_gpu=2)


def _measured(schedule: dict, s_per_iter: float) -> dict:
    return dict(status='ok', s_per_iter=s_per_iter, schedule=schedule)


def test_iterations_per_epoch_follow_the_sampler_and_match_the_global_batch_rule():
    # 1,281,167 / (8 x 128) = 1251.1 -> 1252; / (32 x 128) = 312.8 -> 313.
    assert iters_per_epoch(TRAIN_SET_SIZES['cls'], 128, 8) == 1252
    assert iters_per_epoch(TRAIN_SET_SIZES['cls'], 128, 32) == 313
    # The ImageNet recipes drop each rank's last incomplete batch, as the official loaders do.
    assert iters_per_epoch(TRAIN_SET_SIZES['cls'], 128, 32, drop_last=True) == 312
    assert iters_per_epoch(TRAIN_SET_SIZES['cls'], 128, 8, drop_last=True) == 1251
    # DefaultSampler's per-rank padding then each rank's batches: ceil(N / global batch).
    for size, batch, gpus in ((117_266, 2, 8), (20_210, 4, 8), (10, 3, 4), (9, 2, 4), (1, 5, 3)):
        assert iters_per_epoch(size, batch, gpus) == math.ceil(size / (batch * gpus))
    with pytest.raises(ValueError):
        iters_per_epoch(100, 0, 8)


def test_gpu_hours_at_8_and_32_gpus():
    cls = _measured(CLS, 0.5)
    at8, at32 = estimate_at(cls, 8), estimate_at(cls, 32)
    assert at8['total_iters'] == 320 * 1252 and at32['total_iters'] == 320 * 313
    assert at8['wall_hours'] == pytest.approx(320 * 1252 * 0.5 / 3600)
    assert at8['gpu_hours'] == pytest.approx(8 * at8['wall_hours'])
    # Epoch-based: the same images whatever G, so the GPU-hours hardly move and the wall time
    # drops four times.
    assert at32['gpu_hours'] == pytest.approx(at8['gpu_hours'], rel=1e-3)
    assert at32['wall_hours'] == pytest.approx(at8['wall_hours'] / 4, rel=1e-3)
    # Iteration-based: max_iters steps whatever G.
    seg = _measured(SEG, 0.3)
    assert estimate_at(seg, 8)['total_iters'] == estimate_at(seg, 32)['total_iters'] == 160_000
    assert estimate_at(seg, 32)['gpu_hours'] == pytest.approx(160_000 * 0.3 / 3600 * 32)
    assert total_iters(DET, 8) == 12 * math.ceil(math.ceil(117_266 / 8) / 2)
    assert estimate_at(dict(status='failed', error='x'), 8) is None


def test_table_total_in_sequence_and_in_parallel():
    entries = {'a/cls': _measured(CLS, 0.5), 'a/det': _measured(DET, 0.4),
               'a/seg': _measured(SEG, 0.3), 'b/cls': _measured(CLS, 0.6),
               'b/det': dict(status='failed', error='boom')}
    t = table_totals(entries, 8)
    walls = {n: estimate_at(e, 8) for n, e in entries.items()}
    ok = [w for w in walls.values() if w]
    assert t['gpu_hours'] == pytest.approx(sum(w['gpu_hours'] for w in ok))
    assert t['wall_hours_sequence'] == pytest.approx(sum(w['wall_hours'] for w in ok))
    # det and seg start from their row's cls: row a is cls then the longer of det and seg.
    row_a = walls['a/cls']['wall_hours'] + max(walls['a/det']['wall_hours'],
                                               walls['a/seg']['wall_hours'])
    assert t['wall_hours_parallel'] == pytest.approx(max(row_a, walls['b/cls']['wall_hours']))
    assert t['runs_not_estimated'] == 1 and t['gpus_in_parallel'] == 8 * 4


@pytest.mark.parametrize('argv, message', [
    (['nope'], "unknown ablation table 'nope'"),
    (['table4', '--rows', 'nope'], 'nope'),
    (['table4', '--tasks', 'cls,depth'], 'unknown task(s) depth'),
    (['table4', '--gpus', '8,x'], "--gpus must be a positive integer, got 'x'"),
    (['table4', '--iters', '1'], '--iters must be at least 2'),
    (['table4', '--gpu-mem', '-3'], "--gpu-mem must be a positive number of GiB, got '-3'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_broken_config_is_reported_with_its_error_and_a_non_zero_exit(tmp_path, capsys):
    """A backbone arch that does not exist: the pilot fails building the model, the plan says
    so with the error and the log, and exits 1."""
    out = tmp_path / 'table4'
    status = main(['table4', '--rows', 'conv2-concat', '--tasks', 'cls', '--iters', '2',
                   '--out', str(out), '--data-dir', str(tmp_path / 'data'),
                   '--work-dir', str(tmp_path / 'pilots'), '--cfg-options',
                   'train_dataloader.batch_size=2', 'model.backbone.arch=NOPE'])
    assert status == 1
    entry = load_plan('table4', tmp_path)['conv2-concat/cls']
    written = json.loads((out / 'plan.json').read_text())
    assert entry['status'] == 'failed' and 'NOPE' in entry['error']
    assert entry['flags'] == ['FAILED'] and 'NOPE' in open(entry['log']).read()
    assert 'FAILED' in (out / 'plan.md').read_text() and 'NOPE' in capsys.readouterr().out
    assert written['totals']['8']['runs_not_estimated'] == 1


@pytest.mark.slow
def test_pilot_end_to_end_on_full_size_data(tmp_path):
    """The cheapest run (MobileMamba-S6 ImageNet, 224 px) through the real Runner for 2
    iterations on generated 500x375 JPEGs with its full pipeline (RandomResizedCrop,
    RandAugment, RandomErasing, Mixup/CutMix, EMA). At its real batch of 128 this takes minutes
    on a 2-core CPU, so the batch is cut to 2 (the plan records the override)."""
    import time
    reports = tmp_path / 'reports'
    started = time.monotonic()
    status = main(['mobilemamba_mrffi', '--rows', 'official', '--iters', '2', '--gpus', '8,32',
                   '--out', str(reports / 'mobilemamba_mrffi'),
                   '--data-dir', str(tmp_path / 'data'), '--work-dir', str(tmp_path / 'pilots'),
                   '--cfg-options', 'train_dataloader.batch_size=2'])
    wall = time.monotonic() - started
    assert status == 0
    entries = load_plan('mobilemamba_mrffi', reports)
    entry = entries['official/cls']
    assert entry['status'] == 'ok' and entry['iters'] == 2
    # s/iter is the mean of mmengine's own per-iteration times after the first (warm-up), and
    # those times were measured inside this call: positive and within its wall clock.
    times = entry['iter_times']
    assert len(times) == 2 and all(t > 0 for t in times) and sum(times) <= wall
    assert entry['s_per_iter'] == times[1]
    # The estimate at 32 GPUs, by hand: 300 epochs of ImageNet-1k's 1,281,167 images, the
    # sampler padding to 40,037 a rank, whole batches of 2 (drop_last) -> 20,018 iters/epoch.
    at32 = entry['estimates']['32']
    assert at32['total_iters'] == 300 * 20_018
    assert math.isclose(at32['wall_hours'], 300 * 20_018 * times[1] / 3600)
    assert math.isclose(at32['gpu_hours'], at32['wall_hours'] * 32)
    assert entry['peak_mem_gib'] > 0 and entry['scan_backend'] and 'amp' in entry
    assert entry['schedule'] == dict(by_epoch=True, epochs=300, batch_per_gpu=2,
                                     train_set_size=TRAIN_SET_SIZES['cls'], drop_last=True)
    assert entry['estimates']['32'] == estimate_at(entry, 32)
    md = (reports / 'mobilemamba_mrffi' / 'plan.md').read_text()
    assert 'official/cls' in md and 'GPU-h @32' in md and "'train_dataloader.batch_size': 2" in md


def test_pilot_config_keeps_the_training_and_drops_validation_and_checkpoints(tmp_path):
    cfg = full_config('table4', 'conv2-concat', 'cls', tmp_path, tmp_path / 'run', gpus=8)
    pipeline = [step['type'] for step in cfg.train_dataloader.dataset.pipeline]
    batch, loop = cfg.train_dataloader.batch_size, dict(cfg.train_cfg)
    pilot = pilot_config(cfg, iters=2, num_workers=0, cuda=False)
    assert pilot.val_cfg is None and pilot.val_dataloader is None and pilot.test_cfg is None
    assert pilot.default_hooks.checkpoint is None
    assert [step['type'] for step in pilot.train_dataloader.dataset.pipeline] == pipeline
    assert 'RandomInterpRandAugment' in pipeline and pilot.train_dataloader.batch_size == batch
    assert dict(pilot.train_cfg) == loop and pilot.model.train_cfg.augments
    # No AMP on CPU in mmengine: the CPU pilot trains in float32.
    assert pilot.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in pilot.optim_wrapper
    assert schedule_of(pilot, 'cls') == dict(by_epoch=True, epochs=320, batch_per_gpu=128,
                                             train_set_size=TRAIN_SET_SIZES['cls'],
                                             drop_last=True)
