"""Bounded disk per run: every full config keeps a fixed number of checkpoints; a real smoke run
with pruning keeps only those, its footprint is what tools/footprint.py predicts, and resume and
the det-from-cls hand-over still work from what is left."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ablations.compose import build_row_config, load_config
from backbones.checkpoint_io import load_checkpoint
from engine.trainer import TextOnceConfig
from runs.rundir import handover_checkpoint
from runs.table.footprint import checkpoint_footprint, format_bytes, table_footprint
from tiers import first_of_each

REPO = Path(__file__).resolve().parent.parent
FULL_CONFIGS = sorted(str(p.relative_to(REPO))
                      for d in ('cls_configs', 'det_configs', 'seg_configs')
                      for p in (REPO / d).glob('*/*.py') if p.name != 'smoke.py')


# quick tier: one config per task folder and family (tests/tiers.py)
@pytest.mark.parametrize('path', first_of_each(FULL_CONFIGS, lambda p: Path(p).parts[:2]),
                         ids=lambda p: Path(p).stem)
def test_every_full_config_keeps_a_bounded_number_of_checkpoints(path):
    cfg = load_config(REPO / path)
    hook = cfg.default_hooks.checkpoint
    # docs/full_profile.md: every full config keeps the last two checkpoints (plus the best)
    assert hook.get('max_keep_ckpts') == 2, path
    if path.startswith('cls_configs'):
        # Both ImageNet recipes report the best EMA epoch: keep it beside the last ones.
        assert (hook.save_best, hook.rule) == ('accuracy/top1', 'greater')
    else:
        assert not hook.get('save_best')  # the final model is reported, and handed on


@pytest.fixture(scope='module')
def smoke_data(tmp_path_factory):
    from runs.datasets.tiny_datasets import make_tiny_datasets
    return make_tiny_datasets(tmp_path_factory.mktemp('data') / 'smoke')


def _pruned_cls_config(smoke_data, work_dir, max_iters):
    """The smoke cls run with the full recipe's EMA and a checkpoint every 2 iterations."""
    cfg = build_row_config('table4', 'conv2-concat', 'cls', data_root=smoke_data,
                           work_dir=work_dir)
    full = load_config(REPO / 'cls_configs/mambavision/mambavision-t_in1k.py')
    cfg.custom_hooks = full.custom_hooks  # EMA + MESA: the checkpoint then holds two copies
    cfg.train_dataloader.batch_size = 4
    cfg.train_dataloader.dataset.indices = 16
    cfg.val_dataloader.dataset.indices = 8
    cfg.train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=2)
    cfg.default_hooks.checkpoint = dict(full.default_hooks.checkpoint, by_epoch=False,
                                        interval=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=2)
    return TextOnceConfig.of(cfg)  # as the training process holds it (engine.trainer)


@pytest.mark.slow
def test_pruned_smoke_run_keeps_what_is_configured_and_hands_over(tmp_path, smoke_data):
    from mmengine.runner import Runner
    # Resume reads mmengine's own checkpoint through the suite's safe loader (installed by
    # importing backbones, which the config does): no weights_only=False anywhere.
    work = tmp_path / 'cls'
    cfg = _pruned_cls_config(smoke_data, work, max_iters=8)
    Runner.from_cfg(cfg).train()
    kept = sorted(p.name for p in work.glob('*.pth'))
    regular = [n for n in kept if n.startswith('iter_')]
    best = [n for n in kept if n.startswith('best_')]
    assert regular == ['iter_6.pth', 'iter_8.pth'] and len(best) == 1, kept
    # last_checkpoint names a file that pruning kept: a det/seg run starts from it.
    last = Path((work / 'last_checkpoint').read_text().strip())
    assert last.name == 'iter_8.pth' and last.exists()

    # The footprint predicted from the config matches the files on disk.
    fp = checkpoint_footprint(cfg)
    assert (fp['kept'], fp['best']) == (2, 1)
    on_disk = sum((work / n).stat().st_size for n in kept)
    assert fp['total_bytes'] == pytest.approx(on_disk, rel=0.05)
    assert fp['bytes_per_checkpoint'] == pytest.approx((work / 'iter_8.pth').stat().st_size,
                                                       rel=0.05)
    assert fp['best_bytes'] == pytest.approx((work / best[0]).stat().st_size, rel=0.05)
    total = table_footprint([fp, fp])
    assert total['total_bytes'] == 2 * fp['total_bytes']
    assert format_bytes(1_500_000) == '1.5 MB'

    # The newest checkpoint truncated (a job killed while saving): what runs/executors/job.py does before
    # every resume points mmengine at the older readable one that pruning kept, and says so.
    from runs.executors.resume import repair_resume_point
    newest = work / 'iter_8.pth'
    newest.write_bytes(newest.read_bytes()[:1000])
    assert repair_resume_point(work) == \
        'last checkpoint iter_8.pth is unreadable; resuming from iter_6.pth instead'
    assert Path((work / 'last_checkpoint').read_text().strip()) == work / 'iter_6.pth'
    assert (work / 'iter_8.pth.unreadable').is_file() and not newest.exists()

    # Resume from the pruned directory and train on (from iteration 6, the older checkpoint).
    cfg2 = _pruned_cls_config(smoke_data, work, max_iters=10)
    cfg2.resume = True
    runner = Runner.from_cfg(cfg2)
    runner.train()
    assert runner.iter == 10
    log = Path(runner.log_dir) / f'{runner.timestamp}.log'
    assert 'resumed epoch: 0, iter: 6' in log.read_text()
    assert sorted(p.name for p in work.glob('iter_*.pth')) == ['iter_10.pth', 'iter_8.pth']

    # The det hand-over: the best (EMA) checkpoint survives pruning, and the backbone of the
    # row's det config loads it.
    import backbones  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    handed = handover_checkpoint(work)
    assert handed is not None and handed.name.startswith('best_accuracy_top1_')
    det = build_row_config('table4', 'conv2-concat', 'det', data_root=smoke_data,
                           pretrained=handed)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(det.model)
    model.init_weights()
    state = load_checkpoint(handed)['state_dict']
    name = 'backbone.patch_embed.conv_down.0.weight'
    if name not in state:
        name = next(k for k in state if k.startswith('backbone.') and k.endswith('weight'))
    assert torch.equal(model.state_dict()[name], state[name])
    # Without a best file (nothing validated yet), the last one.
    for best_file in work.glob('best_*.pth'):
        best_file.unlink()
    assert handover_checkpoint(work).name == 'iter_10.pth'
    assert handover_checkpoint(tmp_path / 'nothing') is None


def test_a_run_whose_only_checkpoint_is_truncated_restarts_and_says_so(tmp_path):
    """What the job does before a resume (runs/executors/resume.py) when no readable checkpoint
    is left: the truncated file and the marker are kept aside, renamed, and mmengine starts
    from scratch; the sentence goes to the run's console log."""
    from runs.executors.resume import repair_resume_point
    saved = tmp_path / 'epoch_6.pth'
    torch.save({'meta': {'epoch': 6}}, saved)
    saved.write_bytes(saved.read_bytes()[:100])  # killed while saving
    (tmp_path / 'last_checkpoint').write_text(str(saved))
    assert repair_resume_point(tmp_path) == \
        'last checkpoint epoch_6.pth is unreadable and no older one is readable; training restarts'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_6.pth.unreadable',
                                                          'last_checkpoint.unreadable']
    assert repair_resume_point(tmp_path) is None  # nothing left to resume from: a fresh start
