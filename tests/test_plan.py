"""`./run_all.sh plan`: the extrapolation arithmetic, the throughput anchor a CPU plan rests on,
the written plan, the dry run's plan line keyed by profile, a broken config and an end-to-end
pilot through the real mmengine Runner on generated full-size data."""
from __future__ import annotations

import json
import math

import pytest

import runs.commands.planner as planner
from ablations.reference_catalog import reference_path
from runs.commands.planner import (
    TRAIN_SET_SIZES,
    anchored_estimate,
    choose_anchor,
    estimate_at,
    full_config,
    images_of,
    iters_per_epoch,
    load_plan,
    official_throughput,
    pilot_config,
    plan_line,
    schedule_of,
    table_totals,
    total_iters,
    train_input_shape,
)
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
    if entry['cuda']:
        assert math.isclose(at32['wall_hours'], 300 * 20_018 * times[1] / 3600)
        assert math.isclose(at32['gpu_hours'], at32['wall_hours'] * 32)
    else:
        # Anchored on the official S6 run, the same model (ratio 1): 300 epochs of 1,281,167
        # images at 128 images / 0.089 s per GPU (its log) = 74.2 GPU-hours.
        anchor = entry['anchor']
        assert anchor['id'] == 'mobilemamba-s6-in1k' and anchor['ratio'] == 1.0
        assert anchor['chosen_by'] == 'the official run of its own recipe'
        assert at32['basis'] == 'anchor' and round(at32['gpu_hours'], 1) == 74.2
        assert math.isclose(at32['gpu_hours'], 300 * 1_281_167 / (128 / 0.089) / 3600)
        assert math.isclose(at32['wall_hours'], at32['gpu_hours'] / 32)
        assert entry['flops'] == anchor['flops'] and anchor['shape'] == [224, 224]
    assert entry['peak_mem_gib'] > 0 and entry['scan_backend'] and 'amp' in entry
    assert entry['schedule'] == dict(by_epoch=True, epochs=300, batch_per_gpu=2,
                                     train_set_size=TRAIN_SET_SIZES['cls'], drop_last=True)
    assert entry['estimates']['32'] == estimate_at(entry, 32)
    md = (reports / 'mobilemamba_mrffi' / 'plan.md').read_text()
    assert 'official/cls' in md and 'GPU-h @32' in md and "'train_dataloader.batch_size': 2" in md
    if not entry['cuda']:
        assert 'estimate: anchored on mobilemamba-s6-in1k at 1,438.2 img/GPU-s' in md


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


# --- the throughput anchor of a CPU plan ----------------------------------------------------------

def raw_meta(ref_id: str) -> dict:
    import gzip
    with gzip.open(reference_path(ref_id), 'rt') as f:
        return json.load(f)['meta']


def _anchor(rate: float) -> dict:
    return dict(id='x', img_per_gpu_s=rate, gpus=8, gpu_model=None, flops=1e9, shape=[224, 224],
                ours_flops=1e9, ours_multiplier=1.0, ratio=1.0, rate=rate, chosen_by='test')


def test_official_throughput_is_per_gpu_batch_over_the_logged_s_per_iter():
    """MobileMamba-S6: 128 images per GPU in 0.089 s (its log's median); Mask R-CNN B1: 4 per
    GPU in 0.905 s on the A100-SXM4-40GB its log names."""
    for ref_id in ('mobilemamba-s6-in1k', 'mobilemamba-b1-maskrcnn-coco',
                   'mambavision-t-upernet-ade20k'):
        meta = raw_meta(ref_id)
        found = official_throughput(ref_id)
        assert found['img_per_gpu_s'] == pytest.approx(meta['per_gpu_batch'] / meta['s_per_iter'])
        assert found['gpu_model'] == meta.get('gpu_model') and found['gpus'] == meta['gpus']
    assert official_throughput('mobilemamba-s6-in1k')['img_per_gpu_s'] == pytest.approx(128 / 0.089)
    assert official_throughput('mobilemamba-b1-maskrcnn-coco')['gpu_model'] == 'A100-SXM4-40GB'
    # A test of released weights measures no training step.
    assert official_throughput('mambavision-t-cascade-coco-test') is None


def test_anchored_estimate_takes_the_images_a_run_trains():
    """GPU-hours = images / (images per GPU-second) / 3600, whatever G; wall = that / G. A
    shorter schedule or a subset is fewer images."""
    anchor = _anchor(250.0)
    full = anchored_estimate(anchor, 8, images=300 * 1_281_167)
    assert full['gpu_hours'] == pytest.approx(300 * 1_281_167 / 250 / 3600)
    assert full['wall_hours'] == pytest.approx(full['gpu_hours'] / 8)
    assert anchored_estimate(anchor, 32, images=300 * 1_281_167)['gpu_hours'] == \
        pytest.approx(full['gpu_hours'])
    # 160k iterations of 16 images are 2,560,000 images.
    assert anchored_estimate(anchor, 8, iterations=160_000, global_batch=16)['gpu_hours'] == \
        pytest.approx(2_560_000 / 250 / 3600)
    assert anchored_estimate(anchor, 8, images=30 * 126_689)['gpu_hours'] == \
        pytest.approx(full['gpu_hours'] * 30 * 126_689 / (300 * 1_281_167))
    with pytest.raises(ValueError):
        anchored_estimate(anchor, 8)
    with pytest.raises(ValueError):
        anchored_estimate(anchor, 8, images=0)


def test_images_of_a_schedule_do_not_depend_on_the_gpu_count():
    """Epochs x training set; optimizer steps x global batch: UperNet's 160k steps of 16 images
    on 8 GPUs x 2, or on 1 GPU x 2 with accumulation 8 over 8 x 160k iterations."""
    assert images_of(CLS, 8) == images_of(CLS, 32) == 320 * TRAIN_SET_SIZES['cls']
    at8 = dict(by_epoch=False, max_iters=160_000, batch_per_gpu=2, accumulation=1,
               global_batch=16)
    at1 = dict(by_epoch=False, max_iters=160_000 * 8, batch_per_gpu=2, accumulation=8,
               global_batch=16)
    assert images_of(at8, 8) == images_of(at1, 1) == 160_000 * 16
    assert images_of(SEG, 8) == 160_000 * 2 * 8  # a record without its global batch


def test_a_cpu_plan_is_anchored_a_gpu_plan_is_measured():
    anchor = _anchor(221.0)
    cpu = dict(status='ok', cuda=False, device='CPU (2 cores)', s_per_iter=21.1,
               peak_mem_gib=25.3, mem_kind='peak RSS', flags=[], schedule=CLS, anchor=anchor)
    est = estimate_at(cpu, 8)
    # By hand: 320 epochs x 1,281,167 images at 221 images per GPU-second.
    assert est['basis'] == 'anchor' and est['total_iters'] == 320 * 1252
    assert est['gpu_hours'] == pytest.approx(320 * 1_281_167 / 221 / 3600)
    assert est['wall_hours'] == pytest.approx(est['gpu_hours'] / 8)
    gpu = dict(cpu, cuda=True, device='NVIDIA H100 80GB HBM3', s_per_iter=0.5)
    assert estimate_at(gpu, 8)['basis'] == 'pilot'
    assert estimate_at(gpu, 8)['gpu_hours'] == pytest.approx(320 * 1252 * 0.5 / 3600 * 8)
    lost = dict(cpu, anchor=None, anchor_error='boom')
    assert estimate_at(lost, 8)['basis'] == 'cpu'
    assert table_totals({'a/cls': cpu}, 8)['gpu_hours'] == pytest.approx(est['gpu_hours'])
    line = plan_line(cpu, 8)
    assert line.startswith(f'plan: 400,640 iters: {est["wall_hours"]:,.1f} h, '
                           f'{est["gpu_hours"]:,.0f} GPU-hours on 8 GPUs; estimate: anchored on x')
    assert '21.1' not in line and 'CPU pilot: pipeline ran, peak 25.3 GiB' in line
    assert 'boom' in plan_line(lost, 8)


def test_choose_anchor_own_recipe_else_same_kind_nearest_in_flops(monkeypatch):
    """FLOPs of the official configs stubbed (counting a detector takes a minute): the choice
    and the ratio by hand."""
    # Heads first: a detector's config name also holds its backbone's.
    flops = {'mask-rcnn': 200e9, 'retinanet': 400e9, 'ssdlite': 1e9, 'upernet': 300e9,
             'mobilemamba-t2': 0.25e9, 'mobilemamba-t4': 0.4e9, 'mobilemamba-s6': 0.65e9,
             'mobilemamba-b1': 1.0e9, 'mobilemamba-b2': 2.4e9, 'mobilemamba-b4': 4.3e9}
    kinds = {'mask-rcnn': 'MaskRCNN', 'retinanet': 'RetinaNet', 'ssdlite': 'SingleStageDetector'}

    def stub(config, task, cache_path):
        name = next(k for k in flops if k in config)
        return dict(flops=flops[name], shape=[224, 224], multiplier=1.0,
                    kind='classifier' if task == 'cls' else kinds.get(name, 'other'))
    monkeypatch.setattr(planner, '_config_flops', stub)
    seg = choose_anchor('seg_configs/mambavision/upernet_mambavision-t_512x512_160k_ade20k.py',
                        'seg', 330e9, 'UPerHead')
    assert seg['id'] == 'mambavision-t-upernet-ade20k' and seg['ratio'] == pytest.approx(1.1)
    assert seg['chosen_by'] == 'the official run of its own recipe'
    # MambaVision-T classifier: 4.58 GFLOPs x 1.25 (MESA) is nearest MobileMamba-B4's 4.3.
    cls = choose_anchor('cls_configs/mambavision/mambavision-t_in1k.py', 'cls', 4.58e9,
                        'classifier', 1.25)
    assert cls['id'] == 'mobilemamba-b4-in1k' and cls['ratio'] == pytest.approx(4.58 * 1.25 / 4.3)
    assert cls['rate'] == pytest.approx(128 / 0.435 / cls['ratio'])
    # A Mask R-CNN is anchored on the Mask R-CNN, though the RetinaNet is nearer in FLOPs.
    det = choose_anchor('det_configs/mambavision/mask-rcnn_mambavision-t_fpn_1x_coco.py', 'det',
                        400e9, 'MaskRCNN')
    assert det['id'] == 'mobilemamba-b1-maskrcnn-coco' and det['ratio'] == pytest.approx(2.0)
    assert det['chosen_by'] == 'the nearest in FLOPs of 1 official det runs with a MaskRCNN'


def test_the_training_input_size_of_each_kind_of_pipeline(tmp_path):
    """From the configs' pipelines: RandomResizedCrop 224 / 512, mmdet's Resize (1333, 800) as
    (W, H) and SSDLite's 320, mmseg's 512 x 512 crop."""
    from mmengine.config import Config
    expected = {'cls_configs/mambavision/mambavision-t_in1k.py': (224, 224),
                'cls_configs/mobilemamba/mobilemamba-b4_in1k.py': (512, 512),
                'det_configs/mobilemamba/mask-rcnn_mobilemamba-b1_fpn_1x_coco.py': (800, 1333),
                'det_configs/mobilemamba/ssdlite_mobilemamba-b1_320_600e_coco.py': (320, 320),
                'seg_configs/mambavision/upernet_mambavision-t_512x512_160k_ade20k.py':
                    (512, 512)}
    for config, shape in expected.items():
        assert train_input_shape(Config.fromfile(config)) == shape, config


def test_a_plan_estimates_full_runs_only(tmp_path):
    """A smoke run of a planned row is another run: its dry run gets no plan line."""
    (tmp_path / 'table4').mkdir()
    entry = dict(status='ok', cuda=True, device='GPU', s_per_iter=0.5, peak_mem_gib=1.0,
                 flags=[], schedule=CLS)
    (tmp_path / 'table4' / 'plan.json').write_text(json.dumps(
        dict(profile='full', runs={'conv2-concat/cls': entry})))
    assert load_plan('table4', tmp_path)['conv2-concat/cls']['s_per_iter'] == 0.5
    assert load_plan('table4', tmp_path, 'smoke') == {}
    assert plan_line(None, 8) is None


@pytest.mark.slow
def test_the_smoke_dry_run_prints_no_plan_line_the_full_one_its_estimate(tmp_path, capsys):
    """The dry runs of table4 conv2-concat cls against a plan of that row (on CPU, anchored)."""
    from tools.run_table import main as run_table
    (tmp_path / 'table4').mkdir()
    entry = dict(status='ok', cuda=False, device='CPU (2 cores)', s_per_iter=21.1,
                 peak_mem_gib=25.3, mem_kind='peak RSS', flags=[], schedule=CLS,
                 anchor=_anchor(221.0))
    (tmp_path / 'table4' / 'plan.json').write_text(json.dumps(
        dict(profile='full', runs={'conv2-concat/cls': entry})))
    common = ['table4', '--rows', 'conv2-concat', '--tasks', 'cls', '--dry-run',
              '--report-dir', str(tmp_path), '--work-dir', str(tmp_path / 'work')]
    assert run_table(common) == 0
    smoke = capsys.readouterr().out
    assert 'table4/smoke/conv2-concat/cls' in smoke and 'plan:' not in smoke
    assert run_table(common + ['--profile', 'full']) == 0
    full = capsys.readouterr().out
    assert 'plan: ' in full and 'GPU-hours on 1 GPUs; estimate: anchored on x at 221.0' in full
    assert 's/iter on CPU' not in full
