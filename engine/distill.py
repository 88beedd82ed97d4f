"""MobileMamba's † training strategy: soft knowledge distillation through the classifier head.

The official runs (training logs of the released † models) add ``5.0 * KL(teacher || student)``
at temperature 1 to the mixup/label-smoothing cross entropy, with a TResNet-L v2 teacher that
sees the same (mixed) batch resized (bicubic) to 224 px and normalised with mean 0, std 1 (i.e.
pixels in [0, 1]), while the student sees ImageNet-normalised pixels. One head: the student's logits serve
both losses (no DeiT distillation token).

Imports mmpretrain, so configs load it via ``custom_imports``; registered in the root ``MODELS``.
"""
from __future__ import annotations

import copy
import os
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

from backbones.checkpoint_io import load_checkpoint

__all__ = ['DistillImageClassifier']

_TEACHER_HELP = ('The teacher weights are not part of this project: download the TResNet-L '
                 'ImageNet checkpoint yourself and pass its path, e.g. '
                 '--cfg-options model.teacher.checkpoint=/path/to/tresnet_l.pth')


class _Frozen:
    """Holds the teacher outside the module tree; deep copies (EMA) share it, not clone it."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __deepcopy__(self, memo) -> '_Frozen':
        return self


@MODELS.register_module()
class DistillImageClassifier(ImageClassifier):
    """``ImageClassifier`` whose training loss adds soft distillation from a frozen teacher.

    Args:
        teacher: config of the teacher model (built with mmpretrain's registry, e.g.
            ``dict(type='TimmClassifier', model_name='tresnet_v2_l')``) plus ``checkpoint``, the
            path of its weights (required: a missing or absent file raises at construction).
        distill_cfg: ``tau`` (temperature), ``loss_weight``, ``teacher_input_size`` (int, or None
            for the student's own size), ``teacher_mean`` / ``teacher_std`` (0-255 pixel scale;
            the student's are read from its data preprocessor).

    The teacher is kept outside the module tree: it is never optimised, averaged by EMA, wrapped
    by DDP or written into checkpoints. Evaluating a trained † model needs no teacher: use the
    non-distilled config of the same variant.
    """

    def __init__(self, *args, teacher: dict, distill_cfg: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = dict(tau=1.0, loss_weight=5.0, teacher_input_size=224,
                   teacher_mean=(0.0, 0.0, 0.0), teacher_std=(255.0, 255.0, 255.0))
        unknown = set(distill_cfg or {}) - set(cfg)
        if unknown:
            raise ValueError(f'distill_cfg keys {sorted(unknown)} are not valid; valid keys: '
                             f'{sorted(cfg)}')
        cfg.update(distill_cfg or {})
        self.distill_cfg = cfg
        self._teacher = _Frozen(self._build_teacher(teacher))

    @staticmethod
    def _build_teacher(teacher: dict) -> torch.nn.Module:
        if not isinstance(teacher, dict) or 'type' not in teacher:
            raise ValueError(f'teacher={teacher!r}: expected dict(type=..., checkpoint=...)')
        teacher = copy.deepcopy(teacher)
        ckpt = teacher.pop('checkpoint', None)
        if not ckpt:
            raise ValueError(f'teacher checkpoint missing (teacher.checkpoint={ckpt!r}). '
                             + _TEACHER_HELP)
        if not os.path.isfile(ckpt):
            raise FileNotFoundError(f'teacher checkpoint {ckpt!r} does not exist. '
                                    + _TEACHER_HELP)
        model = PRETRAIN_MODELS.build(teacher)
        # Downloaded weights: read without running code from them (backbones.checkpoint_io).
        state = load_checkpoint(ckpt)
        for key in ('state_dict', 'model'):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
        state = {k[len('module.'):] if k.startswith('module.') else k: v
                 for k, v in state.items()}
        # strict: a teacher that silently keeps random weights would poison the whole run.
        model.load_state_dict(state, strict=True)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    @property
    def teacher(self) -> torch.nn.Module:
        return self._teacher.module

    @torch.no_grad()
    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher logits for a batch normalised by the student's data preprocessor."""
        teacher = self.teacher
        p = next(teacher.parameters())
        if p.device != inputs.device:
            teacher.to(inputs.device)
        cfg = self.distill_cfg
        x = inputs.float()
        pre = self.data_preprocessor
        if getattr(pre, '_enable_normalize', False):
            x = x * pre.std + pre.mean  # back to 0-255 pixels
        size = cfg['teacher_input_size']
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            # As the official CLSKDLoss: torchvision's tensor resize, bicubic, which in the
            # official torchvision 0.16 does not antialias tensors.
            x = F.interpolate(x, size=(size, size), mode='bicubic', align_corners=False,
                              antialias=False)
        mean = x.new_tensor(cfg['teacher_mean']).view(1, -1, 1, 1)
        std = x.new_tensor(cfg['teacher_std']).view(1, -1, 1, 1)
        x = (x - mean) / std
        if isinstance(teacher, BaseModel):
            return teacher(x, mode='tensor')
        return teacher(x)

    def loss(self, inputs: torch.Tensor, data_samples: Sequence) -> dict:
        feats = self.extract_feat(inputs)
        # One head call: the head's BatchNorm must see each batch once.
        logits = self.head(feats)
        losses = self.head._get_loss(logits, data_samples)
        tau = self.distill_cfg['tau']
        t_logits = self.teacher_logits(inputs)
        kd = F.kl_div(F.log_softmax(logits.float() / tau, dim=1),
                      F.log_softmax(t_logits.float() / tau, dim=1),
                      reduction='batchmean', log_target=True) * tau * tau
        losses['loss_kd'] = self.distill_cfg['loss_weight'] * kd
        return losses
