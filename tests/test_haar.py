"""The Haar (db1) transform helpers: exact inverse, PyWavelets' coefficients, the official bank."""
import numpy as np
import pytest
import torch

from backbones.ops import haar_dwt2d, haar_idwt2d
from backbones.ops.haar import haar_filters

# PyWavelets is the independent reference: the `pywt` fixture (tests/conftest.py) fails,
# never skips, when it is not installed.


@pytest.mark.parametrize('shape', [(2, 3, 8, 6), (1, 2, 7, 5), (1, 1, 1, 1), (2, 4, 9, 10)])
def test_inverse_is_exact(shape):
    # Integer-valued inputs: every intermediate is a multiple of 1/2 and exact in float32.
    x = torch.randint(-1000, 1000, shape).float()
    y = haar_dwt2d(x)
    assert y.shape == (shape[0], shape[1], 4, (shape[2] + 1) // 2, (shape[3] + 1) // 2)
    assert torch.equal(haar_idwt2d(y, shape[-2:]), x)
    # Random reals in float64: exact up to the rounding of four additions.
    xd = torch.randn(shape, dtype=torch.float64)
    assert (haar_idwt2d(haar_dwt2d(xd), shape[-2:]) - xd).abs().max() < 1e-13


def test_odd_sizes_are_zero_padded_bottom_right():
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))
    assert torch.equal(haar_dwt2d(x), haar_dwt2d(padded))
    assert haar_idwt2d(haar_dwt2d(x)).shape[-2:] == (4, 4)  # crop is the caller's choice


def test_matches_pywavelets_db1(pywt):
    """Sub-band order (cA, cH, cV, cD) and signs are PyWavelets' own: no convention change."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 10, 14))
    y = haar_dwt2d(torch.from_numpy(x)).numpy()
    for b in range(2):
        for c in range(3):
            ca, (ch, cv, cd) = pywt.dwt2(x[b, c], 'db1')
            for band, ref in enumerate((ca, ch, cv, cd)):
                np.testing.assert_allclose(y[b, c, band], ref, atol=1e-12, rtol=0)
            rec = pywt.idwt2((y[b, c, 0], (y[b, c, 1], y[b, c, 2], y[b, c, 3])), 'db1')
            np.testing.assert_allclose(rec, x[b, c], atol=1e-12, rtol=0)


def test_filter_bank_equals_official_construction(pywt):
    """The official code builds its bank from pywt.Wavelet('db1'): reversed dec filters, outer
    products (lo.lo, lo(cols).hi(rows), hi(cols).lo(rows), hi.hi), repeated per channel; the
    synthesis bank from the rec filters the same way. Both equal ours (orthonormal Haar)."""
    w = pywt.Wavelet('db1')
    lo, hi = np.array(w.dec_lo[::-1]), np.array(w.dec_hi[::-1])
    dec = np.stack([np.outer(lo, lo), np.outer(hi, lo), np.outer(lo, hi), np.outer(hi, hi)])
    rlo, rhi = np.array(w.rec_lo[::-1])[::-1], np.array(w.rec_hi[::-1])[::-1]
    rec = np.stack([np.outer(rlo, rlo), np.outer(rhi, rlo), np.outer(rlo, rhi),
                    np.outer(rhi, rhi)])
    ours = haar_filters(3, torch.float64).numpy()
    assert ours.shape == (12, 1, 2, 2)
    np.testing.assert_allclose(ours, np.tile(dec[:, None], (3, 1, 1, 1)), atol=1e-15)
    np.testing.assert_allclose(ours, np.tile(rec[:, None], (3, 1, 1, 1)), atol=1e-15)


def test_channel_layout_is_channel_major():
    # Channel c's four sub-bands sit at 4c..4c+3 after reshaping to (B, 4C, h, w), the layout the
    # wavelet depthwise conv of WTE-Mamba (and the official checkpoint) assumes.
    x = torch.zeros(1, 2, 2, 2)
    x[0, 1] = 1.0
    y = haar_dwt2d(x).reshape(1, 8, 1, 1).flatten()
    assert torch.equal(y, torch.tensor([0., 0, 0, 0, 2, 0, 0, 0]))


def test_gradients_flow():
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    haar_idwt2d(haar_dwt2d(x) * 2.0, (6, 6)).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 2.0))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match='expects'):
        haar_dwt2d(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match='expects'):
        haar_idwt2d(torch.zeros(1, 2, 3, 4, 4))
