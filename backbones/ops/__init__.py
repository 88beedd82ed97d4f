"""Numerical kernels shared by the backbones; they know nothing of any model."""
from .haar import haar_dwt2d, haar_idwt2d
from .selective_scan import count_scan_flops, selective_scan

__all__ = ['selective_scan', 'count_scan_flops', 'haar_dwt2d', 'haar_idwt2d']
