"""Loading never executes code (issue 21): every loader of the suite (convert, eval, test.py,
train.py's Pretrained init, load_from and resume, the distillation teacher) refuses a checkpoint
whose unpickling would run a command, in one line naming the global and the file, exit 2, and
nothing runs; the official MambaVision (timm) and MobileMamba layouts and mmengine's own
checkpoints load without --trust-checkpoint, and the allowlist holds nothing they do not need."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from backbones.checkpoint_io import (ALLOWED_GLOBALS, CheckpointError, UnsafeCheckpointError,
                                     load_checkpoint)
from toy_training import PYTHONPATH, toy_config

REPO = Path(__file__).resolve().parent.parent


class _RunsCode:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def evil(tmp_path):
    """(a checkpoint that would `touch` a file when unpickled, that file)."""
    marker = tmp_path / 'code-ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'backbone.w': torch.ones(2)}, 'meta': {},
                'payload': _RunsCode(f'touch {marker}')}, path)
    return path, marker


def _refusal(capsys, path: Path) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if 'refused' in line]
    assert len(lines) == 1, err
    assert str(path) in lines[0] and 'system' in lines[0], lines[0]
    return lines[0]


def test_safe_loader_refuses_and_names_the_global(evil):
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(path)
    assert 'posix.system' in str(err.value) and str(path) in str(err.value)
    assert '\n' not in str(err.value)
    assert not marker.exists()
    # A file one trusts fully: the code runs, as it would with plain torch.load.
    load_checkpoint(path, trust=True)
    assert marker.exists()


class _Getattr:
    def __reduce__(self):
        return getattr, (argparse.Namespace, '__init__')


def test_getattr_is_allowed_for_history_buffers_only(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {}, 'x': _Getattr()}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(path)
    assert 'getattr(Namespace' in str(err.value)


def test_garbage_is_not_a_checkpoint_and_not_a_refusal(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('not a checkpoint\n')
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert not isinstance(err.value, UnsafeCheckpointError)
    assert 'not a PyTorch checkpoint' in str(err.value)


def test_convert_refuses(evil, capsys, tmp_path):
    from tools.convert_checkpoint import main
    path, marker = evil
    with pytest.raises(SystemExit) as code:
        main(['mambavision', str(path), str(tmp_path / 'out.pth')])
    assert code.value.code == 2
    _refusal(capsys, path)
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()


def test_eval_refuses(evil, capsys, tmp_path):
    from tools.eval_checkpoint import main
    path, marker = evil
    assert main(['table4', '--rows', 'conv2-concat', '--tasks', 'cls', '--checkpoint',
                 str(path), '--work-dir', str(tmp_path / 'work')]) == 2
    _refusal(capsys, path)
    assert not marker.exists()


def test_test_py_refuses(evil, capsys, tmp_path):
    from tools.test import main
    path, marker = evil
    config = toy_config(tmp_path / 'toy.py')
    with pytest.raises(SystemExit) as code:
        main([str(config), '--work-dir', str(tmp_path / 'work'), '--weights', str(path)])
    assert code.value.code == 2
    _refusal(capsys, path)
    assert not marker.exists()


@pytest.mark.parametrize('how', ['pretrained', 'load_from', 'resume', 'teacher'])
def test_train_refuses(how, evil, capsys, tmp_path, restore_signals):
    """Every load of a training: Pretrained init and load_from (mmengine's CheckpointLoader),
    resume (the work dir's last_checkpoint), the distillation teacher (built with the model)."""
    from tools.train import main
    path, marker = evil
    work = tmp_path / 'work'
    work.mkdir()
    config = toy_config(tmp_path / 'toy.py')
    options = [f'experiment_name=refuse-{how}']
    extra = []
    if how == 'pretrained':
        options.append(f'model.init_cfg.type=Pretrained')
        options.append(f'model.init_cfg.checkpoint={path}')
    elif how == 'load_from':
        options.append(f'load_from={path}')
    elif how == 'resume':
        (work / 'last_checkpoint').write_text(str(path))
        extra = ['--resume']
    else:
        config.write_text(config.read_text() + f'''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['toy_training', 'engine.distill'],
                      allow_failed_imports=False)
model = dict(type='DistillImageClassifier',
             backbone=dict(type='ResNet', depth=18),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=4, in_channels=512),
             teacher=dict(type='ImageClassifier',
                          backbone=dict(type='ResNet', depth=18),
                          checkpoint='{path}'))
''')
    with pytest.raises(SystemExit) as code:
        main([str(config), '--work-dir', str(work), *extra, '--cfg-options', *options])
    assert code.value.code == 2
    _refusal(capsys, path)
    assert not marker.exists()


# --- what the official and mmengine checkpoints hold, and that they load ---------------------

def _timm_args() -> argparse.Namespace:
    """The kinds of values the official MambaVision train.py (timm's) keeps in ``args``: its
    options (str, int, float, bool, None, lists) and what it sets later (a torch dtype)."""
    return argparse.Namespace(
        model='mamba_vision_T', input_size=None, mean=None, opt_betas=[0.9, 0.999],
        decay_milestones=[30, 60], scale=[0.08, 1.0], ratio=[3. / 4., 4. / 3.], lr=5e-4,
        mesa=0.5, mesa_start_ratio=0.25, amp=True, model_ema=True, device='cuda:0',
        world_size=1, rank=0, dtype=torch.float16, model_kwargs={}, experiment='tiny')


def _timm_checkpoint(tmp_path) -> Path:
    """A checkpoint written by timm's own CheckpointSaver, as the official MambaVision
    training saves its files (model, EMA, optimizer, AMP scaler, args, metric)."""
    from timm.utils import CheckpointSaver, ModelEmaV2, NativeScaler
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    saver = CheckpointSaver(model=model, optimizer=optimizer, args=_timm_args(),
                            model_ema=ModelEmaV2(model), amp_scaler=NativeScaler(),
                            checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path),
                            max_history=1)
    saver.save_checkpoint(epoch=0, metric=80.125)
    return next(tmp_path.glob('checkpoint-*.pth.tar'))


def _mobilemamba_checkpoint(tmp_path) -> Path:
    """The official MobileMamba trainer's layout (trainer/_base_trainer.py save_checkpoint):
    net, net_E, optimizer, timm scheduler, scaler, counters and the top-k record."""
    from timm.scheduler import CosineLRScheduler
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = CosineLRScheduler(optimizer, t_initial=300, warmup_t=5, warmup_lr_init=1e-6)
    path = tmp_path / 'latest_ckpt.pth'
    torch.save({'net': model.state_dict(), 'net_E': model.state_dict(),
                'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
                'scaler': torch.amp.GradScaler('cpu').state_dict(), 'iter': 1251, 'epoch': 1,
                'topk_recorder': {'net_top1': [61.25], 'net_top5': [83.5],
                                  'net_E_top1': [60.0], 'net_E_top5': [82.75]},
                'total_time': 1234.5, 'nan_or_inf_cnt': 0}, path)
    return path


def test_official_layouts_load_without_trust(tmp_path):
    timm_file = _timm_checkpoint(tmp_path)
    ckpt = load_checkpoint(timm_file)
    assert isinstance(ckpt['args'], argparse.Namespace) and ckpt['args'].dtype == torch.float16
    assert 'state_dict_ema' in ckpt and ckpt['metric'] == 80.125
    ckpt = load_checkpoint(_mobilemamba_checkpoint(tmp_path))
    assert set(ckpt) >= {'net', 'net_E', 'scheduler', 'topk_recorder'}


@pytest.mark.slow
def test_allowlist_is_what_the_real_checkpoints_need(tmp_path):
    """Every allowlisted global occurs in a real checkpoint of one of the three kinds (an
    mmengine one with EMA, written by a real training of the toy), and nothing else is needed."""
    import subprocess
    import sys
    from torch.serialization import get_unsafe_globals_in_checkpoint
    config = toy_config(tmp_path / 'toy.py', length=1)
    config.write_text(config.read_text() + "custom_hooks = [dict(type='EMAHook')]\n")
    work = tmp_path / 'work'
    subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'), str(config),
                    '--work-dir', str(work)], check=True, cwd=REPO,
                   env=dict(os.environ, PYTHONPATH=PYTHONPATH), capture_output=True)
    mmengine_file = Path((work / 'last_checkpoint').read_text().strip())
    files = [_timm_checkpoint(tmp_path), _mobilemamba_checkpoint(tmp_path), mmengine_file]
    needed = set()
    for path in files:
        needed.update(get_unsafe_globals_in_checkpoint(str(path)))
        load_checkpoint(path)  # and each loads
    allowed = {name for name, _ in ALLOWED_GLOBALS}
    assert needed <= allowed, needed - allowed
    assert allowed <= needed, f'allowlisted but never needed: {allowed - needed}'
