"""Check our selective scan against mamba-ssm's CUDA kernel on the backbones' shapes.

    python benchmarks/gpu_check_selective_scan.py [--tol 1e-4] [--repeats 5] [--threads N]

On the same float32 inputs it runs: ours on CPU, ours on CUDA tensors (backend='torch') and
mamba-ssm's kernel (backend='cuda'), then reports for each pair the max relative difference
(max|a - b| / max|b| per tensor) of the output and of every input's gradient, and the timings.
The kernel is the baseline where it is built, else ours on CPU. Exits 1 if any difference
exceeds --tol; where CUDA or the kernel is missing it says what it skipped and checks the rest.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backbones.ops import selective_scan  # noqa: E402
from backbones.ops.mamba_shim import has_cuda_kernels  # noqa: E402


class Case(NamedTuple):
    name: str
    batch: int
    dim: int
    seqlen: int
    d_state: int
    groups: Optional[int] = None
    with_z: bool = False


CASES = [
    Case('MambaVision-T stage 3', 32, 160, 196, 8),
    Case('MambaVision-T stage 4', 32, 320, 49, 8),
    Case('MobileMamba-S6 stage 1', 8, 640, 196, 1, groups=2),
    Case('long sequence', 2, 192, 3136, 16),
    Case('gated, grouped (z, G=4)', 4, 64, 300, 4, groups=4, with_z=True),
]


def make_inputs(case: Case, seed: int = 0) -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    b, d, length, n = case.batch, case.dim, case.seqlen, case.d_state
    bc = (b, n, length) if case.groups is None else (b, case.groups, n, length)

    def randn(*size):
        return torch.randn(*size, generator=gen)

    inputs = dict(u=randn(b, d, length), delta=randn(b, d, length) - 2,
                  A=-torch.exp(0.5 * randn(d, n)), B=randn(*bc), C=randn(*bc), D=randn(d),
                  z=randn(b, d, length) if case.with_z else None, delta_bias=0.5 * randn(d))
    return {k: v for k, v in inputs.items() if v is not None}


def run(inputs: Dict[str, torch.Tensor], grad_out: torch.Tensor, backend: str, device: str,
        repeats: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, float]]:
    """Output, last state and gradients (moved to CPU), and fwd / fwd+bwd times in ms."""
    leaves = {k: v.to(device).requires_grad_() for k, v in inputs.items()}
    grad_out = grad_out.to(device)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

    def forward():
        with torch.no_grad():
            return selective_scan(**leaves, delta_softplus=True, return_last_state=True,
                                  backend=backend)

    def forward_backward():
        out = selective_scan(**leaves, delta_softplus=True, backend=backend)
        return torch.autograd.grad(out, list(leaves.values()), grad_out)

    def best(fn: Callable) -> float:
        fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return 1e3 * min(times)

    out, last_state = forward()
    grads = forward_backward()
    results = {'out': out.cpu(), 'last_state': last_state.cpu()}
    results.update({f'grad_{k}': g.cpu() for k, g in zip(leaves, grads)})
    return results, {'fwd': best(forward), 'fwdbwd': best(forward_backward)}


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tol', type=float, default=1e-4, help='max relative difference')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    has_cuda = torch.cuda.is_available()
    kernels = has_cuda and has_cuda_kernels()
    print(f'torch {torch.__version__}, CPU threads {torch.get_num_threads()}, CUDA: '
          f'{torch.cuda.get_device_name() if has_cuda else "not available"}')
    if not has_cuda:
        print('SKIPPED: no CUDA device, so neither ours on CUDA nor the mamba-ssm kernel ran')
    elif not kernels:
        print('SKIPPED the mamba-ssm CUDA kernel: mamba-ssm was built without it; comparing '
              'ours on CUDA with ours on CPU only')
    baseline = 'kernel' if kernels else 'ours-cpu'
    print(f'baseline: {baseline}; relative difference = max|a - b| / max|b| per tensor; '
          f'times in ms (best of {args.repeats})\n')

    failures: List[str] = []
    header = (f'{"case":<26} {"run":<10} {"fwd ms":>9} {"f+b ms":>9} {"vs " + baseline:>14} '
              f'{"out":>9} {"worst grad":>22}')
    print(header)
    print('-' * len(header))
    for case in CASES:
        inputs = make_inputs(case)
        grad_out = torch.randn(case.batch, case.dim, case.seqlen,
                               generator=torch.Generator().manual_seed(1))
        runs = {'ours-cpu': run(inputs, grad_out, 'torch', 'cpu', args.repeats)}
        if has_cuda:
            runs['ours-cuda'] = run(inputs, grad_out, 'torch', 'cuda', args.repeats)
        if kernels:
            runs['kernel'] = run(inputs, grad_out, 'cuda', 'cuda', args.repeats)
        reference = runs[baseline][0]
        for name, (results, times) in runs.items():
            if name == baseline:
                compare = '-'
                out_text, grad_text = '', ''
            else:
                diffs = {k: rel_diff(v, reference[k]) for k, v in results.items()}
                worst = max((k for k in diffs if k.startswith('grad_')), key=diffs.get)
                out_text = f'{max(diffs["out"], diffs["last_state"]):.1e}'
                grad_text = f'{diffs[worst]:.1e} ({worst[5:]})'
                compare = 'ok' if max(diffs.values()) <= args.tol else 'MISMATCH'
                bad = {k: f'{v:.2e}' for k, v in diffs.items() if not v <= args.tol}
                if bad:
                    failures.append(f'{case.name}, {name} vs {baseline}: {bad}')
            print(f'{case.name:<26} {name:<10} {times["fwd"]:>9.2f} {times["fwdbwd"]:>9.2f} '
                  f'{compare:>14} {out_text:>9} {grad_text:>22}')
    if failures:
        print(f'\nFAILED: differences above {args.tol}:')
        print('\n'.join(failures))
        return 1
    print(f'\nall compared runs agree within {args.tol}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
