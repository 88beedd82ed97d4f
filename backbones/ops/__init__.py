"""Numerical kernels shared by the backbones; they know nothing of any model."""
from .haar import haar_dwt2d, haar_idwt2d
from .selective_scan import count_scan_flops, default_scan_backend, selective_scan

__all__ = ['selective_scan', 'count_scan_flops', 'default_scan_backend', 'haar_dwt2d',
           'haar_idwt2d']
