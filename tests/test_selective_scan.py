"""Tests of ``backbones.ops.selective_scan`` against an exact float64 oracle.

Error measure used throughout: for each tensor (the output, the last state, and the gradient of
every input), ``rel_err(x, ref) = max|x - ref| / max|ref|``, the largest absolute error scaled by
the largest magnitude in that tensor, so that entries that are tiny because of cancellation or
decay do not blow up the measure. The oracle is the recurrence evaluated literally in float64,
one time step at a time; its gradients come from autograd through that loop.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from backbones.ops import count_scan_flops, selective_scan
from backbones.ops.mamba_shim import has_cuda_kernels
from backbones.ops.selective_scan import BACKENDS, scan_flops

TOL = {torch.float32: 1e-6, torch.float64: 1e-10}


# mamba-ssm's reference scan is pinned and installed on CPU too: missing, these tests fail with
# the install step (the `mamba_ssm_ref` fixture in tests/conftest.py), they never skip.
needs_mamba_ssm = pytest.mark.usefixtures('mamba_ssm_ref')
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max |x - ref| / max |ref| (absolute error where ref is all zeros)."""
    x, ref = x.double(), ref.double()
    scale = ref.abs().max().item()
    err = (x - ref).abs().max().item()
    return err / scale if scale > 0 else err


def scan_oracle(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t . h_t + D u_t, in float64."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    batch, dim, _ = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = F.relu(delta) + torch.log1p(torch.exp(-delta.abs()))   # exact for any delta

    def per_channel(BC):   # (batch, N, L) or (batch, G, N, L) -> (batch, dim, N, L)
        BC = BC if BC.dim() == 4 else BC.unsqueeze(1)
        return BC.repeat_interleave(dim // BC.shape[1], dim=1)

    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for u_t, dt_t, B_t, C_t in zip(u.unbind(-1), delta.unbind(-1), per_channel(B).unbind(-1),
                                   per_channel(C).unbind(-1)):
        h = torch.exp(dt_t[..., None] * A) * h + (dt_t * u_t)[..., None] * B_t
        ys.append((h * C_t).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D.double()[:, None] * u
    if z is not None:
        y = y * F.silu(z.double())
    return y, h


def make_inputs(batch, dim, seqlen, d_state, groups_B=None, groups_C=None, with_D=True,
                with_z=True, with_bias=True, delta_softplus=True, regime='normal',
                dtype=torch.float32, seed=0):
    """Random inputs; ``regime`` sets the size of delta after the optional softplus."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    def bc(groups):
        return randn(batch, d_state, seqlen) if groups is None else randn(
            batch, groups, d_state, seqlen)

    # Target step sizes: 'normal' ~ softplus(N(-1, 1)), 'large' 50..1000, 'small' 1e-6..1e-4,
    # 'mixed' log-uniform over 1e-6..1e3 (both extremes within one sequence).
    log10_range = {'large': (1.7, 3.0), 'small': (-6.0, -4.0), 'mixed': (-6.0, 3.0)}
    if regime == 'normal':
        step = F.softplus(randn(batch, dim, seqlen) - 1)
    else:
        low, high = log10_range[regime]
        step = 10 ** (low + (high - low) * torch.rand(batch, dim, seqlen, generator=gen,
                                                       dtype=torch.float64))
    bias = 0.5 * randn(dim) if with_bias else None
    raw = step - (bias[:, None] if with_bias else 0)
    if delta_softplus:   # invert softplus so that softplus(delta + bias) == step
        raw = torch.where(step > 30, step, torch.log(torch.expm1(step))) - (
            bias[:, None] if with_bias else 0)
    inputs = dict(
        u=randn(batch, dim, seqlen),
        delta=raw,
        A=-torch.exp(randn(dim, d_state).clamp(-3, 3) * 0.7),   # real, negative: a decay
        B=bc(groups_B), C=bc(groups_C),
        D=randn(dim) if with_D else None,
        z=randn(batch, dim, seqlen) if with_z else None,
        delta_bias=bias,
    )
    return {k: None if v is None else v.to(dtype).requires_grad_() for k, v in inputs.items()}


def check_against_oracle(inputs, delta_softplus, dtype):
    tol = TOL[dtype]
    names = [k for k, v in inputs.items() if v is not None]
    leaves = [inputs[k] for k in names]
    out, last = selective_scan(**inputs, delta_softplus=delta_softplus, return_last_state=True,
                               backend='torch')
    assert out.dtype == dtype and last.dtype == dtype
    gen = torch.Generator().manual_seed(123)
    grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    grad_last = torch.randn(last.shape, generator=gen, dtype=torch.float64)
    ours = torch.autograd.grad((out, last), leaves,
                               (grad_out.to(dtype), grad_last.to(dtype)))

    ref_inputs = {k: inputs[k].detach().double().requires_grad_() for k in names}
    ref_out, ref_last = scan_oracle(**ref_inputs, delta_softplus=delta_softplus)
    refs = torch.autograd.grad((ref_out, ref_last), [ref_inputs[k] for k in names],
                               (grad_out, grad_last))

    errors = {'out': rel_err(out, ref_out), 'last_state': rel_err(last, ref_last)}
    for name, grad, ref in zip(names, ours, refs):
        assert grad.shape == inputs[name].shape and grad.dtype == dtype, name
        errors[f'grad_{name}'] = rel_err(grad, ref)
    assert torch.isfinite(ref_out).all()
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f'relative errors above {tol}: {bad}'


CASES = [
    # batch, dim, L, N, groups_B, groups_C, D, z, bias, softplus, regime
    (2, 8, 1, 4, None, None, True, True, True, True, 'normal'),
    (2, 8, 2, 4, None, None, False, False, False, False, 'normal'),
    (3, 6, 37, 5, None, None, True, False, True, True, 'mixed'),
    (2, 8, 64, 8, 2, 2, True, True, True, True, 'normal'),
    (2, 12, 50, 3, 3, 6, False, True, False, False, 'large'),
    (2, 8, 50, 4, 4, None, True, False, False, True, 'small'),
    (2, 6, 33, 1, 2, 2, True, True, True, True, 'mixed'),           # N = 1, as MobileMamba
    (1, 4, 4096, 4, None, None, True, True, True, True, 'normal'),
    (1, 4, 4096, 2, 2, 2, True, False, True, False, 'mixed'),
]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=['fp32', 'fp64'])
@pytest.mark.parametrize('case', CASES, ids=lambda c: 'b{}d{}L{}N{}-gB{}gC{}-{}'.format(
    *c[:6], c[-1]))
def test_matches_float64_oracle(case, dtype):
    batch, dim, seqlen, d_state, groups_B, groups_C, with_D, with_z, with_bias, softplus, \
        regime = case
    inputs = make_inputs(batch, dim, seqlen, d_state, groups_B, groups_C, with_D, with_z,
                         with_bias, softplus, regime, dtype, seed=seqlen + d_state)
    check_against_oracle(inputs, softplus, dtype)


def test_long_sequence_forward_stays_finite_and_exact():
    """16k steps, step sizes from 1e-6 to 1e3: no overflow, no drift (forward, fp32)."""
    inputs = make_inputs(1, 4, 16384, 4, regime='mixed', with_z=False, seed=7)
    with torch.no_grad():
        out, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
        ref_out, ref_last = scan_oracle(**inputs, delta_softplus=True)
    assert torch.isfinite(out).all() and torch.isfinite(last).all()
    assert rel_err(out, ref_out) < 1e-6 and rel_err(last, ref_last) < 1e-6


@needs_mamba_ssm
def test_matches_mamba_ssm_reference():
    """Same semantics as mamba-ssm (grouping order, gate, bias, softplus, last state)."""
    inputs = make_inputs(2, 8, 40, 4, groups_B=2, groups_C=2, seed=3)
    leaves = [v for v in inputs.values() if v is not None]
    results = {}
    for backend in ('torch', 'reference'):
        out, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True,
                                   backend=backend)
        grads = torch.autograd.grad(out.sum() + last.square().sum(), leaves)
        results[backend] = (out, last, *grads)
    for ours, theirs in zip(results['torch'], results['reference']):
        assert rel_err(ours, theirs) < 1e-6


def test_only_some_inputs_need_grad_and_backward_twice():
    inputs = make_inputs(2, 8, 20, 4, groups_B=2, groups_C=2, seed=5)
    for name in ('A', 'B', 'C', 'D', 'z', 'delta_bias'):
        inputs[name] = inputs[name].detach()
    out = selective_scan(**inputs, delta_softplus=True)
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum()
    first = torch.autograd.grad(loss, [inputs['u'], inputs['delta']], retain_graph=True)
    # A second backward through the same graph must not see tensors the first one changed.
    second = torch.autograd.grad(loss, [inputs['u'], inputs['delta']])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    ref_inputs = {k: None if v is None else v.detach().double().requires_grad_(k in ('u', 'delta'))
                  for k, v in inputs.items()}
    ref_out = scan_oracle(**ref_inputs, delta_softplus=True)[0]
    ref_loss = (ref_out * torch.linspace(-1, 1, out.shape[-1], dtype=torch.float64)).sum()
    refs = torch.autograd.grad(ref_loss, [ref_inputs['u'], ref_inputs['delta']])
    for grad, ref in zip(first, refs):
        assert rel_err(grad, ref) < 1e-6


@pytest.mark.parametrize('low_dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs_compute_in_float32(low_dtype):
    inputs = make_inputs(2, 8, 30, 4, dtype=low_dtype, seed=11)
    out, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    assert out.dtype == low_dtype and last.dtype == torch.float32
    as_fp32 = {k: None if v is None else v.detach().float() for k, v in inputs.items()}
    ref_out, ref_last = selective_scan(**as_fp32, delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(out, ref_out.to(low_dtype), rtol=0, atol=0)
    torch.testing.assert_close(last, ref_last, rtol=0, atol=0)
    grads = torch.autograd.grad(out.float().sum(), [inputs['u'], inputs['A'], inputs['B']])
    assert [g.dtype for g in grads] == [low_dtype] * 3


def test_autocast_runs_in_float32_and_keeps_input_dtype():
    inputs = make_inputs(2, 8, 30, 8, groups_B=2, groups_C=2, seed=13)
    plain = selective_scan(**inputs, delta_softplus=True)
    plain_grads = torch.autograd.grad(plain.sum(), [inputs['u'], inputs['C']])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        auto = selective_scan(**inputs, delta_softplus=True)
        auto_grads = torch.autograd.grad(auto.sum(), [inputs['u'], inputs['C']])
    assert auto.dtype == torch.float32
    # Bit-identical: no internal matmul may have run in bfloat16.
    torch.testing.assert_close(auto, plain, rtol=0, atol=0)
    for a, b in zip(auto_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@needs_mamba_ssm
def test_backends():
    inputs = {k: None if v is None else v.detach()
              for k, v in make_inputs(2, 4, 10, 3, seed=17).items()}
    inputs['u'].requires_grad_()
    ours = selective_scan(**inputs, delta_softplus=True)                 # auto on CPU
    assert type(ours.grad_fn).__name__.startswith('_SelectiveScanFn')
    forced = selective_scan(**inputs, delta_softplus=True, backend='torch')
    reference = selective_scan(**inputs, delta_softplus=True, backend='reference')
    assert not type(reference.grad_fn).__name__.startswith('_SelectiveScanFn')
    torch.testing.assert_close(ours, forced, rtol=0, atol=0)
    assert rel_err(ours, reference) < 1e-6
    with pytest.raises(ValueError, match="'auto', 'torch', 'reference'"):
        selective_scan(**inputs, backend='triton')
    with pytest.raises(RuntimeError):   # CPU tensors: the CUDA kernel cannot take them
        selective_scan(**inputs, backend='cuda')
    assert set(BACKENDS) >= {'auto', 'torch', 'reference'}


@pytest.mark.parametrize('name, bad_shape, message', [
    ('delta', (2, 4, 9), 'delta has shape (2, 4, 9)'),
    ('A', (5, 3), 'A must be (dim=4, N), got shape (5, 3)'),
    ('B', (2, 2, 10), 'B has shape (2, 2, 10)'),
    ('C', (2, 3, 3, 10), 'C has shape (2, 3, 3, 10)'),        # 3 groups do not divide dim 4
    ('D', (3,), 'D must be (dim=4,), got shape (3,)'),
    ('z', (2, 4, 11), 'z has shape (2, 4, 11)'),
    ('delta_bias', (4, 1), 'delta_bias must be (dim=4,), got shape (4, 1)'),
    ('u', (2, 4), 'u must be (batch, dim, L), got shape (2, 4)'),
])
def test_shape_errors_name_tensor_and_shapes(name, bad_shape, message):
    inputs = {k: None if v is None else v.detach()
              for k, v in make_inputs(2, 4, 10, 3, seed=19).items()}
    inputs[name] = torch.zeros(bad_shape)
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        selective_scan(**inputs)


def test_complex_A_is_refused():
    inputs = {k: None if v is None else v.detach()
              for k, v in make_inputs(2, 4, 10, 3, seed=19).items()}
    inputs['A'] = torch.complex(inputs['A'], inputs['A'])
    with pytest.raises(ValueError, match='real'):
        selective_scan(**inputs)


def test_count_scan_flops():
    inputs = {k: None if v is None else v.detach()
              for k, v in make_inputs(2, 8, 10, 3, groups_B=2, groups_C=2, seed=23).items()}
    expected = 9 * 2 * 10 * 8 * 3 + 2 * 8 * 10 + 2 * 8 * 10      # scan + D + z
    assert scan_flops(2, 8, 10, 3, with_D=True, with_z=True) == expected
    no_dz = dict(inputs, D=None, z=None)
    with FlopCounterMode(display=False) as mode, count_scan_flops() as counter:
        out = selective_scan(**inputs, delta_softplus=True)
        out2, last = selective_scan(**no_dz, return_last_state=True)
    assert counter.calls == 2 and counter.flops == expected + 9 * 2 * 10 * 8 * 3
    assert isinstance(counter.flops, int)
    # zeros of the right shape and dtype, and nothing ran for FlopCounterMode to see
    assert out.shape == (2, 8, 10) and out.dtype == torch.float32 and not out.any()
    assert out2.shape == (2, 8, 10) and last.shape == (2, 8, 3) and not last.any()
    assert mode.get_total_flops() == 0
    # outside the block, the scan runs again
    assert selective_scan(**inputs, delta_softplus=True).abs().sum() > 0


def test_count_scan_flops_nested_counts_each_call_once_per_counter():
    inputs = {k: None if v is None else v.detach()
              for k, v in make_inputs(1, 4, 6, 2, seed=29).items()}
    one = scan_flops(1, 4, 6, 2, with_D=True, with_z=True)
    with count_scan_flops() as outer:
        selective_scan(**inputs)
        with count_scan_flops() as inner:
            selective_scan(**inputs)
        selective_scan(**inputs)
    assert (inner.calls, inner.flops) == (1, one)
    assert (outer.calls, outer.flops) == (3, 3 * one)


@needs_cuda
def test_torch_backend_on_cuda_matches_cpu():
    inputs = make_inputs(2, 8, 50, 4, groups_B=2, groups_C=2, seed=31)
    results = {}
    for device in ('cpu', 'cuda'):
        leaves = {k: v.detach().to(device).requires_grad_() for k, v in inputs.items()
                  if v is not None}
        out, last = selective_scan(**leaves, delta_softplus=True, return_last_state=True,
                                   backend='torch')
        grads = torch.autograd.grad(out.sum() + last.sum(), list(leaves.values()))
        results[device] = [t.cpu() for t in (out, last, *grads)]
    for on_cuda, on_cpu in zip(results['cuda'], results['cpu']):
        assert rel_err(on_cuda, on_cpu) < 1e-5


@needs_cuda
@pytest.mark.skipif(not has_cuda_kernels(), reason='mamba-ssm built without CUDA kernels')
def test_auto_backend_uses_the_kernel_on_cuda_and_agrees():
    inputs = {k: v.detach().cuda() for k, v in make_inputs(2, 8, 50, 4, seed=37).items()
              if v is not None}
    auto = selective_scan(**inputs, delta_softplus=True)
    ours = selective_scan(**inputs, delta_softplus=True, backend='torch')
    kernel = selective_scan(**inputs, delta_softplus=True, backend='cuda')
    torch.testing.assert_close(auto, kernel, rtol=0, atol=0)
    assert rel_err(ours, kernel) < 1e-4


def test_default_scan_backend_switches_auto_calls_only():
    from backbones.ops import default_scan_backend
    gen = torch.Generator().manual_seed(0)
    u, delta = torch.randn(1, 4, 9, generator=gen), torch.rand(1, 4, 9, generator=gen)
    A, B, C = -torch.rand(4, 2, generator=gen), torch.randn(1, 2, 9, generator=gen), \
        torch.randn(1, 2, 9, generator=gen)
    with default_scan_backend('reference'):
        ref = selective_scan(u, delta, A, B, C)
        with pytest.raises(RuntimeError, match="backend='cuda'"):
            selective_scan(u, delta, A, B, C, backend='cuda')  # explicit ones are kept
        with default_scan_backend('cuda'):
            with pytest.raises(RuntimeError, match="backend='cuda'"):
                selective_scan(u, delta, A, B, C)
    torch.testing.assert_close(selective_scan(u, delta, A, B, C), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        with default_scan_backend('fast'):
            pass
