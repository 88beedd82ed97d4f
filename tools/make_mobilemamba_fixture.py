"""Build the official-MobileMamba fixture of tests/test_eval.py from an official checkout.

    ./run_all.sh python tools/make_mobilemamba_fixture.py CHECKOUT [--out FILE] [--commit SHA]

CHECKOUT: a copy of https://github.com/lewandofskee/MobileMamba (its ``model/``, ``util/``,
``trainer/``, ``optim/`` and ``configs/`` folders are what is imported). The script builds a tiny
instance of the official ``MobileMamba`` class (the official S6 layout at smoke widths), gives
every weight a random value and every BatchNorm non-trivial statistics, and saves its logits on
a fixed input together with its state dict, in the official names (under "net").

It also writes the checkpoint file the official trainer would write for that model, with the
trainer's own code: ``BaseTrainer._update_ema`` makes the EMA model ("net_E", decay 0.9998 as in
the S6 config) and ``BaseTrainer.save_checkpoint`` saves both with the optimizer, the scheduler
(the official ``get_scheduler`` on the S6 config), the AMP scaler and the trainer's counters, as
``ckpt_E.pth`` (the best-EMA copy), here ``mobilemamba_official_tiny_ckpt_E.pth``. The EMA
model's logits go into the first file as ``logits_E``. The tests convert both (the state dict, and
the trainer's file through ``backbones.convert``) and compare our model's logits with the
official ones.

Batch 1 only: on CPU the official SS2D merges its two scan directions with a broadcast that
mixes the samples of a batch (../shared/reference/mobilemamba.md); at batch 1 it is exact.
fvcore, which the official module imports only to count FLOPs, is replaced by a stub when it is
not installed. So are two imports of the official trainer module that the two methods above do not
use: tensorboardX (its logger) and the ``optim`` package's ``__init__`` (it imports optimizers of
timm 0.9 that later timm lacks; ``optim/scheduler.py`` itself is the official file).
"""
from __future__ import annotations

import argparse
import copy
import importlib
import shutil
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run by path
    sys.path.insert(0, str(REPO))
from runs.provenance import git_commit  # noqa: E402

DEFAULT_OUT = REPO / 'tests' / 'fixtures' / 'mobilemamba_official_tiny.pt'
DEFAULT_CHECKPOINT_OUT = REPO / 'tests' / 'fixtures' / 'mobilemamba_official_tiny_ckpt_E.pth'
# Keyword arguments of the official MobileMamba class: S6's ratios and kernels at tiny
# widths (48, 32, 32): global/local/identity splits 32/9/7, 16/6/10 and 16/9/7 channels,
# every part present, in under 1 MB.
OFFICIAL_KWARGS = dict(embed_dim=[48, 32, 32], depth=[1, 1, 1], global_ratio=[0.8, 0.7, 0.6],
                       local_ratio=[0.2, 0.2, 0.3], kernels=[7, 5, 3], drop_path=0.,
                       ssm_ratio=2, num_classes=10)
# Odd and non-square: stage maps 5x6, 3x3 and 2x2 exercise the wavelet's padding and the scan
# order.
INPUT_SHAPE = (1, 3, 80, 96)
SEED = 0


def import_official(checkout: Path):
    """The official ``model.mobilemamba.mobilemamba`` module, imported from ``checkout``."""
    if not (checkout / 'model' / 'mobilemamba' / 'mobilemamba.py').is_file():
        raise SystemExit(f'{checkout}: not a MobileMamba checkout (no '
                         f'model/mobilemamba/mobilemamba.py)')
    sys.path.insert(0, str(checkout))
    try:
        importlib.import_module('fvcore.nn')
    except ImportError:
        stub = types.ModuleType('fvcore.nn')
        for name in ('FlopCountAnalysis', 'flop_count_str', 'flop_count_table', 'flop_count',
                     'parameter_count'):
            setattr(stub, name, None)
        sys.modules['fvcore'] = types.ModuleType('fvcore')
        sys.modules['fvcore.nn'] = stub
    return importlib.import_module('model.mobilemamba.mobilemamba')


def import_official_trainer(checkout: Path):
    """The official ``trainer._base_trainer`` module (``BaseTrainer``), imported from
    ``checkout`` (after :func:`import_official`) with stand-ins for what it imports but its
    ``_update_ema`` and ``save_checkpoint`` never use."""
    try:
        importlib.import_module('tensorboardX')
    except ImportError:  # util.util's logger only
        stub = types.ModuleType('tensorboardX')
        stub.SummaryWriter = None
        sys.modules['tensorboardX'] = stub
    try:
        importlib.import_module('optim')
    except ImportError:  # timm 0.9's Nadam & co.; get_optim is not called here
        sys.modules.pop('optim', None)
        package = types.ModuleType('optim')
        package.__path__ = [str(checkout / 'optim')]  # optim.scheduler: the official file
        package.get_optim = None
        sys.modules['optim'] = package
    return importlib.import_module('trainer._base_trainer')


def official_trainer_checkpoint(checkout: Path, model: nn.Module, ema_model: nn.Module,
                                out: Path) -> Path:
    """Make ``ema_model`` the EMA of ``model`` and save both as the official trainer does, by
    running ``BaseTrainer._update_ema`` and ``BaseTrainer.save_checkpoint`` on a stand-in trainer
    that holds what those methods read; ``out`` gets the best-EMA copy, ``ckpt_E.pth``."""
    trainer_module = import_official_trainer(checkout)
    from optim.scheduler import get_scheduler
    from util.net import get_loss_scaler  # the official module
    s6 = importlib.import_module('configs.mobilemamba.mobilemamba_s6')  # the official config
    s6.data.train_size = 1251  # iterations per epoch at the official batch of 1024
    # get_optim's AdamW (its parameter groups split by weight decay are one group here).
    optimizer = torch.optim.AdamW(model.parameters(), lr=s6.optim.lr, betas=(0.9, 0.999),
                                  eps=1e-8, weight_decay=s6.weight_decay)
    scheduler = get_scheduler(s6, optimizer)
    with tempfile.TemporaryDirectory() as logdir:
        epoch = 299  # S6's best EMA epoch (its log): not a multiple of save_per_epoch (15)
        stand_in = types.SimpleNamespace(
            master=True, net=model, net_E=ema_model, ema=s6.trainer.ema, optim=optimizer,
            scheduler=scheduler, loss_scaler=get_loss_scaler(s6.trainer.scaler),
            iter=epoch * s6.data.train_size, epoch=epoch, nan_or_inf_cnt=0,
            topk_recorder=dict(net_top1=[77.9], net_top5=[93.8], net_E_top1=[78.0],
                               net_E_top5=[93.9]),
            cfg=types.SimpleNamespace(total_time=36060.0, logdir=logdir,
                                      trainer=types.SimpleNamespace(
                                          save_per_epoch=s6.trainer.save_per_epoch)),
            is_best=False, is_best_ema=True)
        trainer_module.BaseTrainer._update_ema(stand_in)
        trainer_module.BaseTrainer.save_checkpoint(stand_in)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(logdir) / 'ckpt_E.pth', out)
    return out


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Every trainable weight away from its init (zero-initialised BNs included), BN stats set."""
    for name, p in model.named_parameters():
        if not p.requires_grad:  # the fixed Haar filter banks
            continue
        p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.copy_(torch.randn(n, generator=generator) * 0.3 + 1.0)
            m.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)



def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkout', type=Path, help='an official MobileMamba checkout')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    parser.add_argument('--checkpoint-out', type=Path, default=DEFAULT_CHECKPOINT_OUT,
                        help='where the official trainer\'s checkpoint file goes')
    parser.add_argument('--commit', help='the checkout\'s commit (default: asked from git)')
    args = parser.parse_args(argv)
    official = import_official(args.checkout.resolve())
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = official.MobileMamba(**OFFICIAL_KWARGS)
    randomize(model, generator)
    model.eval()
    x = torch.randn(INPUT_SHAPE, generator=generator)
    with torch.no_grad():
        logits = model(x)
    state_dict = {k: v.clone() for k, v in model.state_dict().items()}
    # The EMA model: other weights (an earlier point of the training), then the official EMA
    # step towards the model's, as the trainer saves it beside the model's.
    ema_model = copy.deepcopy(model)
    randomize(ema_model, generator)
    official_trainer_checkpoint(args.checkout.resolve(), model, ema_model, args.checkpoint_out)
    ema_model.eval()
    with torch.no_grad():
        logits_ema = ema_model(x)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(net=state_dict, input=x, logits=logits, logits_E=logits_ema,
                    kwargs=OFFICIAL_KWARGS,
                    source=dict(repo='lewandofskee/MobileMamba',
                                commit=(args.commit or git_commit(args.checkout, short=False)
                                        or 'unknown'),
                                cls='model.mobilemamba.mobilemamba.MobileMamba',
                                device='cpu', torch=str(torch.__version__))),
               args.out)
    size = args.out.stat().st_size
    print(f'wrote {args.out} ({size / 1024:.0f} KiB, {len(state_dict)} tensors, logits '
          f'{tuple(logits.shape)})')
    print(f'wrote {args.checkpoint_out} ({args.checkpoint_out.stat().st_size / 1024:.0f} KiB, '
          'the official trainer\'s ckpt_E.pth)')
    return args.out


if __name__ == '__main__':
    main()
