"""``TimmCosineLR``: the lr schedule both official ImageNet trainers get from timm.

timm's ``CosineLRScheduler`` with ``warmup_prefix=False``: a linear warm-up from ``warmup_lr`` to the base lr over the first
``warmup`` steps, and a cosine from the base lr down to ``eta_min`` whose phase runs over the
whole cycle from step 0, warm-up included (at the end of the warm-up the cosine has already
decayed by ``warmup / cycle`` of its phase, so the lr drops there), then ``eta_min`` to the end of
training (MambaVision's 10 cooldown epochs). Closed form at every step, so the value never drifts.

It counts optimizer steps, not iterations: mmengine steps a scheduler once per iteration (per
micro-batch under gradient accumulation), and with ``accumulation`` = the optimizer wrapper's
``accumulative_counts`` the step index is ``iteration // accumulation``, the lr the optimizer
update at the end of each group uses is the official one for that update. ``offset`` is when the
official trainer sets the lr: MambaVision's train.py calls ``step_update(num_updates + 1)`` before
update ``num_updates`` (offset 1), MobileMamba's trainer ``step(iter)`` before iteration ``iter``
(offset 0).
"""
from __future__ import annotations

import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS

__all__ = ['TimmCosineLR', 'TimmCosineParamScheduler', 'timm_cosine_factor']


def timm_cosine_factor(t: float, cycle: float, warmup: float, warmup_factor: float,
                       min_factor: float) -> float:
    """The lr at step ``t`` as a fraction of the base lr (timm's cosine, warm-up not a prefix)."""
    if t < warmup:
        return warmup_factor + t * (1.0 - warmup_factor) / warmup
    if t >= cycle:
        return min_factor
    return min_factor + 0.5 * (1.0 - min_factor) * (1.0 + math.cos(math.pi * t / cycle))


class TimmCosineParamScheduler(_ParamScheduler):
    """See the module docstring. Lengths in steps (epochs when ``by_epoch``).

    Args:
        cycle: the cosine's whole phase, warm-up included (timm's ``t_initial``).
        warmup: the warm-up (timm's ``warmup_t``); 0 for none.
        warmup_factor: the warm-up's first value / the base value (``warmup_lr_init / lr``).
        eta_min_factor: the final value / the base value (``lr_min / lr``).
        offset: the official step index of the first update (0 or 1, see above).
        accumulation: iterations per optimizer step (the optimizer wrapper's accumulative_counts).
    """

    def __init__(self, optimizer, param_name: str, cycle: float, warmup: float = 0,
                 warmup_factor: float = 0.0, eta_min_factor: float = 0.0, offset: int = 0,
                 accumulation: int = 1, begin: int = 0, end: int = INF, last_step: int = -1,
                 by_epoch: bool = True, verbose: bool = False):
        if cycle <= 0 or warmup < 0 or warmup > cycle:
            raise ValueError(f'TimmCosine: need 0 <= warmup ({warmup}) <= cycle ({cycle}), '
                             f'cycle > 0')
        if not isinstance(accumulation, int) or accumulation < 1:
            raise ValueError(f'TimmCosine: accumulation must be a whole number >= 1, got '
                             f'{accumulation!r}')
        wrapper_counts = getattr(optimizer, '_accumulative_counts', accumulation)
        if wrapper_counts != accumulation:
            raise ValueError(f'TimmCosine: accumulation={accumulation} but the optimizer '
                             f'wrapper accumulates {wrapper_counts} iterations per step')
        # (a shortened smoke schedule may have fractional lengths: fine without accumulation)
        if not by_epoch and accumulation > 1 and (cycle % accumulation or warmup % accumulation):
            raise ValueError(f'TimmCosine: cycle ({cycle}) and warmup ({warmup}) iterations must '
                             f'be whole optimizer steps of {accumulation} iterations')
        self.cycle, self.warmup = cycle, warmup
        self.warmup_factor, self.eta_min_factor = warmup_factor, eta_min_factor
        self.offset, self.accumulation = offset, accumulation
        super().__init__(optimizer, param_name=param_name, begin=begin, end=end,
                         last_step=last_step, by_epoch=by_epoch, verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls, *args, cycle, warmup=0, begin=0, end=INF, by_epoch=True,
                              epoch_length=None, **kwargs):
        """The iteration-based scheduler of an epoch-based config (``convert_to_iter_based``)."""
        if not by_epoch or not epoch_length or epoch_length <= 0:
            raise ValueError('TimmCosine: convert_to_iter_based needs by_epoch=True and the '
                             f'epoch length, got by_epoch={by_epoch}, {epoch_length}')
        return cls(*args, cycle=cycle * epoch_length, warmup=warmup * epoch_length,
                   begin=begin * epoch_length,
                   end=end if end == INF else end * epoch_length, by_epoch=False, **kwargs)

    def official_step(self) -> float:
        """The official trainer's step index for the current iteration."""
        return (self.last_step // self.accumulation) + self.offset

    def _get_value(self):
        steps = self.accumulation
        factor = timm_cosine_factor(self.official_step(), self.cycle / steps,
                                    self.warmup / steps, self.warmup_factor,
                                    self.eta_min_factor)
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class TimmCosineLR(LRSchedulerMixin, TimmCosineParamScheduler):
    """``TimmCosineParamScheduler`` on the lr."""
