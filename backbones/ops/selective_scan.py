"""Selective scan (S6), with mamba-ssm's ``selective_scan_fn`` signature and semantics.

For every batch element b and channel d, with a state h of size N::

    delta = softplus(delta + delta_bias)          (each part only when asked)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,   h_{-1} = 0
    y_t   = C_t . h_t + D * u_t
    out   = y * SiLU(z)                           (only when z is given)

Backends: mamba-ssm's CUDA kernel, mamba-ssm's sequential reference, and ours: an exact
pure-PyTorch path for any device with a hand-written backward (see ``_SelectiveScanFn``).
``count_scan_flops()`` turns every call into an analytic FLOP count instead of a scan.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .mamba_shim import has_cuda_kernels, selective_scan_cuda_fn, selective_scan_ref

__all__ = ['selective_scan', 'count_scan_flops', 'ScanFlopCounter', 'scan_flops', 'BACKENDS',
           'default_scan_backend']

BACKENDS = ('auto', 'torch', 'reference', 'cuda')

ScanOutput = Union[Tensor, Tuple[Tensor, Tensor]]


# --------------------------------------------------------------------------------------------
# FLOP counting
# --------------------------------------------------------------------------------------------
class ScanFlopCounter:
    """What one ``count_scan_flops()`` block saw: ``flops`` (multiply-accumulates) and ``calls``."""

    def __init__(self) -> None:
        self.flops: int = 0
        self.calls: int = 0

    def __repr__(self) -> str:
        return f'{type(self).__name__}(flops={self.flops}, calls={self.calls})'


# Thread-local so that counting in one thread never turns another thread's scans into zeros.
_counting = threading.local()


def _active_counters() -> List[ScanFlopCounter]:
    if not hasattr(_counting, 'stack'):
        _counting.stack = []
    return _counting.stack


@contextlib.contextmanager
def count_scan_flops() -> Iterator[ScanFlopCounter]:
    """Count selective-scan FLOPs analytically instead of running the scans.

    While the block is active, every ``selective_scan`` call in this thread adds
    ``scan_flops(...)`` to ``counter.flops`` and 1 to ``counter.calls``, and returns zeros of the
    right shape and dtype without scanning, so that a surrounding
    ``torch.utils.flop_counter.FlopCounterMode`` does not count the scan's internal ops too::

        with FlopCounterMode(display=False) as mode, count_scan_flops() as counter:
            model(x)
        total = mode.get_total_flops() // 2 + counter.flops   # both in multiply-accumulates

    The count follows the fvcore handle of VMamba/MambaVision: ``9 * batch * L * dim * N`` for
    the scan, plus ``batch * dim * L`` each for D and for z (grouped B/C: the same per channel).
    Blocks may nest: every active counter sees each call exactly once, so an outer counter's
    totals include its inner ones' (like nested stopwatches); a call is never counted twice
    by one counter, and the scan is skipped once.
    """
    counter = ScanFlopCounter()
    stack = _active_counters()
    stack.append(counter)
    try:
        yield counter
    finally:
        stack.remove(counter)


def scan_flops(batch: int, dim: int, seqlen: int, d_state: int, with_D: bool = True,
               with_z: bool = False) -> int:
    """Analytic multiply-accumulate count of one selective scan (VMamba's fvcore convention)."""
    flops = 9 * batch * seqlen * dim * d_state
    if with_D:
        flops += batch * dim * seqlen
    if with_z:
        flops += batch * dim * seqlen
    return flops


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------
def _shape(t: Tensor) -> Tuple[int, ...]:
    return tuple(t.shape)


def _check_inputs(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                  z: Optional[Tensor], delta_bias: Optional[Tensor]) -> Tuple[int, int, int, int]:
    """Validate shapes against mamba-ssm's conventions; returns (batch, dim, seqlen, d_state)."""
    if u.dim() != 3:
        raise ValueError(f'selective_scan: u must be (batch, dim, L), got shape {_shape(u)}')
    batch, dim, seqlen = u.shape
    if seqlen < 1:
        raise ValueError(f'selective_scan: u must have at least one time step, got {_shape(u)}')
    if _shape(delta) != _shape(u):
        raise ValueError(f'selective_scan: delta has shape {_shape(delta)}, '
                         f'u has shape {_shape(u)}; they must match')
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f'selective_scan: A must be (dim={dim}, N), got shape {_shape(A)}')
    if A.is_complex():
        raise ValueError('selective_scan: complex A is not supported, A must be real')
    d_state = A.shape[1]
    if d_state < 1:
        raise ValueError(f'selective_scan: A must have N >= 1 states, got shape {_shape(A)}')
    for name, t in (('B', B), ('C', C)):
        if t.dim() == 3:
            ok = _shape(t) == (batch, d_state, seqlen)
        elif t.dim() == 4:
            groups = t.shape[1]
            ok = (t.shape[0] == batch and groups > 0 and dim % groups == 0
                  and _shape(t)[2:] == (d_state, seqlen))
        else:
            ok = False
        if not ok:
            raise ValueError(
                f'selective_scan: {name} has shape {_shape(t)}, expected (batch={batch}, '
                f'N={d_state}, L={seqlen}) or (batch={batch}, G, N={d_state}, L={seqlen}) with '
                f'dim={dim} divisible by G (u: {_shape(u)}, A: {_shape(A)})')
    for name, t in (('D', D), ('delta_bias', delta_bias)):
        if t is not None and _shape(t) != (dim,):
            raise ValueError(f'selective_scan: {name} must be (dim={dim},), got shape {_shape(t)}')
    if z is not None and _shape(z) != _shape(u):
        raise ValueError(f'selective_scan: z has shape {_shape(z)}, u has shape {_shape(u)}; '
                         'they must match')
    return batch, dim, seqlen, d_state


# --------------------------------------------------------------------------------------------
# Our path: exact sequential recurrence, vectorised over (batch, dim, N), hand-written backward
# --------------------------------------------------------------------------------------------
# Big tensors (decay, states, adjoint) live in a time-major, channel-innermost layout
# (L, batch, G, N, dim/G): each time step is one contiguous slice for the recurrence, and every
# product with B, C, A or a per-channel tensor is vectorised along contiguous channels
# (measured ~25% faster end to end than (L, batch, dim, N) at N = 8, equal at N = 1 and 16).
def _softplus(x: Tensor) -> Tensor:
    # Threshold 40 instead of torch's 20: beyond it log1p(exp(-x)) < 1e-17 * x, so the linear
    # branch is exact in float64 too (at 20 it is off by 1e-10 relative).
    if x.device.type == 'cpu' and x.dtype == torch.float32:
        # torch's float32 log1p on CPU measured ~5x slower than its float64 one (torch 2.14,
        # AVX-512); the round trip through float64 costs less and rounds once.
        return F.softplus(x.double(), threshold=40.0).float()
    return F.softplus(x, threshold=40.0)


def _autocast_disabled(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off: the scan computes in float32 (or float64) whatever the caller's autocast."""
    try:
        return torch.autocast(device_type, enabled=False)
    except RuntimeError:   # a device type autocast does not know: nothing to turn off
        return contextlib.nullcontext()


def _to_scan_groups(BC: Tensor, groups: int) -> Tensor:
    """(batch, N, L) or (batch, G', N, L) -> contiguous (L, batch, groups, N); G' | groups."""
    if BC.dim() == 3:
        BC = BC.unsqueeze(1)
    if BC.shape[1] != groups:   # B and C grouped differently: repeat up to a common grouping
        BC = BC.repeat_interleave(groups // BC.shape[1], dim=1)
    return BC.permute(3, 0, 1, 2).contiguous()


def _from_scan_groups(grad: Tensor, like_ndim: int, like_groups: int) -> Tensor:
    """Inverse of ``_to_scan_groups`` for a gradient: sums repeated groups back."""
    L, batch, groups, d_state = grad.shape
    grad = grad.reshape(L, batch, like_groups, groups // like_groups, d_state).sum(3)
    grad = grad.permute(1, 2, 3, 0)
    return grad.squeeze(1) if like_ndim == 3 else grad


def _sum_over_state(x: Tensor, BC: Tensor) -> Tensor:
    """sum_n x[l, b, g, n, c] * BC[l, b, g, n] -> (L, batch, G, dim/G)."""
    if x.shape[3] == 1:   # a matmul with an inner size of one is slower than a product
        return x.squeeze(3) * BC
    return torch.matmul(BC.unsqueeze(3), x).squeeze(3)


def _sum_over_channels(x: Tensor, per_channel: Tensor) -> Tensor:
    """sum_c x[l, b, g, n, c] * per_channel[l, b, g, c] -> (L, batch, G, N)."""
    if x.shape[3] == 1:
        return (x.squeeze(3) * per_channel).sum(-1, keepdim=True)
    return torch.matmul(per_channel.unsqueeze(3), x.transpose(-1, -2)).squeeze(3)


def _scan_states(decay: Tensor, states: Tensor) -> None:
    """In place: states[t] += decay[t] * states[t-1], for t = 1..L-1 (the forward recurrence)."""
    # One fused op per step on a contiguous slice; unbind once instead of indexing per step.
    decay_steps, state_steps = decay.unbind(0), states.unbind(0)
    for t in range(1, len(state_steps)):
        state_steps[t].addcmul_(decay_steps[t], state_steps[t - 1])


def _scan_adjoint(decay: Tensor, adjoint: Tensor) -> None:
    """In place: adjoint[t] += decay[t+1] * adjoint[t+1], for t = L-2..0 (reverse time)."""
    decay_steps, adjoint_steps = decay.unbind(0), adjoint.unbind(0)
    for t in range(len(adjoint_steps) - 2, -1, -1):
        adjoint_steps[t].addcmul_(decay_steps[t + 1], adjoint_steps[t + 1])


class _SelectiveScanFn(torch.autograd.Function):
    """Exact selective scan: the sequential recurrence over time, each step vectorised over
    (batch, dim, N), and a hand-written backward that runs the adjoint recurrence
    g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1} in reverse time; every gradient is then a
    product or contraction of g with the saved states.

    Both passes are linear in L and multiply exactly the per-step factors exp(delta_t * A) of
    the recurrence: no cumulative sums of log-decays, hence nothing to overflow or lose to
    cancellation however long the sequence or large delta is. Why not chunks (cumulative
    log-decays within chunks, fewer Python steps): a step of the loop costs 2-20 us, while the
    run time goes to the ~15 passes over the full (L, batch, dim, N) tensors, which chunking
    adds to (cumulative sums, exponentials of differences, the overflow guard); this form
    measured 25-45x the reference's speed at MambaVision-T stage 3, where a chunked one with
    autograd's backward had measured 4.8x (see benchmarks/bench_selective_scan.py).
    """

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                D: Optional[Tensor], z: Optional[Tensor], delta_bias: Optional[Tensor],
                delta_softplus: bool) -> Tuple[Tensor, Tensor]:
        # float64 stays float64; everything else (incl. fp16/bf16 under autocast) runs in fp32.
        compute_dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        ctx.set_materialize_grads(False)
        ctx.input_dtypes = [None if t is None else t.dtype
                            for t in (u, delta, A, B, C, D, z, delta_bias)]
        ctx.bc_layouts = ((B.dim(), 1 if B.dim() == 3 else B.shape[1]),
                          (C.dim(), 1 if C.dim() == 3 else C.shape[1]))
        ctx.delta_softplus = delta_softplus
        with _autocast_disabled(u.device.type):
            def cast(t: Optional[Tensor]) -> Optional[Tensor]:
                return None if t is None else t.to(compute_dtype)

            u_, delta_, A_, B_, C_, D_, z_, bias_ = map(
                cast, (u, delta, A, B, C, D, z, delta_bias))
            batch, dim, L = u_.shape
            d_state = A_.shape[1]
            groups = math.lcm(ctx.bc_layouts[0][1], ctx.bc_layouts[1][1])
            group_dim = dim // groups

            delta_raw = delta_ if bias_ is None else delta_ + bias_[:, None]
            dt = _softplus(delta_raw) if delta_softplus else delta_raw
            u_t = u_.permute(2, 0, 1).contiguous()                      # (L, batch, dim)
            dt_t = dt.permute(2, 0, 1).contiguous()
            B_t, C_t = _to_scan_groups(B_, groups), _to_scan_groups(C_, groups)  # (L, b, G, N)
            A_g = A_.reshape(groups, group_dim, d_state).transpose(1, 2).contiguous()  # (G,N,c)

            decay = torch.mul(dt_t.view(L, batch, groups, 1, group_dim), A_g).exp_()
            states = torch.mul(B_t.unsqueeze(-1),
                               (dt_t * u_t).view(L, batch, groups, 1, group_dim))
            _scan_states(decay, states)

            y = _sum_over_state(states, C_t).reshape(L, batch, dim).permute(1, 2, 0).contiguous()
            if D_ is not None:
                y = y + D_[:, None] * u_
            out = y if z_ is None else y * F.silu(z_)
            last_state = states[-1].transpose(-1, -2).reshape(batch, dim, d_state)
        y_if_gated = y if z_ is not None else None   # only dz needs the ungated output
        ctx.save_for_backward(u_t, delta_raw, dt_t, A_g, B_t, C_t, D_, z_, y_if_gated, states,
                              decay)
        return out.to(u.dtype), last_state

    @staticmethod
    def backward(ctx, dout: Optional[Tensor], dlast: Optional[Tensor]):
        u_t, delta_raw, dt_t, A_g, B_t, C_t, D_, z_, y, states, decay = ctx.saved_tensors
        needs = ctx.needs_input_grad   # u, delta, A, B, C, D, z, delta_bias, delta_softplus
        L, batch, groups, d_state, group_dim = states.shape
        dim = groups * group_dim
        compute_dtype = states.dtype
        grads: List[Optional[Tensor]] = [None] * 8
        with _autocast_disabled(states.device.type):
            if dout is None:
                dout = states.new_zeros(batch, dim, L)
            dout = dout.to(compute_dtype)
            if z_ is not None:
                gate_sigmoid = torch.sigmoid(z_)
                if needs[6]:
                    # d SiLU(z)/dz = sigmoid(z) * (1 + z * (1 - sigmoid(z)))
                    grads[6] = dout * y * gate_sigmoid * (1 + z_ * (1 - gate_sigmoid))
                dy = dout * (z_ * gate_sigmoid)
            else:
                dy = dout
            if D_ is not None and needs[5]:
                grads[5] = (dy * u_t.permute(1, 2, 0)).sum((0, 2))
            dy_t = dy.permute(2, 0, 1).contiguous()                     # (L, batch, dim)
            per_channel = (L, batch, groups, group_dim)

            if needs[4]:
                grads[4] = _sum_over_channels(states, dy_t.view(per_channel))
            # Adjoint state g_t = dLoss/dh_t, seeded by C_t dy_t (+ dlast at the end).
            adjoint = torch.mul(C_t.unsqueeze(-1), dy_t.view(L, batch, groups, 1, group_dim))
            if dlast is not None:
                adjoint[-1] += dlast.to(compute_dtype).reshape(
                    batch, groups, group_dim, d_state).transpose(-1, -2)
            _scan_adjoint(decay, adjoint)

            # h_t = decay_t * h_{t-1} + dt_t * u_t * B_t
            need_dt = needs[1] or needs[7]
            inject_grad = _sum_over_state(adjoint, B_t).reshape(L, batch, dim)   # sum_n g * B
            du_t = inject_grad * dt_t if needs[0] else None
            ddt_t = inject_grad * u_t if need_dt else None
            if needs[3]:
                grads[3] = _sum_over_channels(adjoint, (dt_t * u_t).view(per_channel))
            if need_dt or needs[2]:
                # Gradient of the log-decay dt_t * A: g_t * h_{t-1} * decay_t, zero at t = 0
                # (h_{-1} = 0). Built in the adjoint buffer, which is ours to overwrite.
                log_decay_grad = adjoint
                log_decay_grad[1:].mul_(decay[1:]).mul_(states[:-1])
                log_decay_grad[0].zero_()
                if need_dt:
                    # sum_n over N strided slices: no temporary of the full size
                    through_A = log_decay_grad[:, :, :, 0] * A_g[:, 0]
                    for n in range(1, d_state):
                        through_A.addcmul_(log_decay_grad[:, :, :, n], A_g[:, n])
                    ddt_t += through_A.reshape(L, batch, dim)
                if needs[2]:
                    log_decay_grad.mul_(dt_t.view(L, batch, groups, 1, group_dim))
                    dA_g = log_decay_grad.view(L * batch, -1).sum(0)
                    grads[2] = dA_g.view(groups, d_state, group_dim).transpose(1, 2).reshape(
                        dim, d_state)

            if needs[0]:
                du = du_t.permute(1, 2, 0)
                grads[0] = du if D_ is None else du + dy * D_[:, None]
            if need_dt:
                ddelta = ddt_t.permute(1, 2, 0)
                if ctx.delta_softplus:
                    ddelta = ddelta * torch.sigmoid(delta_raw)
                if needs[1]:
                    grads[1] = ddelta
                if needs[7]:
                    grads[7] = ddelta.sum((0, 2))
            for index, (ndim, bc_groups) in zip((3, 4), ctx.bc_layouts):
                if grads[index] is not None:
                    grads[index] = _from_scan_groups(grads[index], ndim, bc_groups)
        grads = [None if g is None else g.to(dtype).contiguous()
                 for g, dtype in zip(grads, ctx.input_dtypes)]
        return (*grads, None)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
_default_backend = threading.local()


@contextlib.contextmanager
def default_scan_backend(backend: str) -> Iterator[None]:
    """Make ``backend='auto'`` calls use ``backend`` inside the block (e.g. to time a whole
    model on the CUDA kernel vs our path); explicit backends are left alone."""
    if backend not in BACKENDS:
        raise ValueError(f'default_scan_backend: unknown backend {backend!r}, choose one of '
                         f'{BACKENDS}')
    previous = getattr(_default_backend, 'value', 'auto')
    _default_backend.value = backend
    try:
        yield
    finally:
        _default_backend.value = previous


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   D: Optional[Tensor] = None, z: Optional[Tensor] = None,
                   delta_bias: Optional[Tensor] = None, delta_softplus: bool = False,
                   return_last_state: bool = False, backend: str = 'auto') -> ScanOutput:
    """Selective scan with mamba-ssm's ``selective_scan_fn`` signature and semantics.

    Args:
        u, delta: (batch, dim, L). A: (dim, N), real.
        B, C: (batch, N, L), or (batch, G, N, L) where group g serves channels
            g*dim/G .. (g+1)*dim/G - 1.
        D: (dim,) skip connection. z: (batch, dim, L), gates the output by SiLU(z).
        delta_bias: (dim,), added to delta before the optional softplus.
        return_last_state: also return the final state h_{L-1}, (batch, dim, N).
        backend: 'auto' (mamba-ssm's CUDA kernel for CUDA tensors where it is built and the
            dtype is not float64, ours otherwise), 'torch' (ours), 'reference' (mamba-ssm's
            sequential ``selective_scan_ref``), 'cuda' (the kernel, or an error).

    Returns:
        out (batch, dim, L) in u's dtype, plus last_state in float32 (float64 for float64
        inputs) when asked. Computation is float32 for fp16/bf16 inputs and under autocast.
        Inside ``count_scan_flops()`` nothing is computed: zeros of these shapes come back.
    """
    if backend not in BACKENDS:
        raise ValueError(f'selective_scan: unknown backend {backend!r}, choose one of {BACKENDS}')
    batch, dim, seqlen, d_state = _check_inputs(u, delta, A, B, C, D, z, delta_bias)

    counters = _active_counters()
    if counters:
        flops = scan_flops(batch, dim, seqlen, d_state, with_D=D is not None,
                           with_z=z is not None)
        for counter in counters:
            counter.flops += flops
            counter.calls += 1
        out = torch.zeros(batch, dim, seqlen, dtype=u.dtype, device=u.device)
        if not return_last_state:
            return out
        state_dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        return out, torch.zeros(batch, dim, d_state, dtype=state_dtype, device=u.device)

    if backend == 'auto':
        backend = getattr(_default_backend, 'value', 'auto')
    if backend == 'auto':
        use_kernel = u.is_cuda and u.dtype != torch.float64 and has_cuda_kernels()
        backend = 'cuda' if use_kernel else 'torch'
    if backend == 'cuda':
        kernel = selective_scan_cuda_fn()
        if kernel is None:
            raise RuntimeError("selective_scan: backend='cuda' but mamba-ssm was built without "
                               'its CUDA kernels')
        if not u.is_cuda:
            raise RuntimeError("selective_scan: backend='cuda' needs CUDA tensors")
        return kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if backend == 'reference':
        with _autocast_disabled(u.device.type):   # float32 under autocast, like the others
            return selective_scan_ref()(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                        return_last_state)
    out, last_state = _SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias,
                                             delta_softplus)
    return (out, last_state) if return_last_state else out
