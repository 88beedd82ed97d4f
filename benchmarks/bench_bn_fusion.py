"""CPU forward time of MobileMamba with and without BN fusion, measured in the same run.

    python benchmarks/bench_bn_fusion.py [--arch S6] [--size 224] [--batch 8] [--iters 5]
                                         [--threads 2]

Builds the classifier (backbone + global pool + BN1d + Linear, 1000 classes) with random weights
and non-trivial BN statistics, times eval-mode forwards of the unfused model, folds every
Conv+BN and BN+Linear (``MobileMamba.fuse()``, ``BNLinear.fuse()``), checks the outputs agree,
and times the fused model. The two are timed alternately, round by round, so that load changes
on a shared machine hit both alike; the median and the best round are reported (on a busy
machine the best round is the steadier estimate).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backbones.mobilemamba import BNLinear, MobileMamba  # noqa: E402


class Classifier(nn.Module):
    def __init__(self, arch: str, num_classes: int = 1000):
        super().__init__()
        self.backbone = MobileMamba(arch)
        self.head = BNLinear(self.backbone.embed_dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@torch.no_grad()
def time_once(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='S6')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--iters', type=int, default=5, help='timed rounds (each model once)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    unfused = Classifier(args.arch)
    randomize_bn(unfused)
    unfused.eval()
    fused = Classifier(args.arch)
    fused.load_state_dict(unfused.state_dict())
    fused.eval()
    fused.backbone.fuse()
    fused.head = fused.head.fuse()
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in unfused.modules())
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())

    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        diff = (unfused(x) - fused(x)).abs().max().item()
    for _ in range(args.warmup):
        time_once(unfused, x), time_once(fused, x)
    t_unfused, t_fused = [], []
    for _ in range(args.iters):
        t_unfused.append(time_once(unfused, x))
        t_fused.append(time_once(fused, x))
    mu, mf = statistics.median(t_unfused), statistics.median(t_fused)
    print(f'MobileMamba-{args.arch} {args.size}px batch {args.batch}, CPU, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    print(f'BN layers: {n_bn} unfused, {left} fused; max |logit diff| {diff:.2e}')
    print(f'unfused: {mu * 1e3:8.1f} ms/batch (median of {args.iters}; '
          f'min {min(t_unfused) * 1e3:.1f})')
    print(f'fused:   {mf * 1e3:8.1f} ms/batch (median of {args.iters}; '
          f'min {min(t_fused) * 1e3:.1f})')
    print(f'speed-up (unfused / fused): {mu / mf:.3f}x median, '
          f'{min(t_unfused) / min(t_fused):.3f}x best-of-{args.iters}')
    return dict(unfused=mu, fused=mf, ratio=mu / mf, unfused_min=min(t_unfused),
                fused_min=min(t_fused), ratio_min=min(t_unfused) / min(t_fused),
                max_abs_diff=diff)


if __name__ == '__main__':
    main()
