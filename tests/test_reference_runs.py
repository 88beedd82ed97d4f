"""The official runs as references (issue 23): the committed extractions of the official logs,
the parser on excerpts of the original files, and our full configs' lr against the logged one.

Fixtures: ``tests/fixtures/reference_logs/*.excerpt.*`` are verbatim excerpts (whole lines, in
order) of the original logs at the commits recorded in the extractions: the config header, the
first training lines and the end of each run. Where a snapshot of the official repositories is
at hand (``SUITE_REFERENCE_REPOS=<MobileMamba dir>:<MambaVision dir>``, or the default paths
below), the extractions are also regenerated from the originals and must be byte-equal, which
checks each original's sha256.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from ablations import METRICS, get_table
from ablations.reference_catalog import (CONFIG_REFERENCES, RELEASED_REFERENCES,
                                  ROW_REFERENCES, SOURCES, load_reference, reference_path)
from runs.logs.log_formats import agrees_to_print, read_log
from tiers import first_of_each

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / 'tests' / 'fixtures' / 'reference_logs'
MANIFEST = json.loads((Path(__file__).resolve().parent / 'fixtures' / 'reference_excerpts'
                       / 'MANIFEST.json').read_text())
DEFAULT_REPOS = ('/work/.mirror/lewandofskee+MobileMamba/repo',
                 '/work/.mirror/NVlabs+MambaVision/repo')


def _hours_minutes(seconds: float) -> tuple[int, int]:
    return int(seconds // 3600), int(seconds % 3600 // 60)


# --- the committed extractions --------------------------------------------------------------------
def test_s6_reference_run():
    ref = load_reference('mobilemamba-s6-in1k')
    assert ref.meta['max_iters'] == 375_300 and ref.train['iter'][-1] == 375_300
    assert ref.meta['iters_per_epoch'] * ref.meta['max_epochs'] == 375_300
    best = ref.best('accuracy/top1')  # the EMA model's (net_E)
    assert (best['step'], best['metrics']['accuracy/top1']) == (299, 78.0)
    assert _hours_minutes(ref.meta['total_time_printed_seconds']) == (10, 1)
    assert (ref.meta['gpus'], ref.meta['per_gpu_batch'], ref.meta['global_batch']) == (8, 128, 1024)
    # The published cell of the row this run backs is this run's best EMA top-1.
    official = get_table('mobilemamba_mrffi').row('official').published['top1']
    assert round(best['metrics']['accuracy/top1'], 1) == official
    assert ROW_REFERENCES[('mobilemamba_mrffi', 'official', 'cls')] == ref.id


def test_upernet_t_reference_run():
    ref = load_reference('mambavision-t-upernet-ade20k')
    last = ref.last('mIoU')
    assert (last['step'], last['metrics']['mIoU']) == (160_000, 46.0)
    assert get_table('table4').row('conv2-concat').published['miou'] == 46.0
    assert ROW_REFERENCES[('table4', 'conv2-concat', 'seg')] == ref.id
    # 16 GPUs x 1 image (told by its 125 validation iterations over ADE20K's 2,000 images).
    assert (ref.meta['gpus'], ref.meta['global_batch']) == (16, 16)
    assert ref.meta['lr_format'] == '.4e' and ref.train['iter'][:2] == [50, 100]
    # The log's first and last lines: 2024/11/12 15:18:07 and 23:15:42 (tests/fixtures/
    # reference_excerpts/mambavision-t-upernet-ade20k.excerpt.log), one session.
    assert ref.hours * 3600 == (23 - 15) * 3600 + (15 - 18) * 60 + (42 - 7)


def test_mobilemamba_mask_rcnn_reference_run():
    ref = load_reference('mobilemamba-b1-maskrcnn-coco')
    last = ref.last('coco/bbox_mAP')
    assert last['step'] == 12
    assert round(last['metrics']['coco/bbox_mAP'] * METRICS['box_ap'].scale, 1) == 40.6
    assert (ref.meta['gpus'], ref.meta['global_batch']) == (4, 16)


def test_released_cascade_test_logs():
    """The test logs of the released Cascade checkpoints: what `eval` of them should give."""
    ref = load_reference('mambavision-t-cascade-coco-test')
    (only,) = ref.evaluations
    assert only['unit'] == 'test' and ref.kind == 'test'
    assert round(only['metrics']['coco/bbox_mAP'] * 100, 1) == 51.2
    assert round(only['metrics']['coco/segm_mAP'] * 100, 1) == 44.4


def test_every_reference_is_committed_small_and_sourced():
    total = 0
    for ref_id, source in SOURCES.items():
        path = reference_path(ref_id)
        total += path.stat().st_size
        ref = load_reference(ref_id)
        assert ref.source['repository'] == source.repository
        assert ref.source['path'] == source.path
        # The original the excerpt tool hashed from the official repository (its manifest).
        original = MANIFEST[ref_id]
        assert (ref.source['commit'], ref.source['sha256']) == \
            (original['commit'], original['sha256']), ref_id
        assert ref.evaluations, ref_id
        if ref.kind == 'train':
            assert len(ref.train['iter']) == len(ref.train['lr']) == len(ref.train['loss'])
            assert ref.train['iter'] == sorted(set(ref.train['iter']))
            assert ref.meta['gpus'] and ref.meta['global_batch'] and ref.meta['s_per_iter']
    assert total < 1_000_000
    for config in {**CONFIG_REFERENCES, **RELEASED_REFERENCES}:
        assert (REPO / config).is_file(), config
    for (table, row, task), ref_id in ROW_REFERENCES.items():
        assert task in get_table(table).tasks and get_table(table).row(row)
        assert load_reference(ref_id).task == task
        # The row's reference is its table's base config's reference: the same recipe.
        assert CONFIG_REFERENCES[get_table(table).base_configs[task]] == ref_id


def _repos() -> dict[str, Path] | None:
    given = os.environ.get('SUITE_REFERENCE_REPOS')
    paths = given.split(':') if given else DEFAULT_REPOS
    if len(paths) != 2 or not all(Path(p).exists() for p in paths):
        return None
    return dict(zip(('lewandofskee/MobileMamba', 'NVlabs/MambaVision'), map(Path, paths)))


@pytest.mark.slow
@pytest.mark.skipif(_repos() is None, reason='no snapshot of the official repositories here '
                                             '(set SUITE_REFERENCE_REPOS=<MobileMamba>:<MambaVision>)')
def test_extractions_regenerate_byte_equal_from_the_originals(tmp_path):
    from runs.logs.official_runs import extract_all
    done = extract_all(_repos(), data_dir=tmp_path)
    assert [ref_id for ref_id, path, _ in done if path] == list(SOURCES)
    for ref_id in SOURCES:
        assert (tmp_path / reference_path(ref_id).name).read_bytes() == \
            reference_path(ref_id).read_bytes(), ref_id


def test_extract_tool_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from tools.extract_reference_runs import main
    assert main([]) == 2
    assert main(['--mobilemamba', str(tmp_path)]) == 2  # not a git repository
    assert main(['--mobilemamba', str(tmp_path), '--ids', 'nope']) == 2
    # A git repository that is not MobileMamba: the log's path is not in it.
    other = tmp_path / 'other'
    other.mkdir()
    for args in (['init', '-q'], ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q',
                                  '--allow-empty', '-m', 'empty']):
        subprocess.run(['git', '-C', str(other), *args], check=True)
    out = tmp_path / 'out'
    assert main(['--mobilemamba', str(other), '--ids', 'mobilemamba-s6-in1k',
                 '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith('extract_reference_runs.py: error: ')
                                 for line in err), err
    assert 'nope' in err[2] and 'weights/MobileMamba_S6/mobilemamba_s6.txt' in err[3]
    assert not out.exists()


# --- the parser on the original files (excerpts) --------------------------------------------------
def test_parser_on_the_s6_log_excerpt():
    log = read_log(FIXTURES / 'mobilemamba_s6.excerpt.txt')
    assert log.format == 'mobilemamba'
    assert (log.meta['gpus'], log.meta['global_batch'], log.meta['max_iters']) == (8, 1024, 375_300)
    assert log.train[-1].iter == 375_300 and log.train[-1].lr_text == '0.000030'
    assert log.train[0].iter == 50 and log.train[0].lr_text == '0.000009'
    best = log.best_evaluation('accuracy/top1')
    assert (best.step, best.metrics['accuracy/top1']) == (299, 78.0)
    assert best.metrics['net/accuracy/top1'] == 77.796  # the raw model, kept apart
    assert _hours_minutes(log.meta['total_time_printed_seconds']) == (10, 1)
    # The extraction holds exactly what the excerpt's lines say.
    ref = load_reference('mobilemamba-s6-in1k')
    official = dict(zip(ref.train['iter'], ref.train['lr']))
    assert all(official[p.iter] == p.lr for p in log.train)


def test_parser_on_the_upernet_t_log_excerpt():
    log = read_log(FIXTURES / 'mambavision_upernet_t.excerpt.log')
    assert log.format == 'mmengine'
    assert (log.meta['gpus'], log.meta['global_batch'], log.meta['max_iters']) == (16, 16, 160_000)
    final = log.last_evaluation('mIoU')
    assert (final.step, final.metrics['mIoU']) == (160_000, 46.0)
    assert [p.lr_text for p in log.train[:2]] == ['1.6345e-06', '3.3022e-06']


def test_parser_on_the_mask_rcnn_log_excerpt():
    log = read_log(FIXTURES / 'mobilemamba_maskrcnn.excerpt.log')
    assert (log.meta['gpus'], log.meta['per_gpu_batch'], log.meta['iters_per_epoch']) == \
        (4, 4, 7330)
    final = log.last_evaluation('coco/bbox_mAP')
    assert final.step == 12 and final.metrics['coco/bbox_mAP'] == 0.406
    assert log.train[-1].iter == 11 * 7330 + 7300 and log.train[-1].epoch == pytest.approx(
        11 + 7300 / 7330)


def test_reporter_reads_an_official_mmengine_text_log(tmp_path):
    """reports.parsing reads a folder that holds only mmengine's text log (no scalars.json),
    such as the official UperNet-T run's."""
    from reports.parsing import read_folder
    folder = tmp_path / '20241112_151804'
    folder.mkdir()
    (folder / f'{folder.name}.log').write_bytes(
        (FIXTURES / 'mambavision_upernet_t.excerpt.log').read_bytes())
    log = read_folder(folder, ('mIoU',))
    assert log.kind == 'complete' and log.train_lines == 5
    (final,) = log.evaluations
    assert final.values == {'mIoU': 46.0} and final.step == 160_000
    assert final.line == read_log(folder / f'{folder.name}.log').last_evaluation('mIoU').line
    mask = tmp_path / '20241027_215732'
    mask.mkdir()
    (mask / f'{mask.name}.log').write_bytes(
        (FIXTURES / 'mobilemamba_maskrcnn.excerpt.log').read_bytes())
    (final,) = read_folder(mask, ('coco/bbox_mAP', 'coco/segm_mAP')).evaluations
    assert final.values == {'coco/bbox_mAP': 0.406, 'coco/segm_mAP': 0.374} and final.step == 12


def test_printed_precision():
    assert agrees_to_print(1.63449e-06, 1.6345e-06, '.4e')
    assert not agrees_to_print(1.6340e-06, 1.6345e-06, '.4e')
    assert agrees_to_print(8.99e-06, 9e-06, '.6f') and not agrees_to_print(8.4e-06, 9e-06, '.6f')


# --- our full configs' lr against the logged one --------------------------------------------------
def _lr_mismatches(table: str, row: str, task: str, ref_id: str, tmp_path) -> tuple[list, int]:
    """Our full config at the official GPU count, stepped by mmengine's real schedulers, against
    the official lr at every logged iteration: (mismatches, logged iterations compared)."""
    from ablations.compose import build_row_config
    from runs.commands.planner import TRAIN_SET_SIZES
    from runs.logs.lr_schedule import epoch_length, lr_curve
    ref = load_reference(ref_id)
    cfg = build_row_config(table, row, task, profile='full', data_root=tmp_path,
                           gpus=ref.meta['gpus'])
    assert cfg.fidelity['effective_batch'] == ref.meta['global_batch']
    assert cfg.fidelity['accumulation'] == 1
    per_epoch = epoch_length(cfg, TRAIN_SET_SIZES[task], ref.meta['gpus']) \
        if 'max_epochs' in cfg.train_cfg else None
    iters, lrs = ref.train['iter'], ref.train['lr']
    ours = lr_curve(cfg, iters[-1], per_epoch)
    spec = ref.meta['lr_format']
    bad = [(i, ours[i - 1], lr) for i, lr in zip(iters, lrs)
           if not agrees_to_print(ours[i - 1], lr, spec)]
    return bad, len(iters)


def test_upernet_t_lr_equals_the_official_log_at_every_logged_iteration(tmp_path):
    bad, compared = _lr_mismatches('table4', 'conv2-concat', 'seg',
                                   'mambavision-t-upernet-ade20k', tmp_path)
    assert compared == 3200
    assert not bad, f'{len(bad)} of {compared} differ, first (iter, ours, official): {bad[:3]}'


def test_s6_lr_equals_the_official_log_at_every_logged_iteration(tmp_path):
    bad, compared = _lr_mismatches('mobilemamba_mrffi', 'official', 'cls', 'mobilemamba-s6-in1k',
                                   tmp_path)
    assert compared == 7506
    assert not bad, f'{len(bad)} of {compared} differ, first (iter, ours, official): {bad[:3]}'


def test_the_official_s6_lr_is_one_timm_cosine_over_all_300_epochs():
    """What the S6 log says its schedule is (its config table: timm's CosineLRScheduler stepped
    per iteration, t_initial 300 x 1251, warmup_t 20 x 1251 from warmup_lr 3e-6, lr 1.5e-3 x
    1024 / 512, lr_min 3e-5): that closed form gives the logged lr at every logged iteration,
    the target our config's curve must meet (test above)."""
    ref = load_reference('mobilemamba-s6-in1k')
    per_epoch = ref.meta['iters_per_epoch']
    total, warmup = 300 * per_epoch, 20 * per_epoch
    lr, warmup_lr, lr_min = 1.5e-3 * ref.meta['global_batch'] / 512, 3e-6, 3e-5

    def timm(t: int) -> float:
        if t < warmup:
            return warmup_lr + t * (lr - warmup_lr) / warmup
        return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t / total))

    assert len(ref.train['iter']) == 7506
    assert all(agrees_to_print(timm(i - 1), logged, ref.meta['lr_format'])
               for i, logged in zip(ref.train['iter'], ref.train['lr']))


_COVERED = ('mobilemamba-s6-in1k', 'mambavision-t-upernet-ade20k')  # by the tests above


# quick tier: one recipe per task folder and family (tests/tiers.py)
@pytest.mark.parametrize('config, ref_id', first_of_each([
    pytest.param(config, ref_id, id=ref_id,
                 marks=[pytest.mark.slow] if ref_id.endswith('-in1k') else [])
    for config, ref_id in CONFIG_REFERENCES.items() if ref_id not in _COVERED],
    lambda case: tuple(case[0].split('/')[:2])))
def test_every_recipe_lr_equals_its_official_log(config, ref_id):
    """Each full config with a published official run (CONFIG_REFERENCES), at the official GPU
    count through ablations.compose.apply_global_batch (the full profile's batch keeping): its lr
    by mmengine's own schedulers at every logged iteration equals the logged one (the ImageNet ones
    since issue 19's timm cosine and whole-step epochs)."""
    from mmengine.config import Config

    from ablations.compose import apply_global_batch
    from runs.commands.planner import TRAIN_SET_SIZES
    from runs.logs.lr_schedule import epoch_length, lr_curve
    ref = load_reference(ref_id)
    cfg = Config.fromfile(str(REPO / config))
    fidelity = apply_global_batch(cfg, ref.meta['gpus'])
    assert fidelity['effective_batch'] == ref.meta['global_batch']
    per_epoch = epoch_length(cfg, TRAIN_SET_SIZES[ref.task], ref.meta['gpus']) \
        if 'max_epochs' in cfg.train_cfg else None
    if per_epoch:
        assert per_epoch == ref.meta['iters_per_epoch']
    ours = lr_curve(cfg, ref.train['iter'][-1], per_epoch)
    bad = [(i, ours[i - 1], lr) for i, lr in zip(ref.train['iter'], ref.train['lr'])
           if not agrees_to_print(ours[i - 1], lr, ref.meta['lr_format'])]
    assert not bad, f'{len(bad)} of {len(ref.train["iter"])} differ, first: {bad[:3]}'
