"""Classification throughput of the backbones with each selective-scan backend, in one run.

    python benchmarks/bench_throughput.py [--models mambavision:T,mobilemamba:S6]
        [--device cuda|cpu] [--batch N] [--amp] [--warmup 50] [--iters 20]

The baseline is the first backend listed for the device (mamba-ssm's CUDA kernel on a GPU,
mamba-ssm's sequential reference on CPU) and every other backend is printed as a ratio to it.
Protocol as the papers' throughput numbers: eval mode, no grad, the model's own resolution,
MobileMamba with its BatchNorms fused first (the official script does), timed after warm-up
with the device synchronised. Models are built from our backbone plus the official head
(pool + Linear, or pool + BN1d + Linear), with no toolkit needed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backbones import MambaVision, MobileMamba  # noqa: E402
from backbones.mobilemamba import BNLinear  # noqa: E402
from backbones.ops import default_scan_backend  # noqa: E402
from backbones.ops.mamba_shim import has_cuda_kernels  # noqa: E402

RESOLUTION = {('mambavision', arch): 224 for arch in ('T', 'T2', 'S', 'B', 'L', 'L2')}
RESOLUTION.update({('mobilemamba', 'T2'): 192, ('mobilemamba', 'T4'): 192,
                   ('mobilemamba', 'S6'): 224, ('mobilemamba', 'B1'): 256,
                   ('mobilemamba', 'B2'): 384, ('mobilemamba', 'B4'): 512})


class Classifier(nn.Module):
    """Backbone -> global average pool -> head, as the official classifiers."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def build(family: str, arch: str) -> nn.Module:
    if family == 'mambavision':
        backbone = MambaVision(arch, out_indices=(3, ), final_norm=True)
        return Classifier(backbone, nn.Linear(backbone.dims[3], 1000))
    backbone = MobileMamba(arch)
    model = Classifier(backbone, BNLinear(backbone.embed_dims[-1], 1000)).eval()
    backbone.fuse()
    model.head = model.head.fuse()
    return model


@torch.no_grad()
def images_per_second(model: nn.Module, x: torch.Tensor, backend: str, amp: bool,
                      warmup: int, iters: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    with default_scan_backend(backend), torch.autocast(x.device.type, torch.float16,
                                                       enabled=amp):
        for _ in range(warmup):
            model(x)
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        sync()
    return iters * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', default='mambavision:T,mobilemamba:S6')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, help='default: 128 on GPU, 8 on CPU')
    parser.add_argument('--amp', action='store_true', help='float16 autocast (GPU)')
    parser.add_argument('--warmup', type=int, help='default: 50 on GPU, 2 on CPU')
    parser.add_argument('--iters', type=int, help='default: 20 on GPU, 3 on CPU')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads')
    args = parser.parse_args()
    gpu = args.device == 'cuda'
    torch.set_num_threads(args.threads)
    batch = args.batch or (128 if gpu else 8)
    warmup = args.warmup if args.warmup is not None else (50 if gpu else 2)
    iters = args.iters or (20 if gpu else 3)
    if gpu:
        backends = ['cuda', 'torch'] if has_cuda_kernels() else ['torch']
    else:
        backends = ['reference', 'torch']
    device = torch.cuda.get_device_name() if gpu else f'CPU, {args.threads} threads'
    print(f'throughput (img/s), {device}, batch {batch}, amp={args.amp}, torch '
          f'{torch.__version__}; baseline: {backends[0]} scan')
    print(f'{"model":22s} {"res":>4s} ' + ' '.join(f'{b:>12s}' for b in backends)
          + ''.join(f' {b + "/" + backends[0]:>14s}' for b in backends[1:]))
    for spec in args.models.split(','):
        family, arch = spec.split(':')
        size = RESOLUTION[(family, arch)]
        model = build(family, arch).to(args.device).eval()
        x = torch.randn(batch, 3, size, size, device=args.device)
        rates = [images_per_second(model, x, b, args.amp, warmup, iters) for b in backends]
        print(f'{family + "-" + arch:22s} {size:4d} ' + ' '.join(f'{r:12.1f}' for r in rates)
              + ''.join(f' {r / rates[0]:13.2f}x' for r in rates[1:]), flush=True)


if __name__ == '__main__':
    main()
