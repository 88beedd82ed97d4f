"""What the world-size invariance test (tests/test_world_size_invariance.py) changes inside the
training process, imported by its configs (``custom_imports``) so every rank gets it.

float64: runs at different world sizes sum the same gradients in another order (an all-reduce
of per-process means against an accumulation of micro-batch means). In float32 that is a few
ulps, but AdamW and LAMB divide by ``sqrt(v) + eps``: a gradient that cancels to near zero
changes sign with its rounding, and its update by up to one lr. In float64 the same order
differences are about 1e-16 of the summands, so a tight tolerance proves the invariance instead
of the rounding. Set at import, before the runner builds the model, so parameters, buffers, the
EMA copy and the optimizer state are float64 (but for what the model pins to float32 itself).
Images arrive as uint8 and become float64 in the data preprocessor's normalisation (its mean and
std buffers are float64 then).

``RunningStatsBatchNormHook``: every BatchNorm, the heads' included (MobileMamba's BN-Linear
head), normalises with its running statistics: batch statistics are per process by design, over
other micro-batches at each world size (SyncBN, the exact alternative, needs CUDA).
"""
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm

torch.set_default_dtype(torch.float64)


@HOOKS.register_module(force=True)
class RunningStatsBatchNormHook(Hook):
    # after the loop's model.train() at each epoch start, before every forward
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        for module in runner.model.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
