"""MESA (as in the official MambaVision training script): distillation from the run's own EMA.

Once ``epoch / epochs > start_ratio`` (``epoch`` counted from 0; ``epochs`` the official
``args.epochs``, the yaml's 310, which leaves out the 10 cooldown epochs trained after it: the
hook's ``epochs``, by default the run's total), the
training loss gains ``weight * 50 * KL(softmax(ema / 3) || softmax(y / 3))`` with ``batchmean``
reduction and no T^2 factor, where ``y`` are the model's logits and ``ema`` the EMA model's logits
on the same augmented (mixed) batch, computed without gradient with the EMA model in eval mode
(timm's ModelEmaV2 keeps it in eval mode).

Two parts: ``MesaImageClassifier`` owns the loss; ``MesaHook`` hands it the EMA model of mmengine's
``EMAHook`` and the training progress before every iteration. Without the hook (e.g. a smoke run
that drops the EMA) the classifier trains as a plain ``ImageClassifier``.

Imports mmpretrain, so configs load it via ``custom_imports`` ('engine.mesa').
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, MODELS
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.models import ImageClassifier

__all__ = ['MesaImageClassifier', 'MesaHook', 'mesa_loss']

# The official script's constants: temperature 3 and a fixed factor 50 on the KL term.
MESA_TEMPERATURE = 3.0
MESA_SCALE = 50.0


def mesa_loss(logits: torch.Tensor, ema_logits: torch.Tensor,
              temperature: float = MESA_TEMPERATURE, scale: float = MESA_SCALE) -> torch.Tensor:
    """``scale * KL(softmax(ema/T) || softmax(logits/T))``, batch mean, no T^2 factor."""
    log_p = F.log_softmax(logits.float() / temperature, dim=1)
    q = F.softmax(ema_logits.float() / temperature, dim=1)
    return scale * F.kl_div(log_p, q, reduction='batchmean')


class _EMARef:
    """The EMA model, held outside the module tree (never a parameter, never in a checkpoint)."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __deepcopy__(self, memo) -> '_EMARef':
        return self


@MODELS.register_module()
class MesaImageClassifier(ImageClassifier):
    """``ImageClassifier`` whose training loss adds MESA once training is far enough along.

    Args:
        mesa: ``weight`` (the official ``mesa``), ``start_ratio`` (``mesa_start_ratio``),
            ``temperature`` and ``scale`` (official 3 and 50).
    """

    def __init__(self, *args, mesa: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = dict(weight=0.0, start_ratio=0.25, temperature=MESA_TEMPERATURE, scale=MESA_SCALE)
        unknown = set(mesa or {}) - set(cfg)
        if unknown:
            raise ValueError(f'mesa keys {sorted(unknown)} are not valid; valid keys: '
                             f'{sorted(cfg)}')
        cfg.update(mesa or {})
        self.mesa_cfg = cfg
        self._ema: Optional[_EMARef] = None
        self.mesa_progress = 0.0  # epoch / epochs, set by MesaHook

    def set_mesa_state(self, ema_model: Optional[torch.nn.Module], progress: float) -> None:
        self._ema = None if ema_model is None else _EMARef(ema_model)
        self.mesa_progress = progress

    @property
    def mesa_active(self) -> bool:
        return (self._ema is not None and self.mesa_cfg['weight'] > 0
                and self.mesa_progress > self.mesa_cfg['start_ratio'])

    @torch.no_grad()
    def ema_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        ema = self._ema.module
        was_training = ema.training
        ema.eval()
        try:
            return ema.head(ema.extract_feat(inputs))
        finally:
            ema.train(was_training)

    def loss(self, inputs: torch.Tensor, data_samples: Sequence) -> dict:
        feats = self.extract_feat(inputs)
        logits = self.head(feats)  # one head call: a BN head sees each batch once
        losses = self.head._get_loss(logits, data_samples)
        if self.mesa_active:
            kd = mesa_loss(logits, self.ema_logits(inputs), self.mesa_cfg['temperature'],
                           self.mesa_cfg['scale'])
            losses['loss_mesa'] = self.mesa_cfg['weight'] * kd
        return losses


@HOOKS.register_module()
class MesaHook(Hook):
    """Gives ``MesaImageClassifier`` the EMA model of the run's ``EMAHook`` and the progress
    ``epoch / epochs`` (``iter / max_iters`` for iteration-based loops) before each step.

    Args:
        epochs: the official ``args.epochs`` the progress is counted against (MambaVision: the
            yaml's 310, while 320 are trained; a smoke run scales it to its few epochs, hence
            not always whole); None: the loop's ``max_epochs``.
    """

    priority = 'NORMAL'  # after EMAHook (ABOVE_NORMAL) has built its EMA model

    def __init__(self, epochs: Optional[float] = None):
        if epochs is not None and (isinstance(epochs, bool) or
                                   not isinstance(epochs, (int, float)) or epochs <= 0):
            raise ValueError(f'MesaHook: epochs must be a positive number, got {epochs!r}')
        self.epochs = epochs
        self._ema_hook: Optional[EMAHook] = None

    @staticmethod
    def _classifier(runner) -> MesaImageClassifier:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, MesaImageClassifier):
            raise TypeError(f'MesaHook needs model type MesaImageClassifier, got '
                            f'{type(model).__name__}')
        return model

    def before_train(self, runner) -> None:
        hooks = [h for h in runner.hooks if isinstance(h, EMAHook)]
        if not hooks:
            raise RuntimeError('MesaHook needs an EMAHook in custom_hooks: MESA distils from '
                               'the EMA model')
        self._ema_hook = hooks[0]
        self._classifier(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # An iteration-based loop also has a max_epochs (1): ask the loop's kind, not the field.
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            progress = runner.iter / runner.max_iters
        else:
            progress = self.progress(runner.epoch, runner.train_loop.max_epochs)
        self._classifier(runner).set_mesa_state(self._ema_hook.ema_model.module, progress)

    def progress(self, epoch: int, max_epochs: int) -> float:
        """The official ``epoch / args.epochs`` of an epoch-based run (``epoch`` from 0)."""
        return epoch / (self.epochs or max_epochs)

    def after_train(self, runner) -> None:
        self._classifier(runner).set_mesa_state(None, 0.0)
